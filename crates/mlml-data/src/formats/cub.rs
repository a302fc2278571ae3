//! CUB-200-2011 as a multi-label set of its 312 binary attributes (`is_present`; certainty
//! ignored, as in Cole et al.'s `format_cub.py`).

use std::path::{Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::{read_text, DataError, Result};
use crate::labels::{NEGATIVE, POSITIVE};

use super::Subset;

fn numbered_lines(path: &Path) -> Result<Vec<(usize, Vec<String>)>> {
    Ok(read_text(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.split_whitespace().map(str::to_string).collect()))
        .collect())
}

fn id(path: &Path, line: usize, field: &str, what: &str) -> Result<usize> {
    field
        .parse::<usize>()
        .ok()
        .filter(|&v| v >= 1)
        .ok_or_else(|| {
            DataError::at_line(path, line, format!("{what} '{field}' is not a 1-based id"))
        })
}

/// Finds `attributes.txt`: inside the root, its `attributes/` folder, or beside the root (where
/// the official archive puts it).
fn attribute_names_path(root: &Path) -> PathBuf {
    let candidates = [
        root.join("attributes.txt"),
        root.join("attributes").join("attributes.txt"),
        root.parent()
            .map(|p| p.join("attributes.txt"))
            .unwrap_or_default(),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| candidates[0].clone())
}

/// Reads CUB-200-2011 from its `CUB_200_2011` folder.
///
/// # Errors
/// Missing files, lines with too few fields, ids out of range, `is_present` other than 0/1,
/// or an (image, attribute) pair never given (each with file and line).
pub fn read_cub(root: &Path, split: Subset) -> Result<Dataset> {
    let names_path = attribute_names_path(root);
    let mut classes = Vec::new();
    for (line, fields) in numbered_lines(&names_path)? {
        if fields.len() != 2
            || id(&names_path, line, &fields[0], "attribute id")? != classes.len() + 1
        {
            return Err(DataError::at_line(
                &names_path,
                line,
                "expected '<id> <name>' with ids 1, 2, 3, ...",
            ));
        }
        classes.push(fields[1].clone());
    }
    if classes.is_empty() {
        return Err(DataError::invalid(&names_path, "no attributes"));
    }
    let images_path = root.join("images.txt");
    let mut images = Vec::new();
    for (line, fields) in numbered_lines(&images_path)? {
        if fields.len() != 2 || id(&images_path, line, &fields[0], "image id")? != images.len() + 1
        {
            return Err(DataError::at_line(
                &images_path,
                line,
                "expected '<id> <path>' with ids 1, 2, 3, ...",
            ));
        }
        images.push(PathBuf::from("images").join(&fields[1]));
    }
    let split_path = root.join("train_test_split.txt");
    let mut is_train = vec![None; images.len()];
    for (line, fields) in numbered_lines(&split_path)? {
        let i = id(
            &split_path,
            line,
            fields.first().map_or("", String::as_str),
            "image id",
        )?;
        let flag = match fields.get(1).map(String::as_str) {
            Some("1") => true,
            Some("0") => false,
            _ => {
                return Err(DataError::at_line(
                    &split_path,
                    line,
                    "expected '<image id> <0|1>'",
                ))
            }
        };
        *is_train.get_mut(i - 1).ok_or_else(|| {
            DataError::at_line(&split_path, line, format!("image id {i} not in images.txt"))
        })? = Some(flag);
    }
    let labels_path = root.join("attributes").join("image_attribute_labels.txt");
    let n_classes = classes.len();
    let mut values = vec![0i8; images.len() * n_classes];
    for (line, fields) in numbered_lines(&labels_path)? {
        // <image id> <attribute id> <is_present> <certainty id> <time>; only the first three matter.
        if fields.len() < 3 {
            return Err(DataError::at_line(
                &labels_path,
                line,
                "expected '<image> <attribute> <is_present> ...'",
            ));
        }
        let i = id(&labels_path, line, &fields[0], "image id")?;
        let j = id(&labels_path, line, &fields[1], "attribute id")?;
        if i > images.len() || j > n_classes {
            return Err(DataError::at_line(
                &labels_path,
                line,
                format!("image {i} or attribute {j} out of range"),
            ));
        }
        values[(i - 1) * n_classes + j - 1] = match fields[2].as_str() {
            "1" => POSITIVE,
            "0" => NEGATIVE,
            other => {
                return Err(DataError::at_line(
                    &labels_path,
                    line,
                    format!("is_present must be 0 or 1, got '{other}'"),
                ))
            }
        };
    }
    if let Some(at) = values.iter().position(|v| *v == 0) {
        return Err(DataError::invalid(
            &labels_path,
            format!(
                "no label for image {} attribute {}",
                at / n_classes + 1,
                at % n_classes + 1
            ),
        ));
    }
    let keep: Vec<bool> = is_train
        .iter()
        .enumerate()
        .map(|(i, t)| match (split, t) {
            (Subset::All, _) => Ok(true),
            (_, None) => Err(DataError::invalid(
                &split_path,
                format!("image {} has no split", i + 1),
            )),
            (Subset::Train, Some(t)) => Ok(*t),
            (Subset::Test, Some(t)) => Ok(!*t),
        })
        .collect::<Result<_>>()?;
    let mut dataset = Dataset::from_paths(images, classes, values, split.split_name())?;
    dataset.retain_samples(|i| keep[i]);
    Ok(dataset)
}
