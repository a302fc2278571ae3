//! `cargo xtask reproduce coco-single|coco-40|coco-full|voc-single|nus-single|cub-single --data
//! DIR --smoke` on tiny COCO-, VOC-, NUS-WIDE- and CUB-layout folders written here (coloured squares on grey, one class per colour):
//! the import, the labels protocol, training and the table, end to end through the `mlml` and
//! `mlml-data` binaries of this build.

use std::path::{Path, PathBuf};
use std::process::Command;

use image::{Rgb, RgbImage};

/// Class `k` is in image `i` by a small hash; every image has one class at least.
fn present(i: usize, classes: usize) -> Vec<usize> {
    let h = (i * 2_654_435_761) >> 7;
    let mut on: Vec<usize> = (0..classes)
        .filter(|k| (h >> (3 * k)).is_multiple_of(3))
        .collect();
    if on.is_empty() {
        on.push(i % classes);
    }
    on
}

const COLOURS: [[u8; 3]; 3] = [[230, 40, 40], [40, 200, 60], [50, 70, 230]];

fn draw(i: usize, classes: &[usize]) -> RgbImage {
    let mut img = RgbImage::from_pixel(40, 40, Rgb([90, 90, 90]));
    for &k in classes {
        let (x0, y0) = (
            (k as u32 % 2) * 20 + (i as u32 % 3),
            (k as u32 / 2) * 20 + 2,
        );
        for y in y0..y0 + 12 {
            for x in x0..x0 + 12 {
                img.put_pixel(x, y, Rgb(COLOURS[k]));
            }
        }
    }
    img
}

/// `annotations/instances_{train,val}2014.json` and `{train,val}2014/*.png`, category ids with a
/// gap as COCO's.
fn coco_fixture(root: &Path) {
    let ids = [1, 3, 7];
    std::fs::create_dir_all(root.join("annotations")).unwrap();
    for (split, range) in [("train2014", 0..20), ("val2014", 20..30)] {
        std::fs::create_dir_all(root.join(split)).unwrap();
        let mut images = Vec::new();
        let mut annotations = Vec::new();
        for i in range {
            let file = format!("COCO_{split}_{i:012}.png");
            let classes = present(i, 3);
            draw(i, &classes)
                .save(root.join(split).join(&file))
                .unwrap();
            images.push(serde_json::json!({ "id": 100 + i, "file_name": file }));
            for k in classes {
                annotations.push(serde_json::json!({
                    "id": annotations.len() + 1,
                    "image_id": 100 + i,
                    "category_id": ids[k],
                }));
            }
        }
        let categories: Vec<_> = ["red", "green", "blue"]
            .iter()
            .zip(ids)
            .map(|(name, id)| serde_json::json!({ "id": id, "name": name }))
            .collect();
        let doc = serde_json::json!({
            "images": images, "annotations": annotations, "categories": categories,
        });
        let name = format!("instances_{split}.json");
        std::fs::write(root.join("annotations").join(name), doc.to_string()).unwrap();
    }
}

/// The COCO fixture plus the Hill / SPLC release's list for 40 % left
/// (`name,idx idx ...`, indices in the annotation file's category order), each image keeping
/// only its first class.
fn coco_fixture_with_release_list(root: &Path) {
    coco_fixture(root);
    let lines: String = (0..20)
        .map(|i| format!("COCO_train2014_{i:012}.png,{}\n", present(i, 3)[0]))
        .collect();
    std::fs::write(root.join("coco_train_0.4left.txt"), lines).unwrap();
}

/// `VOCdevkit/VOC2012/{Annotations,ImageSets/Main,JPEGImages}` with three of VOC's classes.
fn voc_fixture(root: &Path) {
    let voc = root.join("VOCdevkit/VOC2012");
    for dir in ["Annotations", "ImageSets/Main", "JPEGImages"] {
        std::fs::create_dir_all(voc.join(dir)).unwrap();
    }
    let names = ["aeroplane", "bus", "dog"];
    for (split, range) in [("train", 0..20), ("val", 20..30)] {
        let mut list = String::new();
        for i in range {
            let id = format!("2012_{i:06}");
            let classes = present(i, 3);
            draw(i, &classes)
                .save(voc.join("JPEGImages").join(format!("{id}.jpg")))
                .unwrap();
            let objects: String = classes
                .iter()
                .map(|&k| {
                    format!(
                        "<object><name>{}</name><difficult>0</difficult></object>",
                        names[k]
                    )
                })
                .collect();
            std::fs::write(
                voc.join("Annotations").join(format!("{id}.xml")),
                format!("<annotation><filename>{id}.jpg</filename>{objects}</annotation>"),
            )
            .unwrap();
            list.push_str(&id);
            list.push('\n');
        }
        std::fs::write(
            voc.join("ImageSets/Main").join(format!("{split}.txt")),
            list,
        )
        .unwrap();
    }
}

/// A NumPy `.npy` (format 1.0) of `shape` with `descr` and the little-endian `data`.
fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Cole et al.'s `data/nuswide` layout: `formatted_{train,val}_labels.npy` (int64 0/1, as the
/// CUB and NUS files come), `formatted_{train,val}_images.npy` (fixed-width unicode paths) and
/// the `Flickr/` folder they are relative to.
fn nus_fixture(root: &Path) {
    let concepts = 3;
    for (phase, range) in [("train", 0..20), ("val", 20..30)] {
        let (mut labels, mut paths) = (Vec::new(), Vec::new());
        for i in range {
            let classes = present(i, concepts);
            let path = format!("concept_{}/{i:04}_{}.jpg", classes[0], 1000 + i);
            let file = root.join("Flickr").join(&path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            draw(i, &classes).save(&file).unwrap();
            for k in 0..concepts {
                labels.extend_from_slice(&i64::from(classes.contains(&k)).to_le_bytes());
            }
            paths.push(path);
        }
        let width = paths.iter().map(String::len).max().unwrap();
        let mut text = Vec::new();
        for path in &paths {
            for c in path
                .chars()
                .map(u32::from)
                .chain(std::iter::repeat(0))
                .take(width)
            {
                text.extend_from_slice(&c.to_le_bytes());
            }
        }
        let n = paths.len();
        let labels = npy("<i8", &[n, concepts], &labels);
        std::fs::write(root.join(format!("formatted_{phase}_labels.npy")), labels).unwrap();
        let images = npy(&format!("<U{width}"), &[n], &text);
        std::fs::write(root.join(format!("formatted_{phase}_images.npy")), images).unwrap();
    }
}

/// A `CUB_200_2011` folder with three attributes: `attributes.txt`, `images.txt`,
/// `train_test_split.txt`, `attributes/image_attribute_labels.txt` (five fields a line, as
/// the release has them) and `images/<class>/<file>.jpg`.
fn cub_fixture(root: &Path) {
    std::fs::create_dir_all(root.join("attributes")).unwrap();
    let names = [
        "has_bill_shape::dagger",
        "has_wing_color::blue",
        "has_size::small",
    ];
    let attributes: String = names
        .iter()
        .enumerate()
        .map(|(k, n)| format!("{} {n}\n", k + 1))
        .collect();
    std::fs::write(root.join("attributes.txt"), attributes).unwrap();
    let (mut images, mut split, mut labels) = (String::new(), String::new(), String::new());
    for i in 0..30 {
        let classes = present(i, 3);
        let path = format!("{:03}.Bird_{}/Bird_{i:04}.jpg", i % 4 + 1, i % 4 + 1);
        let file = root.join("images").join(&path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        draw(i, &classes).save(&file).unwrap();
        images.push_str(&format!("{} {path}\n", i + 1));
        // Train and test interleaved, as the release's split is.
        split.push_str(&format!("{} {}\n", i + 1, u8::from(i % 3 != 2)));
        for k in 0..3 {
            let on = u8::from(classes.contains(&k));
            labels.push_str(&format!("{} {} {on} 3 12.5\n", i + 1, k + 1));
        }
    }
    std::fs::write(root.join("images.txt"), images).unwrap();
    std::fs::write(root.join("train_test_split.txt"), split).unwrap();
    std::fs::write(
        root.join("attributes").join("image_attribute_labels.txt"),
        labels,
    )
    .unwrap();
}

/// This build's `mlml` (with `mlml-data` beside it): `cargo test --workspace` builds both.
fn mlml() -> PathBuf {
    let xtask = PathBuf::from(env!("CARGO_BIN_EXE_xtask"));
    let mlml = xtask.with_file_name(format!("mlml{}", std::env::consts::EXE_SUFFIX));
    let data = xtask.with_file_name(format!("mlml-data{}", std::env::consts::EXE_SUFFIX));
    assert!(
        mlml.is_file() && data.is_file(),
        "{} and {} are built by `cargo test --workspace` (or `cargo build -p mlml-cli -p mlml-data`)",
        mlml.display(),
        data.display()
    );
    mlml
}

/// `cargo xtask reproduce SETTING --smoke --data DATA --runs RUNS` with the test's `mlml` and
/// `extra` arguments.
fn reproduce_smoke(
    setting: &str,
    data: &Path,
    runs: &Path,
    extra: &[&str],
) -> std::process::Output {
    // `cargo xtask gpu-check` runs the COCO smoke on its backend.
    let backend = std::env::var("MLML_SMOKE_BACKEND").unwrap_or_else(|_| "cpu".into());
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["reproduce", setting, "--smoke", "--backend", &backend])
        .args(extra)
        .arg("--data")
        .arg(data)
        .arg("--mlml")
        .arg(mlml())
        .arg("--runs")
        .arg(runs)
        .output()
        .unwrap()
}

/// Runs the smoke path of `setting` on the folder `write` makes, checks the table and that the
/// output says `protocol`; returns the published figure beside AN and the runs' stdout.
fn smoke(setting: &str, write: fn(&Path), protocol: &str) -> (Option<f64>, String) {
    // VOC's importer knows the 20 classes; the other fixtures' files name their 3.
    let classes = if setting.starts_with("voc") { 20 } else { 3 };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write(&data);
    let runs = dir.path().join("runs");
    let out = reproduce_smoke(setting, &data, &runs, &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{setting}: {stdout}\n{stderr}");
    eprintln!("{stdout}");
    assert!(stdout.contains(protocol), "{stdout}");
    let rows: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runs.join(format!("{setting}.json"))).unwrap(),
    )
    .unwrap();
    let losses: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["loss"].as_str().unwrap())
        .collect();
    assert_eq!(losses, ["an", "role", "ll-ct"], "{setting}");
    for row in rows.as_array().unwrap() {
        let map = row["map"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&map), "{setting}: {row}");
    }
    assert!(stdout.contains("Beside the published figures"), "{stdout}");
    // A smoke run writes beside its runs, never into docs/results.
    if protocol.contains("own list") {
        // The release's list, imported, gives every run's training rows their observed
        // labels; the full annotation stays the training set (its validation rows keep it).
        let imported = runs.join("train-40left.tsv");
        assert!(imported.is_file());
        let config = std::fs::read_to_string(runs.join("seed-0/an/config.toml")).unwrap();
        let set = |key: &str| {
            config
                .lines()
                .find(|l| l.starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("no {key} in {config}"))
                .to_string()
        };
        assert!(set("observed_set").contains("train-40left.tsv"), "{config}");
        assert!(set("train_set").ends_with("train.tsv\""), "{config}");
        assert_eq!(set("labels"), "labels = \"observed-set\"", "{config}");
    }
    let md = std::fs::read_to_string(runs.join(format!("{setting}.md"))).unwrap();
    assert!(md.contains(protocol), "{md}");
    // The imported sets: every fixture has 20 training and 10 test images, each with a
    // positive.
    for (file, n) in [("train.tsv", 20), ("test.tsv", 10)] {
        let text = std::fs::read_to_string(runs.join(file)).unwrap();
        let images: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let columns = text.lines().next().unwrap().split(',').count();
        assert_eq!((images.len(), columns), (n, classes), "{setting} {file}");
        assert!(images
            .iter()
            .all(|l| l.split('\t').nth(1).is_some_and(|p| !p.is_empty())));
    }
    (rows[0]["published_map"].as_f64(), stdout.into_owned())
}

// Beside each row, the published figure of the same setting (AN: Zhou et al.'s poster table
// for the single-positive settings, Zhang et al.'s "BCE" for COCO 40 %).

#[test]
fn coco_single_smoke_runs_the_whole_path() {
    let (an, _) = smoke("coco-single", coco_fixture, "one observed positive");
    assert_eq!(an, Some(64.92));
}

#[test]
fn voc_single_smoke_runs_the_whole_path() {
    let (an, _) = smoke("voc-single", voc_fixture, "one observed positive");
    assert_eq!(an, Some(85.89));
}

#[test]
fn nus_single_smoke_runs_on_the_formatted_files() {
    let (an, _) = smoke("nus-single", nus_fixture, "one observed positive");
    assert_eq!(an, Some(42.27));
}

#[test]
fn cub_single_smoke_runs_on_the_release_folder() {
    let (an, _) = smoke("cub-single", cub_fixture, "one observed positive");
    assert_eq!(an, Some(18.31));
}

/// Without the release's list, the release's per-image rule is redrawn (and said so); with it,
/// the list itself is imported and trained on.
#[test]
fn coco_40_smoke_runs_on_the_rule_or_on_the_release_list() {
    let (an, _) = smoke("coco-40", coco_fixture, "per-image rule for 40 % left");
    assert_eq!(an, Some(70.49));
    smoke(
        "coco-40",
        coco_fixture_with_release_list,
        "own list coco_train_0.4left.txt",
    );
}

#[test]
fn coco_full_smoke_trains_on_every_label() {
    let (an, _) = smoke(
        "coco-full",
        coco_fixture,
        "every label of the annotation file",
    );
    assert_eq!(an, None);
}

#[test]
fn a_data_folder_without_the_layout_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("annotations")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["reproduce", "coco-single", "--smoke", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("lacks annotations/instances_train2014.json")
            && stderr.contains("https://cocodataset.org/#download"),
        "{stderr}"
    );
}

/// Rows train with their own recipes: Cole et al.'s EPR searches its batch x lr grid with
/// `--sweep` (drop_last as their loaders), BoostLU's row boosts, each row names its recipe.
#[test]
fn voc_single_rows_train_with_their_own_recipes_and_cole_rows_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    voc_fixture(&data);
    let runs = dir.path().join("runs");
    let extra = [
        "--sweep", "--loss", "epr", "--loss", "boostlu", "--loss", "ll-cp",
    ];
    let out = reproduce_smoke("voc-single", &data, &runs, &extra);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("voc-single.json")).unwrap())
            .unwrap();
    let recipe = |loss: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["loss"] == loss)
            .unwrap_or_else(|| panic!("no {loss} row: {rows}"))
            .clone()
    };
    assert_eq!(recipe("epr")["recipe"], "cole");
    assert!(
        recipe("epr")["sweep_choice"]
            .as_str()
            .is_some_and(|c| c.contains("best validation mAP of 8 runs")),
        "{rows}"
    );
    assert_eq!(recipe("boostlu")["recipe"], "boostlu");
    assert_eq!(recipe("ll-cp")["recipe"], "ll");
    // Only Cole et al.'s row searches the grid: eight runs.
    let swept = std::fs::read_dir(runs.join("sweep")).unwrap().count();
    assert_eq!(swept, 8, "{swept} sweep runs");
    let config = |run: &str| std::fs::read_to_string(runs.join(run).join("config.toml")).unwrap();
    assert!(config("sweep/epr-b16-lr1e-3").contains("drop_last = true"));
    assert!(config("seed-0/boostlu").contains("boost_alpha = 5.0"));
    let ll = config("seed-0/ll-cp");
    assert!(
        ll.contains("optimizer = \"sgd\"") && ll.contains("stop_below_best = 3.0"),
        "{ll}"
    );
    let md = std::fs::read_to_string(runs.join("voc-single.md")).unwrap();
    assert!(
        md.contains("## Recipes") && md.contains("**ll** (ll-cp)"),
        "{md}"
    );
}
