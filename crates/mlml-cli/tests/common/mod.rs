//! What the `mlml` binary's integration tests share: running it from the repository root and
//! reading what it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `mlml` with `args` in the repository root.
pub fn mlml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlml"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
