//! Every supported format, built small in a temporary folder and read back.

use std::fs;
use std::path::{Path, PathBuf};

use mlml_data::formats::{self, CocoOptions, CocoOrder, Difficult, Subset, Unlisted, ZeroMeans};
use mlml_data::{Dataset, LabelMatrix, ProvenanceStep};

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn paths(ds: &Dataset) -> Vec<String> {
    ds.image_paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

const COCO: &str = r#"{
  "info": {"year": 2014},
  "images": [
    {"id": 42, "file_name": "COCO_train2014_000000000042.jpg", "width": 640, "height": 480},
    {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "width": 640, "height": 480},
    {"id": 100, "file_name": "COCO_train2014_000000000100.jpg", "width": 640, "height": 480},
    {"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "width": 640, "height": 480}
  ],
  "annotations": [
    {"id": 1, "image_id": 42, "category_id": 90, "iscrowd": 0, "segmentation": [[1, 2, 3]], "area": 5.0, "bbox": [0, 0, 1, 1]},
    {"id": 2, "image_id": 9, "category_id": 1, "iscrowd": 1, "segmentation": {"counts": [1, 2], "size": [4, 4]}},
    {"id": 3, "image_id": 9, "category_id": 3},
    {"id": 4, "image_id": 42, "category_id": 90},
    {"id": 5, "image_id": 100, "category_id": 3}
  ],
  "categories": [
    {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 3, "name": "car", "supercategory": "vehicle"}
  ]
}"#;

#[test]
fn coco_maps_sparse_category_ids_and_leaves_out_unannotated_images() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instances_train2014.json");
    write(&path, COCO);
    let ds = formats::read_coco(&path, &CocoOptions::default()).unwrap();
    assert_eq!(ds.labels.classes(), ["person", "car", "toothbrush"]);
    assert_eq!(ds.split.as_deref(), Some("train2014"));
    assert_eq!(ds.len(), 3, "image 7 has no annotation");
    assert_eq!(ds.labels.values(), [-1, -1, 1, 1, 1, -1, -1, 1, -1]);

    let options = CocoOptions {
        keep_unannotated: true,
        order: CocoOrder::IdString,
        image_prefix: Some("train2014".into()),
    };
    let ds = formats::read_coco(&path, &options).unwrap();
    // "100" < "42" < "7" < "9" as strings.
    assert_eq!(
        paths(&ds),
        [100, 42, 7, 9].map(|id| format!("train2014/COCO_train2014_{id:012}.jpg"))
    );
    assert_eq!(ds.labels.row(2), [-1, -1, -1]);
    let by_id = formats::read_coco(
        &path,
        &CocoOptions {
            order: CocoOrder::Id,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        by_id.labels.sample_ids()[0],
        "COCO_train2014_000000000009.jpg"
    );
}

#[test]
fn coco_errors_name_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("instances_val2014.json");
    write(
        &path,
        &COCO.replace(r#""category_id": 3}"#, r#""category_id": 4}"#),
    );
    let err = formats::read_coco(&path, &CocoOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("annotation id 3: unknown category_id 4"),
        "{err}"
    );

    write(
        &path,
        &COCO.replace(r#""image_id": 100"#, r#""image_id": 101"#),
    );
    let err = formats::read_coco(&path, &CocoOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("annotation id 5: unknown image_id 101"),
        "{err}"
    );

    write(&path, &COCO.replacen("\"images\": [", "\"images\": [,", 1));
    let err = formats::read_coco(&path, &CocoOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("instances_val2014.json:line 3, column"),
        "{err}"
    );

    let missing = dir.path().join("nope.json");
    let err = formats::read_coco(&missing, &CocoOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.json"), "{err}");
}

fn voc_xml(objects: &[(&str, bool)]) -> String {
    let mut xml = String::from("<annotation>\n  <folder>VOC2007</folder>\n");
    for (name, difficult) in objects {
        xml.push_str(&format!(
            "  <object>\n    <name>{name}</name>\n    <difficult>{}</difficult>\n  </object>\n",
            u8::from(*difficult)
        ));
    }
    xml + "</annotation>\n"
}

fn voc_root(dir: &Path) -> PathBuf {
    let root = dir.join("VOC2007");
    write(&root.join("ImageSets/Main/train.txt"), "000005\n000007\n");
    write(
        &root.join("Annotations/000005.xml"),
        &voc_xml(&[("chair", false), ("chair", true), ("sofa", true)]),
    );
    write(
        &root.join("Annotations/000007.xml"),
        &voc_xml(&[("car", false)]),
    );
    root
}

#[test]
fn voc_reads_objects_and_honours_the_difficult_option() {
    let dir = tempfile::tempdir().unwrap();
    let root = voc_root(dir.path());
    let ds = formats::read_voc(&root, "train", Difficult::Positive).unwrap();
    assert_eq!(ds.labels.n_classes(), 20);
    assert_eq!(
        paths(&ds),
        ["JPEGImages/000005.jpg", "JPEGImages/000007.jpg"]
    );
    let col = |name: &str| ds.labels.class_index(name).unwrap();
    assert_eq!(ds.labels.row(0)[col("chair")], 1);
    assert_eq!(
        ds.labels.row(0)[col("sofa")],
        1,
        "difficult counts as positive by default"
    );
    assert_eq!(ds.labels.row(1)[col("car")], 1);
    assert_eq!(ds.labels.counts().positives, 3);
    let ds = formats::read_voc(&root, "train", Difficult::Unobserved).unwrap();
    assert_eq!(ds.labels.row(0)[col("sofa")], 0);
    assert_eq!(
        ds.labels.row(0)[col("chair")],
        1,
        "a non-difficult object of the class wins"
    );
    let ds = formats::read_voc(&root, "train", Difficult::Negative).unwrap();
    assert_eq!(ds.labels.row(0)[col("sofa")], -1);
}

#[test]
fn voc_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = voc_root(dir.path());
    write(
        &root.join("Annotations/000007.xml"),
        "<annotation>\n<object><name>car</name>\n</annotation>",
    );
    let err = formats::read_voc(&root, "train", Difficult::Positive)
        .unwrap_err()
        .to_string();
    assert!(err.contains("000007.xml:line 3"), "{err}");
    write(
        &root.join("Annotations/000007.xml"),
        &voc_xml(&[("car", false), ("unicorn", false)]),
    );
    let err = formats::read_voc(&root, "train", Difficult::Positive)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("000007.xml:line 7: unknown VOC class 'unicorn'"),
        "{err}"
    );
    let err = formats::read_voc(&root, "val", Difficult::Positive)
        .unwrap_err()
        .to_string();
    assert!(err.contains("val.txt"), "{err}");
}

fn nus_root(dir: &Path) -> PathBuf {
    let root = dir.join("NUS-WIDE");
    write(&root.join("Concepts81.txt"), "animal\nbeach\nsky\n");
    write(
        &root.join("ImageList/Imagelist.txt"),
        "C:\\ImageData\\Flickr\\actor\\0001_1.jpg\nC:\\ImageData\\Flickr\\actor\\0002_2.jpg\nC:\\ImageData\\Flickr\\zoo\\0003_3.jpg\n",
    );
    write(
        &root.join("ImageList/TrainImagelist.txt"),
        "actor\\0001_1.jpg\nzoo\\0003_3.jpg\n",
    );
    write(
        &root.join("ImageList/TestImagelist.txt"),
        "actor\\0002_2.jpg\n",
    );
    write(&root.join("AllLabels/Labels_animal.txt"), "1\n0\n1\n");
    write(&root.join("AllLabels/Labels_beach.txt"), "0\n0\n1\n");
    write(&root.join("AllLabels/Labels_sky.txt"), "1 \n1\n0\n");
    root
}

#[test]
fn nuswide_reads_concept_columns_and_splits() {
    let dir = tempfile::tempdir().unwrap();
    let root = nus_root(dir.path());
    let ds = formats::read_nuswide(&root, Subset::All).unwrap();
    assert_eq!(ds.labels.classes(), ["animal", "beach", "sky"]);
    assert_eq!(
        paths(&ds),
        ["actor/0001_1.jpg", "actor/0002_2.jpg", "zoo/0003_3.jpg"]
    );
    assert_eq!(ds.labels.values(), [1, -1, 1, -1, -1, 1, 1, 1, -1]);
    let train = formats::read_nuswide(&root, Subset::Train).unwrap();
    assert_eq!(paths(&train), ["actor/0001_1.jpg", "zoo/0003_3.jpg"]);
    let test = formats::read_nuswide(&root, Subset::Test).unwrap();
    assert_eq!(test.labels.values(), [-1, -1, 1]);
}

#[test]
fn nuswide_ragged_or_bad_columns_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = nus_root(dir.path());
    write(&root.join("AllLabels/Labels_beach.txt"), "0\n0\n");
    let err = formats::read_nuswide(&root, Subset::All)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Labels_beach.txt: 2 labels, but"), "{err}");
    write(&root.join("AllLabels/Labels_beach.txt"), "0\n2\n0\n");
    let err = formats::read_nuswide(&root, Subset::All)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Labels_beach.txt:line 2: expected 0 or 1, got '2'"),
        "{err}"
    );
}

fn cub_root(dir: &Path) -> PathBuf {
    let root = dir.join("CUB_200_2011");
    write(
        &dir.join("attributes.txt"),
        "1 has_bill_shape::curved_(up_or_down)\n2 has_wing_color::blue\n",
    );
    write(&root.join("images.txt"), "1 001.Black_footed_Albatross/a.jpg\n2 002.Laysan_Albatross/b.jpg\n3 002.Laysan_Albatross/c.jpg\n");
    write(&root.join("train_test_split.txt"), "1 1\n2 0\n3 1\n");
    let mut labels = String::new();
    for (img, attr, present) in [
        (1, 1, 1),
        (1, 2, 0),
        (2, 1, 0),
        (2, 2, 0),
        (3, 1, 1),
        (3, 2, 1),
    ] {
        labels.push_str(&format!("{img} {attr} {present} 3 27.08\n"));
    }
    write(&root.join("attributes/image_attribute_labels.txt"), &labels);
    root
}

#[test]
fn cub_reads_attributes_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let root = cub_root(dir.path());
    let ds = formats::read_cub(&root, Subset::All).unwrap();
    assert_eq!(
        ds.labels.classes(),
        [
            "has_bill_shape::curved_(up_or_down)",
            "has_wing_color::blue"
        ]
    );
    assert_eq!(ds.labels.values(), [1, -1, -1, -1, 1, 1]);
    let train = formats::read_cub(&root, Subset::Train).unwrap();
    assert_eq!(
        paths(&train),
        [
            "images/001.Black_footed_Albatross/a.jpg",
            "images/002.Laysan_Albatross/c.jpg"
        ]
    );
    let test = formats::read_cub(&root, Subset::Test).unwrap();
    assert_eq!(test.labels.values(), [-1, -1]);
}

#[test]
fn cub_missing_labels_and_bad_lines_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = cub_root(dir.path());
    let labels = root.join("attributes/image_attribute_labels.txt");
    write(&labels, "1 1 1 3 1.0\n1 2 0 3 1.0\n");
    let err = formats::read_cub(&root, Subset::All)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no label for image 2 attribute 1"), "{err}");
    write(&labels, "1 1 1 3 1.0\n1 2 7 3 1.0\n");
    let err = formats::read_cub(&root, Subset::All)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("image_attribute_labels.txt:line 2: is_present must be 0 or 1"),
        "{err}"
    );
}

#[test]
fn list_reads_names_indices_and_negatives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.tsv");
    write(&path, "#classes\tcat,dog,car\n#unlisted\tunobserved\na.jpg\tcat,2\nb.jpg\t\tdog\n\nc.jpg\t1\tcat,car\n");
    let ds = formats::read_list(&path).unwrap();
    assert_eq!(ds.labels.values(), [1, 0, 1, 0, -1, 0, -1, 1, -1]);
    write(&path, "#classes\tcat,dog\na.jpg\tdog\n");
    assert_eq!(formats::read_list(&path).unwrap().labels.values(), [-1, 1]);
}

#[test]
fn list_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.tsv");
    let cases = [
        (
            "#classes\tcat,dog\na.jpg\tcat\nb.jpg\tcow\n",
            "bad.tsv:line 3: unknown class 'cow'",
        ),
        (
            "#classes\tcat,dog\na.jpg\t5\n",
            "bad.tsv:line 2: class index 5 is out of range 0..2",
        ),
        (
            "#classes\tcat,dog\na.jpg\tcat,cat\n",
            "bad.tsv:line 2: class 'cat' listed twice",
        ),
        (
            "#classes\tcat,dog\na.jpg\tcat\tdog\tcat\n",
            "bad.tsv:line 2: 4 tab-separated fields",
        ),
        ("a.jpg\tcat\n", "bad.tsv:line 1: no '#classes"),
        ("#classes\tcat,cat\n", "bad.tsv:line 1:"),
        ("#unlisted\tmaybe\n", "bad.tsv:line 1: #unlisted must be"),
        ("", "bad.tsv: empty file"),
        ("#classes\tcat\n", "bad.tsv: no image lines"),
    ];
    for (text, expected) in cases {
        write(&path, text);
        let err = formats::read_list(&path).unwrap_err().to_string();
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}

#[test]
fn hill_lists_parse_the_release_quirks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coco_train_0.4left.txt");
    // A space after the comma on some lines, none on others, and no final newline.
    write(
        &path,
        "COCO_train2014_000000480023.jpg, 0 2\nCOCO_train2014_000000000009.jpg,1",
    );
    let classes = vec!["person".to_string(), "bicycle".into(), "car".into()];
    let ds = formats::read_hill_list(&path, classes.clone(), Unlisted::Unobserved).unwrap();
    assert_eq!(ds.labels.values(), [1, 0, 1, 0, 1, 0]);
    write(&path, "a.jpg,0 3\n");
    let err = formats::read_hill_list(&path, classes, Unlisted::Negative)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 1: class index 3 is out of range 0..3"),
        "{err}"
    );
}

fn sample_dataset() -> Dataset {
    let classes = vec!["person".to_string(), "traffic light".into(), "car".into()];
    let images = ["train2014/a.jpg", "train2014/b.jpg", "c d/é.png", "e.jpg"];
    let mut ds = Dataset::from_paths(
        images.iter().map(PathBuf::from).collect(),
        classes,
        vec![1, 0, -1, 0, 0, 0, -1, 1, 1, 0, -1, -1],
        Some("train".into()),
    )
    .unwrap();
    ds.provenance.push(ProvenanceStep {
        step: "drop".into(),
        params: serde_json::json!({"ratio": 0.4, "seed": 3}),
        report: serde_json::json!({"kept": 4}),
    });
    ds
}

#[test]
fn writers_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["set.tsv", "set.npy"] {
        let ds = sample_dataset();
        let path = dir.path().join(name);
        formats::save(&ds, &path).unwrap();
        let back = formats::load(&path).unwrap();
        assert_eq!(back, ds, "{name}");
        let first = fs::read(&path).unwrap();
        let second_path = dir.path().join(format!("again-{name}"));
        formats::save(&back, &second_path).unwrap();
        assert_eq!(
            fs::read(&second_path).unwrap(),
            first,
            "{name}: bytes differ on a second write"
        );
    }
    // A full annotation is written without the #unlisted line and read back as full.
    let full = Dataset::from_paths(
        vec!["x.jpg".into()],
        vec!["a".into(), "b".into()],
        vec![1, -1],
        None,
    )
    .unwrap();
    let path = dir.path().join("full.tsv");
    formats::save(&full, &path).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "#classes\ta,b\nx.jpg\ta\n"
    );
    assert_eq!(formats::load(&path).unwrap().labels, full.labels);
}

#[test]
fn npy_import_with_image_list_and_zero_convention() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("formatted_train_labels.npy");
    fs::write(&labels, formats::npy::label_bytes(2, 2, &[1, 0, 0, 1])).unwrap();
    let images = dir.path().join("formatted_train_images.npy");
    let names = vec!["2008_000008.jpg".to_string(), "2008_000015.jpg".into()];
    fs::write(&images, formats::npy::string_bytes(&names)).unwrap();
    let list = formats::read_image_list(&images).unwrap();
    let ds = formats::read_npy_set(
        &labels,
        list.clone(),
        formats::numbered_classes(2),
        ZeroMeans::Negative,
    )
    .unwrap();
    assert_eq!(ds.labels.values(), [1, -1, -1, 1]);
    assert_eq!(ds.labels.classes(), ["class_0", "class_1"]);
    let err = formats::read_npy_set(
        &labels,
        list[..1].to_vec(),
        formats::numbered_classes(2),
        ZeroMeans::Negative,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("2 rows, but the image list has 1 entries"),
        "{err}"
    );
    let unobserved = formats::read_npy_set(
        &labels,
        list,
        formats::numbered_classes(2),
        ZeroMeans::Unobserved,
    )
    .unwrap();
    assert_eq!(unobserved.labels.values(), [1, 0, 0, 1]);
}

#[test]
fn sidecar_that_disagrees_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.tsv");
    formats::save(&sample_dataset(), &path).unwrap();
    let sidecar = formats::sidecar_path(&path);
    let text = fs::read_to_string(&sidecar)
        .unwrap()
        .replace("\"n_samples\": 4", "\"n_samples\": 5");
    fs::write(&sidecar, text).unwrap();
    let err = formats::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("set.meta.json: describes 5 samples x 3 classes"),
        "{err}"
    );
    fs::write(&sidecar, "{ not json").unwrap();
    let err = formats::load(&path).unwrap_err().to_string();
    assert!(err.contains("set.meta.json:line 1, column"), "{err}");
}

#[test]
fn verify_lists_missing_and_corrupt_images() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image::RgbImage::from_pixel(4, 3, image::Rgb([10, 200, 30]))
        .save(root.join("good.png"))
        .unwrap();
    image::GrayImage::from_pixel(2, 2, image::Luma([7]))
        .save(root.join("good.jpg"))
        .unwrap();
    fs::write(root.join("corrupt.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let ds = Dataset::from_paths(
        ["good.png", "corrupt.png", "missing.jpg", "good.jpg"]
            .iter()
            .map(PathBuf::from)
            .collect(),
        vec!["a".into()],
        vec![1, 1, 1, 1],
        None,
    )
    .unwrap();
    let checked = std::sync::atomic::AtomicUsize::new(0);
    let bad = mlml_data::verify::verify_images(&ds, root, || {
        checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(checked.into_inner(), 4);
    let names: Vec<_> = bad
        .iter()
        .map(|b| b.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["corrupt.png", "missing.jpg"]);
    assert_eq!(bad[1].reason, "missing");
}

#[test]
fn label_matrix_rejects_ragged_input() {
    let err =
        LabelMatrix::new(vec!["a".into()], vec!["x".into(), "y".into()], vec![1]).unwrap_err();
    assert!(err
        .to_string()
        .contains("1 values for 2 samples x 1 classes"));
}
