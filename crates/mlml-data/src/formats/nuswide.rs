//! NUS-WIDE (81 concepts): `Concepts81.txt`, `AllLabels/Labels_<concept>.txt` (one 0/1 per image)
//! and the image list `ImageList/Imagelist.txt`; the official split lists
//! `ImageList/TrainImagelist.txt` and `ImageList/TestImagelist.txt` select a subset.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{read_text, DataError, Result};
use crate::labels::{NEGATIVE, POSITIVE};

use super::Subset;

/// Turns a release path (`C:\ImageData\Flickr\actor\0001_2124494179.jpg`) into the relative
/// `actor/0001_2124494179.jpg`.
fn relative_image_path(line: &str) -> String {
    let unix = line.trim().replace('\\', "/");
    let parts: Vec<&str> = unix.split('/').filter(|p| !p.is_empty()).collect();
    match parts.len() {
        0 | 1 => unix,
        n => format!("{}/{}", parts[n - 2], parts[n - 1]),
    }
}

fn read_image_list(path: &Path) -> Result<Vec<String>> {
    Ok(read_text(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(relative_image_path)
        .collect())
}

/// Reads NUS-WIDE from its release folder.
///
/// # Errors
/// Missing files, a label file whose line count differs from the image list, or a value other
/// than 0 or 1 (with the file and line).
pub fn read_nuswide(root: &Path, split: Subset) -> Result<Dataset> {
    let concepts_path = root.join("Concepts81.txt");
    let concepts: Vec<String> = read_text(&concepts_path)?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if concepts.is_empty() {
        return Err(DataError::invalid(&concepts_path, "no concepts"));
    }
    let list_path = root.join("ImageList").join("Imagelist.txt");
    let images = read_image_list(&list_path)?;
    if images.is_empty() {
        return Err(DataError::invalid(&list_path, "no images"));
    }
    let columns: Vec<Vec<i8>> = concepts
        .par_iter()
        .map(|concept| {
            let path = root.join("AllLabels").join(format!("Labels_{concept}.txt"));
            let text = read_text(&path)?;
            let column = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| match l.trim() {
                    "1" => Ok(POSITIVE),
                    "0" => Ok(NEGATIVE),
                    other => Err(DataError::at_line(
                        &path,
                        i + 1,
                        format!("expected 0 or 1, got '{other}'"),
                    )),
                })
                .collect::<Result<Vec<i8>>>()?;
            if column.len() != images.len() {
                return Err(DataError::invalid(
                    &path,
                    format!(
                        "{} labels, but {} lists {} images",
                        column.len(),
                        list_path.display(),
                        images.len()
                    ),
                ));
            }
            Ok(column)
        })
        .collect::<Result<_>>()?;
    let selected: Option<HashSet<String>> = match split {
        Subset::All => None,
        Subset::Train => Some(
            read_image_list(&root.join("ImageList").join("TrainImagelist.txt"))?
                .into_iter()
                .collect(),
        ),
        Subset::Test => Some(
            read_image_list(&root.join("ImageList").join("TestImagelist.txt"))?
                .into_iter()
                .collect(),
        ),
    };
    let n_classes = concepts.len();
    let mut paths = Vec::new();
    let mut values = Vec::new();
    for (i, image) in images.iter().enumerate() {
        if selected.as_ref().is_some_and(|s| !s.contains(image)) {
            continue;
        }
        paths.push(PathBuf::from(image));
        values.extend((0..n_classes).map(|j| columns[j][i]));
    }
    Dataset::from_paths(paths, concepts, values, split.split_name())
}
