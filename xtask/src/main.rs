//! `cargo xtask <task>`: the project's one entry point for checks and benchmarks.
//!
//! - `ci`: `cargo fmt --all --check`, `cargo clippy --workspace --all-targets -- -D warnings`,
//!   `cargo test --workspace` (with the wgpu backend where a Vulkan driver is): what `.ci/run`
//!   runs.
//! - `bench [FILTER...]`: the criterion benchmarks of every crate (`cargo bench --workspace`).
//! - `reproduce SETTING`: every loss on a setting, through the `mlml` binary ([`reproduce`]).
//! - `gpu-check`: a GPU backend checked end to end and timed ([`gpu_check`]); CI runs it on
//!   wgpu (lavapipe) with `--quick --dev`.
//!
//! Its one dependency is serde_json (to read `mlml`'s reports), so that it compiles in seconds on
//! every CI run; it never links burn.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

mod gpu_check;
mod recipes;
mod reproduce;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => match &args[1..] {
            [] => ci(false),
            [flag] if flag == "--gpu" => ci(true),
            other => Err(format!(
                "ci: unexpected {other:?} (usage: cargo xtask ci [--gpu])"
            )),
        },
        Some("bench") => bench(&args[1..]),
        Some("gpu-check") => gpu_check::gpu_check(&args[1..]),
        Some("reproduce") => reproduce::reproduce(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print_help();
            Ok(())
        }
        Some(other) => Err(format!("unknown task '{other}'; run `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <task>\n\n\
         tasks:\n  \
         ci               fmt --check, clippy -D warnings, tests, also on wgpu (what CI runs)\n  \
         ci --gpu         check that mlml-cli builds with --features wgpu and with --features cuda\n  \
         bench [ARGS...]  criterion benchmarks of the workspace (extra args go to cargo bench)\n  \
         gpu-check [--backend cuda|wgpu] [--quick] [--dev] [--skip STEP] [--out FILE]\n                   \
         a GPU backend end to end: loss vectors, models against Flex, the COCO smoke run,\n                   \
         ResNet-50 448 px training and inference timed in f32 and 16-bit; JSON and a table\n  \
         reproduce SETTING [--seeds N] [--loss NAME]... [--quick] [--jobs N] [--pytorch] [--sweep]\n                   \
         [--data DIR [--smoke]] [--backend B]\n                   \
         train every loss on a setting with the mlml binary; table, JSON and chart in docs/results\n                   \
         (runs finished before with the same arguments and binary are reused)"
    );
}

/// The workspace root, read at run time: `cargo run` sets `CARGO_MANIFEST_DIR` for the binary.
/// The compile-time value would be wrong when a shared target directory (as `.ci/run` uses)
/// holds an xtask binary built from another clone of the repository.
fn project_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask sits in the workspace root")
        .to_path_buf()
}

/// Runs `cargo <args>` in the project root, timing it.
fn cargo(args: &[&str]) -> Result<(), String> {
    cargo_with_env(args, &[])
}

/// [`cargo`] with the environment variables `env` set.
fn cargo_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let start = Instant::now();
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(project_root())
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    eprintln!(
        "xtask: cargo {} took {:.0} s",
        args[0],
        start.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

fn ci(gpu: bool) -> Result<(), String> {
    if gpu {
        // The GPU backends only need to build here: no GPU is needed to compile them.
        cargo(&["check", "-p", "mlml-cli", "--features", "wgpu"])?;
        return cargo(&["check", "-p", "mlml-cli", "--features", "cuda"]);
    }
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    match missing_vulkan_driver() {
        None => wgpu_tests(),
        Some(missing) if std::env::var_os("MLML_CI_REQUIRE_WGPU").is_some() => {
            Err(format!("the wgpu job needs a Vulkan driver: {missing}"))
        }
        Some(missing) => {
            eprintln!("xtask: testing without the wgpu backend: {missing}");
            test_workspace(&[])
        }
    }
}

/// The workspace's tests with the wgpu backend built in, so that they also run on it: every
/// loss's reference vectors on `Autodiff<Wgpu>` and `mlml train` / `eval` / `predict` on
/// `--device wgpu` against the CPU (`mlml-cli/tests/wgpu.rs`). Without a GPU they run on
/// lavapipe, which `.ci/run` installs. One feature set for the whole workspace, and the same in
/// both invocations, so that burn and our crates are compiled once: the second rebuilds only
/// the crates above `mlml-losses` whose vectors switch backend.
fn wgpu_tests() -> Result<(), String> {
    test_workspace(&["--features", "mlml-cli/wgpu"])?;
    // The vectors on wgpu, the COCO smoke run and `mlml bench` through gpu-check, on the
    // binaries just built; the models' comparison with Flex is one of the tests just run.
    gpu_check::gpu_check(
        &["--backend", "wgpu", "--quick", "--dev", "--skip", "models"].map(String::from),
    )
}

/// The workspace's unit, integration and doc tests with `features`. The examples are not built:
/// clippy has checked them, and each would be one more binary linking burn.
fn test_workspace(features: &[&str]) -> Result<(), String> {
    cargo(&[&["test", "--workspace", "--tests"], features].concat())?;
    cargo(&[&["test", "--workspace", "--doc"], features].concat())
}

/// On Linux, why wgpu would find no Vulkan device (no installable client driver); elsewhere
/// wgpu has Metal or DX12.
fn missing_vulkan_driver() -> Option<String> {
    if !cfg!(target_os = "linux") || std::env::var_os("VK_ICD_FILENAMES").is_some() {
        return None;
    }
    let has_driver = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .any(|entry| entry.path().extension().is_some_and(|e| e == "json"));
    (!has_driver).then(|| {
        "no Vulkan driver in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d (on Debian: \
         apt-get install mesa-vulkan-drivers libvulkan1, which adds lavapipe, a Vulkan on the CPU)"
            .to_string()
    })
}

fn bench(extra: &[String]) -> Result<(), String> {
    let mut args = vec!["bench", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    cargo(&args)
}
