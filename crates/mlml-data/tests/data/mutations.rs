//! Every loader on damaged input: a valid file of each format is truncated, has bytes flipped,
//! or has bytes inserted, and the loader must return a dataset or an error, never panic (a
//! panic fails the property). 256 cases per format, 8 formats.

use std::fs;
use std::path::{Path, PathBuf};

use mlml_data::formats::{self, CocoOptions, Difficult, Subset, Unlisted, ZeroMeans};
use mlml_data::{Dataset, ProvenanceStep};
use proptest::prelude::*;

/// One damage to a file's bytes; positions are fractions of the length, so that any file fits.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(f64),
    Flip(f64, u8),
    Insert(f64, Vec<u8>),
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        (0.0f64..1.0).prop_map(Mutation::Truncate),
        ((0.0f64..1.0), 1u8..=255).prop_map(|(at, x)| Mutation::Flip(at, x)),
        (
            (0.0f64..1.0),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                // Structural bytes of the formats: separators, quotes, digits, brackets.
                proptest::collection::vec(
                    proptest::sample::select(b"\t\n,:;\"'{}[]()<>/0123456789-.e \\".to_vec()),
                    1..6
                ),
            ]
        )
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
    ];
    proptest::collection::vec(one, 1..4)
}

fn damage(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len);
        match m {
            Mutation::Truncate(f) => bytes.truncate(at(*f, bytes.len())),
            Mutation::Flip(f, x) if !bytes.is_empty() => {
                let i = at(*f, bytes.len() - 1);
                bytes[i] ^= x;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(f, new) => {
                let i = at(*f, bytes.len());
                bytes.splice(i..i, new.iter().copied());
            }
        }
    }
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Writes `files` under a fresh folder, damaging the one at `victim` (modulo their count).
fn lay_out(files: &[(&str, Vec<u8>)], victim: usize, m: &[Mutation]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (k, (name, bytes)) in files.iter().enumerate() {
        let mut bytes = bytes.clone();
        if k == victim % files.len() {
            damage(&mut bytes, m);
        }
        write(&dir.path().join(name), &bytes);
    }
    dir
}

const COCO: &str = r#"{"images": [{"id": 42, "file_name": "a.jpg"}, {"id": 9, "file_name": "b.jpg"}],
"annotations": [{"id": 1, "image_id": 42, "category_id": 90}, {"id": 2, "image_id": 9, "category_id": 1}],
"categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}]}"#;

fn voc_files() -> Vec<(&'static str, Vec<u8>)> {
    let xml = |name: &str| {
        format!("<annotation><object><name>{name}</name><difficult>0</difficult></object></annotation>\n")
            .into_bytes()
    };
    vec![
        ("VOC/ImageSets/Main/train.txt", b"000005\n000007\n".to_vec()),
        ("VOC/Annotations/000005.xml", xml("chair")),
        ("VOC/Annotations/000007.xml", xml("car")),
    ]
}

fn nus_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("NUS/Concepts81.txt", b"animal\nsky\n".to_vec()),
        (
            "NUS/ImageList/Imagelist.txt",
            b"C:\\ImageData\\Flickr\\actor\\0001_1.jpg\nC:\\ImageData\\Flickr\\zoo\\0003_3.jpg\n"
                .to_vec(),
        ),
        (
            "NUS/ImageList/TrainImagelist.txt",
            b"actor\\0001_1.jpg\n".to_vec(),
        ),
        (
            "NUS/ImageList/TestImagelist.txt",
            b"zoo\\0003_3.jpg\n".to_vec(),
        ),
        ("NUS/AllLabels/Labels_animal.txt", b"1\n0\n".to_vec()),
        ("NUS/AllLabels/Labels_sky.txt", b"0\n1\n".to_vec()),
    ]
}

fn cub_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "attributes.txt",
            b"1 has_bill_shape::curved\n2 has_wing_color::blue\n".to_vec(),
        ),
        ("CUB/images.txt", b"1 001.A/a.jpg\n2 002.B/b.jpg\n".to_vec()),
        ("CUB/train_test_split.txt", b"1 1\n2 0\n".to_vec()),
        (
            "CUB/attributes/image_attribute_labels.txt",
            b"1 1 1 3 27.08\n1 2 0 3 1.0\n2 1 0 2 4.5\n2 2 1 3 8.0\n".to_vec(),
        ),
    ]
}

fn sample_dataset() -> Dataset {
    let mut ds = Dataset::from_paths(
        ["a.jpg", "b c/é.png"].iter().map(PathBuf::from).collect(),
        vec!["person".to_string(), "car".into()],
        vec![1, 0, -1, 1],
        Some("train".into()),
    )
    .unwrap();
    ds.provenance.push(ProvenanceStep {
        step: "drop".into(),
        params: serde_json::json!({"ratio": 0.4, "seed": 3}),
        report: serde_json::json!({"kept": 2}),
    });
    ds
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn coco(m in mutations()) {
        let dir = lay_out(&[("instances.json", COCO.as_bytes().to_vec())], 0, &m);
        let _ = formats::read_coco(&dir.path().join("instances.json"), &CocoOptions::default());
    }

    #[test]
    fn voc(m in mutations(), victim in 0usize..3) {
        let dir = lay_out(&voc_files(), victim, &m);
        let _ = formats::read_voc(&dir.path().join("VOC"), "train", Difficult::default());
    }

    #[test]
    fn nuswide(m in mutations(), victim in 0usize..6) {
        let dir = lay_out(&nus_files(), victim, &m);
        let _ = formats::read_nuswide(&dir.path().join("NUS"), Subset::Train);
    }

    #[test]
    fn cub(m in mutations(), victim in 0usize..4) {
        let dir = lay_out(&cub_files(), victim, &m);
        let _ = formats::read_cub(&dir.path().join("CUB"), Subset::All);
    }

    #[test]
    fn list(m in mutations()) {
        let text = "#classes\tcat,dog,car\n#unlisted\tunobserved\na.jpg\tcat,2\nb.jpg\t\tdog\n\nc.jpg\t1\tcat,car\n";
        let dir = lay_out(&[("set.tsv", text.as_bytes().to_vec())], 0, &m);
        let _ = formats::read_list(&dir.path().join("set.tsv"));
    }

    #[test]
    fn hill_list(m in mutations()) {
        let text = "COCO_train2014_000000480023.jpg, 0 2\nCOCO_train2014_000000000009.jpg,1";
        let dir = lay_out(&[("hill.txt", text.as_bytes().to_vec())], 0, &m);
        let classes = vec!["person".to_string(), "bicycle".into(), "car".into()];
        let _ = formats::read_hill_list(&dir.path().join("hill.txt"), classes, Unlisted::Unobserved);
    }

    #[test]
    fn npy(m in mutations(), which in 0usize..3) {
        let bytes = match which {
            0 => formats::npy::label_bytes(2, 3, &[1, 0, -1, 1, 1, 0]),
            1 => formats::npy::string_bytes(&["a.jpg".into(), "é/b.jpg".into()]),
            _ => {
                // The gzip member of a label file, as `.npy.gz`.
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&formats::npy::label_bytes(2, 2, &[1, 0, 0, 1])).unwrap();
                gz.finish().unwrap()
            }
        };
        let dir = lay_out(&[("x.npy", bytes)], 0, &m);
        let path = dir.path().join("x.npy");
        let _ = formats::npy::read_labels(&path, ZeroMeans::Unobserved);
        let _ = formats::npy::read_strings(&path);
        let _ = formats::npy::read_f32(&path);
    }

    #[test]
    fn sidecar_json(m in mutations(), npy in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let name = if npy { "set.npy" } else { "set.tsv" };
        let path = dir.path().join(name);
        formats::save(&sample_dataset(), &path).unwrap();
        let sidecar = formats::sidecar_path(&path);
        let mut bytes = fs::read(&sidecar).unwrap();
        damage(&mut bytes, &m);
        fs::write(&sidecar, bytes).unwrap();
        let _ = formats::load(&path);
    }
}
