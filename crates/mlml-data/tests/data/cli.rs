//! The `mlml-data` binary end to end: verbs, reports, and clear errors with exit code 2.

use std::path::Path;
use std::process::{Command, Output};

fn mlml_data(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlml-data"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn full_set(dir: &Path) {
    let mut text = String::from("#classes\tcat,dog,car,tree\n");
    for i in 0..50 {
        let labels = ["cat,dog,car", "dog", "car,tree", "cat,dog,car,tree", "tree"][i % 5];
        text.push_str(&format!("img{i}.jpg\t{labels}\n"));
    }
    std::fs::write(dir.join("full.tsv"), text).unwrap();
}

#[test]
fn import_drop_single_positive_stats_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    full_set(d);
    let out = mlml_data(
        &[
            "import", "--format", "list", "full.tsv", "--output", "set.npy",
        ],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = mlml_data(
        &[
            "drop", "--keep", "0.4", "--seed", "3", "set.npy", "-o", "drop.tsv", "--json",
        ],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 110 positives, keep round(0.4 * 110) = 44 (every image keeps one: 50 required) -> 50.
    assert_eq!(report["before"]["positives"], 110);
    assert_eq!(report["after"]["positives"], 50);
    assert_eq!(report["constrained"], true);
    assert!(
        stderr(&out).contains("positives 110 -> 50"),
        "{}",
        stderr(&out)
    );

    let again = mlml_data(
        &[
            "drop",
            "--ratio",
            "0.6",
            "--seed",
            "3",
            "set.npy",
            "-o",
            "drop2.tsv",
        ],
        d,
    );
    assert!(again.status.success());
    assert_eq!(
        std::fs::read(d.join("drop.tsv")).unwrap(),
        std::fs::read(d.join("drop2.tsv")).unwrap()
    );

    let out = mlml_data(
        &[
            "single-positive",
            "--seed",
            "1",
            "drop.tsv",
            "-o",
            "single.tsv",
        ],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = mlml_data(&["stats", "single.tsv", "--json"], d);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["samples"], 50);
    assert_eq!(stats["counts"]["positives"], 50);
    assert_eq!(
        stats["made_by"],
        serde_json::json!(["import", "drop", "single-positive"])
    );
    let sidecar = std::fs::read_to_string(d.join("single.meta.json")).unwrap();
    assert!(
        sidecar.contains("\"seed\": 3") && sidecar.contains("\"generator\": \"chacha8\""),
        "{sidecar}"
    );

    let out = mlml_data(&["stats", "single.tsv"], d);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("samples            50")
            && text.contains("made by            import -> drop -> single-positive"),
        "{text}"
    );
}

/// `drop --release-rule 40|75`: per image, the Hill / SPLC release's counts; the cycle of five
/// rows has 3, 1, 2, 4, 1 positives, so 40 % keeps 1 each (50) and 75 % keeps 2, 1, 2, 3, 1
/// per cycle (90 of 110).
#[test]
fn drop_by_the_release_rule_keeps_its_count_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    full_set(d);
    for (percent, kept) in [("40", 50), ("75", 90)] {
        let out = mlml_data(
            &[
                "drop",
                "--release-rule",
                percent,
                "full.tsv",
                "-o",
                "rule.tsv",
                "--json",
            ],
            d,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["after"]["positives"], kept, "{percent}");
        let stats = mlml_data(&["stats", "rule.tsv", "--json"], d);
        let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
        assert_eq!(stats["made_by"], serde_json::json!(["keep-per-image"]));
    }
    let out = mlml_data(
        &["drop", "--release-rule", "50", "full.tsv", "-o", "x.tsv"],
        d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rules for 75 and 40"),
        "{}",
        stderr(&out)
    );
    let out = mlml_data(
        &[
            "drop",
            "--release-rule",
            "40",
            "--keep",
            "0.4",
            "full.tsv",
            "-o",
            "x.tsv",
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_input_gives_a_clear_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    full_set(d);
    std::fs::write(d.join("bad.tsv"), "#classes\tcat\nimg.jpg\tdog\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["drop", "--ratio", "1.5", "full.tsv", "-o", "x.tsv"],
            "`ratio` must be in [0, 1], got 1.5",
        ),
        (
            &["drop", "--keep=-0.1", "full.tsv", "-o", "x.tsv"],
            "`keep` must be in [0, 1]",
        ),
        (
            &[
                "drop",
                "--ratio",
                "0.5",
                "--observe-negatives",
                "2",
                "full.tsv",
                "-o",
                "x.tsv",
            ],
            "`observe_negatives`",
        ),
        (
            &["drop", "--ratio", "0.5", "missing.tsv", "-o", "x.tsv"],
            "missing.tsv",
        ),
        (
            &["drop", "--ratio", "0.5", "bad.tsv", "-o", "x.tsv"],
            "bad.tsv:line 2: unknown class 'dog'",
        ),
        (
            &["drop", "--ratio", "0.5", "full.tsv", "-o", "x.csv"],
            "x.csv: cannot tell the format",
        ),
        (
            &["import", "--format", "npy", "full.tsv", "-o", "x.tsv"],
            "--images LIST is required",
        ),
        (
            &["import", "--format", "voc", "full.tsv", "-o", "x.tsv"],
            "--split is required",
        ),
        (
            &[
                "single-positive",
                "--generator",
                "numpy-mt19937",
                "--observe-negatives",
                "0.5",
                "full.tsv",
                "-o",
                "x.tsv",
            ],
            "not part of the reference",
        ),
        (
            &["verify", "full.tsv", "--images", "nowhere"],
            "nowhere: not a folder",
        ),
        (
            &[
                "single-positive",
                "--generator",
                "numpy-mt19937",
                "--seed",
                "4294967296",
                "full.tsv",
                "-o",
                "x.tsv",
            ],
            "`seed` must be at most 4294967295",
        ),
        (
            &[
                "split",
                "--val-frac",
                "1.5",
                "full.tsv",
                "--train-out",
                "t.tsv",
                "--val-out",
                "v.tsv",
            ],
            "`val_frac` must be in [0, 1], got 1.5",
        ),
    ];
    for (args, expected) in cases {
        let out = mlml_data(args, d);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
    // clap's own usage errors also exit 2.
    let out = mlml_data(
        &[
            "drop", "--ratio", "0.5", "--keep", "0.5", "full.tsv", "-o", "x.tsv",
        ],
        d,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!d.join("x.tsv").exists(), "nothing written on error");
    // An I/O error says its cause once.
    let out = mlml_data(&["stats", "missing.tsv"], d);
    let text = stderr(&out);
    assert_eq!(
        text.matches("No such file or directory").count(),
        1,
        "{text}"
    );
}

#[test]
fn split_writes_the_protocols_train_and_val_sets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    full_set(d);
    let out = mlml_data(
        &[
            "split",
            "full.tsv",
            "--train-out",
            "train.tsv",
            "--val-out",
            "val.tsv",
            "--json",
        ],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let train = rows["train"].as_array().unwrap();
    let val = rows["val"].as_array().unwrap();
    assert_eq!((train.len(), val.len()), (40, 10));
    let read = |name: &str| std::fs::read_to_string(d.join(name)).unwrap();
    let (train_text, val_text) = (read("train.tsv"), read("val.tsv"));
    // Each row of the input lands in exactly one output, in its original order.
    for (i, line) in read("full.tsv").lines().skip(1).enumerate() {
        let in_train = train.iter().any(|r| r.as_u64() == Some(i as u64));
        assert_eq!(train_text.lines().any(|l| l == line), in_train, "{line}");
        assert_eq!(val_text.lines().any(|l| l == line), !in_train, "{line}");
    }
    let sidecar = read("val.meta.json");
    assert!(
        sidecar.contains("split:val") && sidecar.contains("numpy-mt19937"),
        "{sidecar}"
    );
}

/// A reader that closes the pipe early ends the writer quietly, without a panic.
#[test]
fn a_closed_stdout_pipe_is_not_a_crash() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 6,000 classes: the stats' per-class table is far larger than a pipe's buffer.
    let classes: Vec<String> = (0..6000).map(|j| format!("class{j}")).collect();
    let mut text = format!("#classes\t{}\n", classes.join(","));
    for i in 0..20 {
        text.push_str(&format!("img{i}.jpg\t{}\n", classes[i * 7 % 6000]));
    }
    std::fs::write(d.join("wide.tsv"), text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mlml-data"))
        .args(["stats", "wide.tsv"])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    // The reader is dropped here: the rest of the output meets a closed pipe.
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn verify_exits_1_and_lists_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("images")).unwrap();
    image::RgbImage::new(3, 3)
        .save(d.join("images/ok.png"))
        .unwrap();
    // The photo cut at 10, 33, 66, 90 and 99 % of its bytes: JPEG decoders fill the rest with
    // grey and say nothing; PIL refuses each, and so does verify.
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    let mut lines = String::from("#classes\tcat\nok.png\tcat\ngone.png\tcat\n");
    for (photo, cuts) in [
        ("rocket.jpg", [10, 33, 66, 90, 99]),
        ("chelsea.png", [10, 33, 66, 90, 99]),
    ] {
        let bytes = std::fs::read(photos.join(photo)).unwrap();
        for percent in cuts {
            let name = format!("cut{percent}-{photo}");
            std::fs::write(
                d.join("images").join(&name),
                &bytes[..bytes.len() * percent / 100],
            )
            .unwrap();
            lines.push_str(&format!("{name}\tcat\n"));
        }
    }
    std::fs::write(d.join("set.tsv"), lines).unwrap();
    let out = mlml_data(&["verify", "set.tsv", "--images", "images"], d);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("gone.png: missing") && !listed.contains("ok.png"),
        "{listed}"
    );
    for percent in [10, 33, 66, 90, 99] {
        assert!(
            listed.contains(&format!("cut{percent}-rocket.jpg: image file is truncated")),
            "{listed}"
        );
        assert!(
            listed.contains(&format!("cut{percent}-chelsea.png: ")),
            "{listed}"
        );
    }
    std::fs::write(d.join("set.tsv"), "#classes\tcat\nok.png\tcat\n").unwrap();
    assert!(mlml_data(&["verify", "set.tsv", "--images", "images"], d)
        .status
        .success());
}

#[test]
fn preview_draws_the_same_grid_for_the_same_seed_and_names_a_bad_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    std::fs::write(
        d.join("photos.tsv"),
        "#classes\tcat,rocket,person\nchelsea.png\tcat\nrocket.jpg\trocket\ncamera.png\tperson\n",
    )
    .unwrap();
    let preview = |seed: &str, out: &str, extra: &[&str]| {
        let args = [
            &[
                "preview",
                "photos.tsv",
                "--images",
                photos.to_str().unwrap(),
                "--transform",
                "spml",
                "--size",
                "96",
                "--seed",
                seed,
                "-n",
                "3",
                "-o",
                out,
            ][..],
            extra,
        ]
        .concat();
        mlml_data(&args, d)
    };
    let first = preview("5", "a.png", &["--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let again = preview("5", "b.png", &["--json"]);
    assert_eq!(
        std::fs::read(d.join("a.png")).unwrap(),
        std::fs::read(d.join("b.png")).unwrap()
    );
    assert_eq!(first.stdout, again.stdout);
    let rows: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        let expected = match r["image"].as_str().unwrap() {
            "chelsea.png" => "cat",
            "rocket.jpg" => "rocket",
            _ => "person",
        };
        assert_eq!(r["positives"][0], expected);
    }
    // 3 tiles of 96 in a 2 x 2 grid with 4-pixel gaps.
    let grid = image::open(d.join("a.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (2 * 100 + 4, 2 * 100 + 4));

    std::fs::write(
        d.join("photos.tsv"),
        "#classes\tcat,rocket,person\nchelsea.png\tcat\nnowhere.jpg\trocket\n",
    )
    .unwrap();
    let bad = preview("5", "c.png", &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("nowhere.jpg: missing"),
        "{}",
        stderr(&bad)
    );
    assert!(!d.join("c.png").exists());
}

/// `review apply` adds the accepted suggestions as observed positives: `stats` counts exactly
/// that many more, and a suggestion that does not fit the set is an error naming its line.
#[test]
fn review_apply_adds_the_accepted_suggestions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("observed.tsv"),
        "#classes\tcat,dog,car\n#unlisted\tunobserved\na.jpg\tcat\nb.jpg\tdog\nc.jpg\tcar\nd.jpg\tcat\n",
    )
    .unwrap();
    std::fs::write(
        d.join("s.tsv"),
        "row\timage\tclass\tscore\trank\n0\ta.jpg\tdog\t0.97\t1\n2\tc.jpg\tcat\t0.91\t2\n\
         3\td.jpg\tcar\t0.66\t3\n1\tb.jpg\tcar\t0.40\t4\n",
    )
    .unwrap();
    let positives = |set: &str| -> u64 {
        let out = mlml_data(&["stats", set, "--json"], d);
        assert!(out.status.success(), "{}", stderr(&out));
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        stats["counts"]["positives"].as_u64().unwrap()
    };
    let before = positives("observed.tsv");
    for (accept, added) in [("top:3", 3), ("min-score:0.9", 2)] {
        let out = mlml_data(
            &[
                "review",
                "apply",
                "observed.tsv",
                "s.tsv",
                "--accept",
                accept,
                "-o",
                "new.tsv",
            ],
            d,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(positives("new.tsv"), before + added, "{accept}");
        let sidecar = std::fs::read_to_string(d.join("new.meta.json")).unwrap();
        assert!(
            sidecar.contains("review-apply") && sidecar.contains(accept),
            "{sidecar}"
        );
    }
    std::fs::write(
        d.join("s.tsv"),
        "row\timage\tclass\tscore\trank\n0\ta.jpg\tcat\t0.97\t1\n",
    )
    .unwrap();
    let apply = |accept: &str| {
        refused(
            &[
                "review",
                "apply",
                "observed.tsv",
                "s.tsv",
                "--accept",
                accept,
                "-o",
                "x.tsv",
            ],
            d,
        )
    };
    let message = apply("top:1");
    assert!(
        message.contains("s.tsv: line 2: row 0 class 'cat' is already observed"),
        "{message}"
    );
    apply("top:x");
    assert!(!d.join("x.tsv").exists());
}

/// Runs `mlml-data`, asserts it refused (exit 2), and returns its message.
fn refused(args: &[&str], dir: &Path) -> String {
    let out = mlml_data(args, dir);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    stderr(&out)
}
