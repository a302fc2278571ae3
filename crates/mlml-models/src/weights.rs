//! Loading PyTorch-written state dicts (`.pth`/`.pt` zip or legacy pickles, `.safetensors`)
//! through burn-store, with a report of every key that does not fit.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{
    ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use crate::error::{ModelError, Result};

/// How to load a state dict.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `(regex, replacement)` pairs applied to the file's keys before matching.
    pub remap: Vec<(&'static str, &'static str)>,
    /// Model parameters (by prefix) that the file need not hold, e.g. a replaced head.
    pub skip_prefixes: Vec<&'static str>,
    /// File keys (by prefix) to ignore, e.g. torchvision's `fc` when the head is replaced.
    pub ignore_prefixes: Vec<&'static str>,
}

/// Loads `path` into `model`; every parameter must be found with its shape, and every key of the
/// file must be used, except those the options name.
///
/// # Errors
/// An unreadable file, or one with missing, unexpected or mis-shaped keys (all listed).
pub fn load_state_dict<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    model: &mut M,
    path: &Path,
    options: &LoadOptions,
) -> Result<()> {
    if !path.is_file() {
        return Err(ModelError::Read {
            path: path.to_path_buf(),
            message: "no such file".into(),
        });
    }
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let source = if is_safetensors {
        Source::SafetensorsFile
    } else {
        Source::PytorchFile
    };
    apply(model, path, source, options)
}

/// Loads safetensors bytes (named `label` in errors) into `model`, as [`load_state_dict`].
///
/// # Errors
/// Damaged bytes, or missing, unexpected or mis-shaped keys (all listed).
pub fn load_safetensors_bytes<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    model: &mut M,
    label: &Path,
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<()> {
    apply(model, label, Source::SafetensorsBytes(bytes), options)
}

enum Source<'a> {
    SafetensorsFile,
    PytorchFile,
    SafetensorsBytes(&'a [u8]),
}

fn apply<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    model: &mut M,
    path: &Path,
    source: Source<'_>,
    options: &LoadOptions,
) -> Result<()> {
    let read_error = |e: &dyn std::fmt::Display| ModelError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let result: ApplyResult = if let Source::SafetensorsFile | Source::SafetensorsBytes(_) = source
    {
        let store = match source {
            Source::SafetensorsBytes(bytes) => SafetensorsStore::from_bytes(Some(bytes.to_vec())),
            _ => SafetensorsStore::from_file(path),
        };
        let mut store = store
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true)
            .validate(false);
        for (from, to) in &options.remap {
            store = store.with_key_remapping(from, *to);
        }
        model.load_from(&mut store).map_err(|e| read_error(&e))?
    } else {
        let mut store = PytorchStore::from_file(path)
            .allow_partial(true)
            .validate(false);
        for (from, to) in &options.remap {
            store = store.with_key_remapping(from, *to);
        }
        model.load_from(&mut store).map_err(|e| read_error(&e))?
    };
    let mut details = Vec::new();
    for (key, _) in &result.missing {
        if !options.skip_prefixes.iter().any(|p| key.starts_with(p)) {
            details.push(format!("missing: {key}"));
        }
    }
    for key in &result.unused {
        // burn-store lists a BatchNorm's PyTorch `weight`/`bias` as unused even though the
        // adapter applied them as `gamma`/`beta`.
        let adapted = key
            .strip_suffix(".weight")
            .map(|k| format!("{k}.gamma"))
            .or_else(|| key.strip_suffix(".bias").map(|k| format!("{k}.beta")));
        if adapted.is_some_and(|a| result.applied.contains(&a)) {
            continue;
        }
        if !key.ends_with("num_batches_tracked")
            && !options.ignore_prefixes.iter().any(|p| key.starts_with(p))
        {
            details.push(format!("unexpected: {key}"));
        }
    }
    for error in &result.errors {
        details.push(error.to_string());
    }
    if details.is_empty() {
        return Ok(());
    }
    // A wrong architecture can mismatch hundreds of keys: show the first ones and a count.
    const SHOWN: usize = 25;
    let more = details.len().saturating_sub(SHOWN);
    details.truncate(SHOWN);
    if more > 0 {
        details.push(format!("... and {more} more"));
    }
    Err(ModelError::Mismatch {
        path: path.to_path_buf(),
        details: details.join("\n"),
    })
}
