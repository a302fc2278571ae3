//! Reading the datasets' official files, and reading and writing mlml's own label sets.
//!
//! An mlml label set is a list file (`.tsv`) or a label matrix (`.npy`, int8 codes), each with a
//! JSON sidecar (`<stem>.meta.json`) holding the classes, the image list (for `.npy`) and the
//! provenance: which import and which generators, with their parameters and seeds, made it.

mod coco;
mod cub;
mod list;
pub mod npy;
mod nuswide;
#[cfg(feature = "voc")]
mod voc;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use coco::{read_coco, CocoOptions, CocoOrder};
pub use cub::read_cub;
pub use list::{list_text, read_class_list, read_hill_list, read_list, Unlisted};
pub use npy::ZeroMeans;
pub use nuswide::read_nuswide;
#[cfg(feature = "voc")]
pub use voc::{read_voc, Difficult, VOC_CLASSES};

use crate::dataset::{Dataset, ProvenanceStep};
use crate::error::{read_text, DataError, Result};

/// Which part of a dataset whose release marks a train/test split (NUS-WIDE, CUB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subset {
    /// Every image.
    All,
    /// The official training images.
    Train,
    /// The official test images.
    Test,
}

impl Subset {
    /// The split name recorded in the dataset (`None` for all images).
    pub fn split_name(self) -> Option<String> {
        match self {
            Subset::All => None,
            Subset::Train => Some("train".to_string()),
            Subset::Test => Some("test".to_string()),
        }
    }
}

/// What the sidecar of a written label set holds.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    mlml_data: String,
    format: String,
    n_samples: usize,
    classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    split: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    images: Option<Vec<String>>,
    #[serde(default)]
    provenance: Vec<ProvenanceStep>,
}

/// The sidecar path of a label set: `set.tsv` -> `set.meta.json`.
pub fn sidecar_path(path: &Path) -> PathBuf {
    path.with_extension("meta.json")
}

fn read_sidecar(path: &Path) -> Result<Option<Sidecar>> {
    let sidecar = sidecar_path(path);
    if !sidecar.is_file() {
        return Ok(None);
    }
    let text = read_text(&sidecar)?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        DataError::parse(
            &sidecar,
            format!("line {}, column {}", e.line(), e.column()),
            e.to_string(),
        )
    })
}

/// Writes `bytes` to `path` through a temporary file, synced, and a rename, then syncs the
/// folder, so that a crash or a power cut leaves either the old file or the new one; a write
/// that fails removes its temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(&tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(path, e));
    }
    // The rename itself is durable once the folder's entry is; not every platform can open
    // a folder to sync it, so a failure here is not an error.
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The kind of a label-set file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetFormat {
    /// mlml list (`.tsv`, `.txt`, `.list`).
    List,
    /// int8 `.npy` matrix with the image list in the sidecar.
    Npy,
}

impl SetFormat {
    /// The format for a path's extension.
    ///
    /// # Errors
    /// For any other extension.
    pub fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("tsv" | "txt" | "list") => Ok(SetFormat::List),
            Some("npy") => Ok(SetFormat::Npy),
            _ => Err(DataError::Usage(format!(
                "{}: cannot tell the format from the extension; use .tsv (list) or .npy",
                path.display()
            ))),
        }
    }
}

/// Writes a label set (list or `.npy` by extension) and its sidecar.
///
/// # Errors
/// When the names or paths cannot be encoded, or a file cannot be written.
pub fn save(dataset: &Dataset, path: &Path) -> Result<()> {
    let format = SetFormat::of(path)?;
    let labels = &dataset.labels;
    let images: Vec<String> = dataset
        .image_paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let (bytes, format_name, sidecar_images) = match format {
        SetFormat::List => (list_text(path, dataset)?.into_bytes(), "list", None),
        SetFormat::Npy => (
            npy::label_bytes(labels.n_samples(), labels.n_classes(), labels.values()),
            "npy",
            Some(images),
        ),
    };
    let sidecar = Sidecar {
        mlml_data: env!("CARGO_PKG_VERSION").to_string(),
        format: format_name.to_string(),
        n_samples: labels.n_samples(),
        classes: labels.classes().to_vec(),
        split: dataset.split.clone(),
        images: sidecar_images,
        provenance: dataset.provenance.clone(),
    };
    let json = serde_json::to_vec_pretty(&sidecar).expect("sidecar serialises");
    write_atomic(path, &bytes)?;
    write_atomic(&sidecar_path(path), &json)
}

/// Reads a label set written by [`save`] (or a hand-written list file without sidecar).
///
/// # Errors
/// When the file or its sidecar is unreadable or malformed, or they disagree.
pub fn load(path: &Path) -> Result<Dataset> {
    let sidecar = read_sidecar(path)?;
    let mut dataset = match SetFormat::of(path)? {
        SetFormat::List => read_list(path)?,
        SetFormat::Npy => {
            let Some(sidecar) = &sidecar else {
                return Err(DataError::Usage(format!(
                    "{}: no sidecar {} with the classes and images; import it with \
                     `mlml-data import --format npy --images LIST` instead",
                    path.display(),
                    sidecar_path(path).display()
                )));
            };
            let images = sidecar.images.clone().ok_or_else(|| {
                DataError::invalid(&sidecar_path(path), "field `images` is missing")
            })?;
            read_npy_set(path, images, sidecar.classes.clone(), ZeroMeans::Unobserved)?
        }
    };
    if let Some(sidecar) = sidecar {
        if sidecar.classes != dataset.labels.classes() || sidecar.n_samples != dataset.len() {
            return Err(DataError::invalid(
                &sidecar_path(path),
                format!(
                    "describes {} samples x {} classes, {} holds {} x {}",
                    sidecar.n_samples,
                    sidecar.classes.len(),
                    path.display(),
                    dataset.len(),
                    dataset.labels.n_classes()
                ),
            ));
        }
        dataset.split = sidecar.split;
        dataset.provenance = sidecar.provenance;
    }
    Ok(dataset)
}

/// Reads a dense `.npy` label matrix with its image list and class names.
///
/// # Errors
/// When the matrix is malformed, or its shape disagrees with the lists.
pub fn read_npy_set(
    path: &Path,
    images: Vec<String>,
    classes: Vec<String>,
    zero_means: ZeroMeans,
) -> Result<Dataset> {
    let labels = npy::read_labels(path, zero_means)?;
    if labels.n_samples != images.len() {
        return Err(DataError::invalid(
            path,
            format!(
                "{} rows, but the image list has {} entries",
                labels.n_samples,
                images.len()
            ),
        ));
    }
    if labels.n_classes != classes.len() {
        return Err(DataError::invalid(
            path,
            format!(
                "{} columns, but there are {} class names",
                labels.n_classes,
                classes.len()
            ),
        ));
    }
    Dataset::from_paths(
        images.into_iter().map(PathBuf::from).collect(),
        classes,
        labels.values,
        None,
    )
}

/// Reads an image list: a `.npy` array of strings, or a text file with one path per line.
///
/// # Errors
/// When unreadable or empty.
pub fn read_image_list(path: &Path) -> Result<Vec<String>> {
    let items = if path.extension().is_some_and(|e| e == "npy") {
        npy::read_strings(path)?
    } else {
        read_text(path)?
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    if items.is_empty() {
        return Err(DataError::invalid(path, "no image paths"));
    }
    Ok(items)
}

/// Column names `class_0`, `class_1`, ... for matrices that come without names.
pub fn numbered_classes(n: usize) -> Vec<String> {
    (0..n).map(|j| format!("class_{j}")).collect()
}

#[cfg(test)]
mod tests {
    use super::write_atomic;

    #[test]
    fn an_atomic_write_replaces_the_file_and_a_failed_one_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // A folder where the file should go: the temporary file is written, the rename fails.
        let blocked = dir.path().join("checkpoint.bin");
        std::fs::create_dir(&blocked).unwrap();
        let err = write_atomic(&blocked, b"weights").unwrap_err();
        assert!(err.to_string().contains("checkpoint.bin"), "{err}");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["checkpoint.bin", "progress.json"]);
    }
}
