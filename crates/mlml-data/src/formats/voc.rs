//! Pascal VOC 2007 / 2012: `Annotations/<id>.xml` and `ImageSets/Main/<split>.txt`.
//!
//! Columns are the 20 VOC classes in alphabetical order. An object marked `difficult` counts as a
//! positive by default, as in the ASL-line releases; [`Difficult`] offers the alternatives.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{read_text, DataError, Result};
use crate::labels::{NEGATIVE, POSITIVE, UNOBSERVED};

/// The 20 VOC classes, alphabetical (the column order of every VOC release we follow).
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// How a class seen only in `difficult` objects of an image is labelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Difficult {
    /// Positive (the reference releases).
    #[default]
    Positive,
    /// Negative (as if the object were not there).
    Negative,
    /// Unobserved (neither).
    Unobserved,
}

/// Reads a VOC split (`train`, `val`, `trainval`, `test`) under a `VOCdevkit/VOC20xx` folder.
///
/// # Errors
/// A missing split list or annotation file, malformed XML (with line and column), an object
/// without a name, or a class outside the 20.
pub fn read_voc(root: &Path, split: &str, difficult: Difficult) -> Result<Dataset> {
    let list = root
        .join("ImageSets")
        .join("Main")
        .join(format!("{split}.txt"));
    let ids: Vec<String> = read_text(&list)?
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(DataError::invalid(&list, "no image ids"));
    }
    let rows: Vec<[i8; 20]> = ids
        .par_iter()
        .map(|id| {
            read_annotation(
                &root.join("Annotations").join(format!("{id}.xml")),
                difficult,
            )
        })
        .collect::<Result<_>>()?;
    let paths = ids
        .iter()
        .map(|id| PathBuf::from("JPEGImages").join(format!("{id}.jpg")))
        .collect();
    let classes = VOC_CLASSES.iter().map(|c| c.to_string()).collect();
    Dataset::from_paths(paths, classes, rows.concat(), Some(split.to_string()))
}

fn read_annotation(path: &Path, difficult: Difficult) -> Result<[i8; 20]> {
    let text = read_text(path)?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| {
        let pos = e.pos();
        DataError::parse(
            path,
            format!("line {}, column {}", pos.row, pos.col),
            e.to_string(),
        )
    })?;
    let mut row = [NEGATIVE; 20];
    let mut only_difficult = [false; 20];
    for object in doc.descendants().filter(|n| n.has_tag_name("object")) {
        let line = doc.text_pos_at(object.range().start).row;
        let child_text = |tag: &str| {
            object
                .children()
                .find(|c| c.has_tag_name(tag))
                .and_then(|c| c.text())
                .map(str::trim)
        };
        let name = child_text("name")
            .ok_or_else(|| DataError::at_line(path, line as usize, "<object> without <name>"))?;
        let j = VOC_CLASSES.iter().position(|c| *c == name).ok_or_else(|| {
            DataError::at_line(path, line as usize, format!("unknown VOC class '{name}'"))
        })?;
        let is_difficult = child_text("difficult") == Some("1");
        if !is_difficult {
            row[j] = POSITIVE;
            only_difficult[j] = false;
        } else if row[j] != POSITIVE {
            only_difficult[j] = true;
        }
    }
    for j in 0..20 {
        if only_difficult[j] {
            row[j] = match difficult {
                Difficult::Positive => POSITIVE,
                Difficult::Negative => NEGATIVE,
                Difficult::Unobserved => UNOBSERVED,
            };
        }
    }
    Ok(row)
}
