//! `cargo xtask gpu-check [--backend cuda|wgpu] [--quick] [--dev] [--out FILE]`: one command
//! that checks a GPU backend end to end and times it, for a machine with a GPU (only the Rust
//! toolchain and the driver needed):
//!
//! 1. builds the workspace's tests and the `mlml` binary with the backend (`--release` unless
//!    `--dev`);
//! 2. every loss's reference vectors on `Autodiff<backend>` (`mlml-losses`' `vector_tests`);
//! 3. ResNet-18, EfficientNet-Lite0 and the small CNN against Flex, inference and the training
//!    pass, forward and backward (`mlml-models/tests/gpu/`, its ignored tests included);
//! 4. the COCO-layout smoke run of `cargo xtask reproduce coco-single` on the backend
//!    (`xtask/tests/paper_smoke.rs`);
//! 5. `mlml bench`: ResNet-50's training step at 448 px, batch 32, in f32 and in the backend's
//!    16-bit type (bf16 on CUDA, f16 on wgpu), and its inference (with `--quick`: the small CNN
//!    at 32 px, batch 8, which lavapipe runs in CI).
//!
//! Writes every step's outcome and the timings to one JSON file (default
//! `target/gpu-check-BACKEND.json`) and prints a table. A failing step does not stop the others;
//! the command fails when one did.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::cargo_with_env;
use crate::reproduce::target_dir;

#[derive(Debug)]
struct Options {
    backend: String,
    quick: bool,
    dev: bool,
    out: Option<PathBuf>,
    /// Steps left out (`--skip models`: CI's workspace tests have just run them).
    skip: Vec<String>,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        backend: "cuda".into(),
        quick: false,
        dev: false,
        out: None,
        skip: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--backend" => match args.next().map(String::as_str) {
                Some(b @ ("cuda" | "wgpu")) => options.backend = b.into(),
                other => return Err(format!("--backend {other:?}: expected cuda or wgpu")),
            },
            "--quick" => options.quick = true,
            "--dev" => options.dev = true,
            "--skip" => match args.next().map(String::as_str) {
                Some(step @ ("vectors" | "models" | "smoke" | "bench")) => options.skip.push(step.into()),
                other => return Err(format!("--skip {other:?}: expected vectors, models, smoke or bench")),
            },
            "--out" => {
                options.out = Some(PathBuf::from(
                    args.next().ok_or("--out needs a file")?.as_str(),
                ))
            }
            other => {
                return Err(format!(
                    "gpu-check: unexpected {other:?} (usage: cargo xtask gpu-check [--backend cuda|wgpu] [--quick] [--dev] [--skip STEP] [--out FILE])"
                ))
            }
        }
    }
    Ok(options)
}

/// One step's record.
fn record(name: &str, seconds: f64, outcome: Result<String, String>) -> Value {
    let (ok, detail) = match outcome {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    eprintln!(
        "gpu-check: {name}: {} in {seconds:.0} s{}",
        if ok { "ok" } else { "FAILED" },
        if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        }
    );
    json!({ "step": name, "ok": ok, "seconds": seconds, "detail": detail })
}

/// `cargo test` with the profile and `features`, then `extra`, with `env` set.
fn cargo_test(
    options: &Options,
    features: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<String, String> {
    let mut args = vec!["test"];
    if !options.dev {
        args.push("--release");
    }
    args.extend(["--workspace", "--features", features]);
    args.extend(extra);
    cargo_with_env(&args, env).map(|()| String::new())
}

/// `mlml bench --json` with `args`: its JSON row, or why it failed.
fn bench(mlml: &PathBuf, device: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(mlml)
        .args(["bench", "--json", "--device", device])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", mlml.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("mlml bench printed no JSON: {e}"))
}

pub(crate) fn gpu_check(args: &[String]) -> Result<(), String> {
    let options = options(args)?;
    let backend = options.backend.as_str();
    let features = format!("mlml-cli/{backend}");
    let vector_features = format!("{features},mlml-losses/{backend}-vectors");
    let mut steps = Vec::new();
    let mut timed = |name: &str, work: &mut dyn FnMut() -> Result<String, String>| {
        let start = Instant::now();
        let outcome = work();
        let seconds = start.elapsed().as_secs_f64();
        let ok = outcome.is_ok();
        steps.push(record(name, seconds, outcome));
        ok
    };
    let built = timed("build", &mut || {
        // The test targets alone (`--tests`), as CI's test run builds them: examples are left to
        // clippy's check, so building here adds no binary.
        cargo_test(&options, &features, &["--tests", "--no-run"], &[])
    });
    let mut timings = Vec::new();
    let runs = |step: &str| built && !options.skip.iter().any(|s| s == step);
    if runs("vectors") {
        timed("loss vectors", &mut || {
            cargo_test(&options, &vector_features, &["--lib", "vector_tests"], &[])
        });
    }
    if runs("models") {
        timed("models against Flex", &mut || {
            // With the training passes of ResNet-18 and Lite0, too slow for CI's lavapipe.
            cargo_test(
                &options,
                &features,
                &["--test", "gpu", "--", "--include-ignored"],
                &[],
            )
        });
    }
    if runs("smoke") {
        timed("coco-single smoke", &mut || {
            cargo_test(
                &options,
                &features,
                &["--test", "paper_smoke", "coco_single"],
                &[("MLML_SMOKE_BACKEND", backend)],
            )
        });
    }
    if runs("bench") {
        let profile = if options.dev { "debug" } else { "release" };
        let mlml = target_dir()
            .join(profile)
            .join(format!("mlml{}", std::env::consts::EXE_SUFFIX));
        let half = if backend == "cuda" { "bf16" } else { "f16" };
        let shape: &[&str] = if options.quick {
            &[
                "--backbone",
                "small-cnn",
                "--image-size",
                "32",
                "--batch-size",
                "8",
                "--steps",
                "2",
                "--warmup",
                "1",
            ]
        } else {
            &[
                "--backbone",
                "resnet50",
                "--image-size",
                "448",
                "--batch-size",
                "32",
                "--steps",
                "10",
                "--warmup",
                "3",
            ]
        };
        for precision in ["f32", half] {
            timed(&format!("bench {precision}"), &mut || {
                let row = bench(
                    &mlml,
                    backend,
                    &[shape, &["--precision", precision]].concat(),
                )?;
                let line = format!(
                    "{:.1} training images/s, {:.1} inference images/s",
                    row["train_images_per_second"].as_f64().unwrap_or(0.0),
                    row["infer_images_per_second"].as_f64().unwrap_or(0.0)
                );
                timings.push(row);
                Ok(line)
            });
        }
    }
    let failed = steps.iter().filter(|s| s["ok"] == false).count();
    let report = json!({ "backend": backend, "quick": options.quick, "profile": if options.dev { "dev" } else { "release" }, "steps": steps, "timings": timings });
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| target_dir().join(format!("gpu-check-{backend}.json")));
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("JSON"))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    println!("| step | outcome | seconds | detail |\n|---|---|---|---|");
    for step in &steps {
        println!(
            "| {} | {} | {:.0} | {} |",
            step["step"].as_str().unwrap_or(""),
            if step["ok"] == true { "ok" } else { "FAILED" },
            step["seconds"].as_f64().unwrap_or(0.0),
            step["detail"].as_str().unwrap_or("").replace('\n', " ")
        );
    }
    if let Some(adapter) = timings.first().and_then(|t| t["adapter"].as_str()) {
        println!("\nadapter: {adapter}");
    }
    println!("written: {}", out.display());
    match failed {
        0 => Ok(()),
        n => Err(format!(
            "gpu-check: {n} of {} steps failed (see {})",
            steps.len(),
            out.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_the_backend_and_refuse_others() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = options(&args(&["--backend", "wgpu", "--quick", "--dev"])).unwrap();
        assert_eq!((o.backend.as_str(), o.quick, o.dev), ("wgpu", true, true));
        assert_eq!(options(&[]).unwrap().backend, "cuda");
        assert!(options(&args(&["--backend", "cpu"]))
            .unwrap_err()
            .contains("expected cuda or wgpu"));
        assert!(options(&args(&["--fast"])).unwrap_err().contains("usage"));
    }
}
