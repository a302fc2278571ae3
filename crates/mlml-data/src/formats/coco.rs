//! COCO `instances_*.json` (2014 and 2017).
//!
//! Category ids are not contiguous (1..90 with gaps): columns follow ascending category id, the
//! `cat2cat` order of the ASL / Hill / SPLC code and the order of `categories` in the file.
//! Every annotation counts, crowd ones included, as in the reference formatting scripts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{read_file, DataError, Result};
use crate::labels::{NEGATIVE, POSITIVE};

#[derive(Deserialize)]
struct Instances<'a> {
    #[serde(borrow)]
    images: Vec<Image<'a>>,
    annotations: Vec<Annotation>,
    #[serde(borrow)]
    categories: Vec<Category<'a>>,
}

#[derive(Deserialize)]
struct Image<'a> {
    id: u64,
    #[serde(borrow)]
    file_name: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct Annotation {
    id: Option<u64>,
    image_id: u64,
    category_id: u64,
}

#[derive(Deserialize)]
struct Category<'a> {
    id: u64,
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
}

/// Row order of a COCO import.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum CocoOrder {
    /// The order of `images` in the file.
    #[default]
    File,
    /// Ascending image id.
    Id,
    /// Image ids sorted as decimal strings: the order of Cole et al.'s `format_coco.py`, needed
    /// to reproduce their single-positive files.
    IdString,
}

/// Options of [`read_coco`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoOptions {
    /// Keep images with no annotation (all negative). The reference protocols leave them out.
    pub keep_unannotated: bool,
    /// Row order.
    pub order: CocoOrder,
    /// Prefix joined to each `file_name` (e.g. `train2014`).
    pub image_prefix: Option<PathBuf>,
}

/// Reads a COCO instances file into a fully observed dataset.
///
/// # Errors
/// Malformed JSON (with line and column), an annotation naming an unknown image or category
/// (with the annotation's id), duplicate ids, or no category.
pub fn read_coco(path: &Path, options: &CocoOptions) -> Result<Dataset> {
    let bytes = read_file(path)?;
    let instances: Instances<'_> = serde_json::from_slice(&bytes).map_err(|e| {
        DataError::parse(
            path,
            format!("line {}, column {}", e.line(), e.column()),
            e.to_string(),
        )
    })?;
    if instances.categories.is_empty() {
        return Err(DataError::invalid(path, "no categories"));
    }
    let mut categories: Vec<&Category<'_>> = instances.categories.iter().collect();
    categories.sort_by_key(|c| c.id);
    let mut column_of = HashMap::with_capacity(categories.len());
    for (j, c) in categories.iter().enumerate() {
        if column_of.insert(c.id, j).is_some() {
            return Err(DataError::invalid(
                path,
                format!("category id {} appears twice", c.id),
            ));
        }
    }
    let n_classes = categories.len();
    let mut row_of = HashMap::with_capacity(instances.images.len());
    for (i, image) in instances.images.iter().enumerate() {
        if row_of.insert(image.id, i).is_some() {
            return Err(DataError::invalid(
                path,
                format!("image id {} appears twice", image.id),
            ));
        }
    }
    let mut values = vec![NEGATIVE; instances.images.len() * n_classes];
    let mut annotated = vec![false; instances.images.len()];
    for (k, a) in instances.annotations.iter().enumerate() {
        let which = || {
            a.id.map_or(format!("annotation #{k}"), |id| {
                format!("annotation id {id}")
            })
        };
        let &i = row_of.get(&a.image_id).ok_or_else(|| {
            DataError::parse(path, which(), format!("unknown image_id {}", a.image_id))
        })?;
        let &j = column_of.get(&a.category_id).ok_or_else(|| {
            DataError::parse(
                path,
                which(),
                format!("unknown category_id {}", a.category_id),
            )
        })?;
        values[i * n_classes + j] = POSITIVE;
        annotated[i] = true;
    }
    let mut rows: Vec<usize> = (0..instances.images.len())
        .filter(|&i| options.keep_unannotated || annotated[i])
        .collect();
    match options.order {
        CocoOrder::File => {}
        CocoOrder::Id => rows.sort_by_key(|&i| instances.images[i].id),
        CocoOrder::IdString => rows.sort_by_cached_key(|&i| instances.images[i].id.to_string()),
    }
    let mut paths = Vec::with_capacity(rows.len());
    let mut ordered = Vec::with_capacity(rows.len() * n_classes);
    for &i in &rows {
        let name = Path::new(instances.images[i].file_name.as_ref());
        paths.push(match &options.image_prefix {
            Some(prefix) => prefix.join(name),
            None => name.to_path_buf(),
        });
        ordered.extend_from_slice(&values[i * n_classes..(i + 1) * n_classes]);
    }
    let classes = categories.iter().map(|c| c.name.to_string()).collect();
    let split = split_from_name(path);
    Dataset::from_paths(paths, classes, ordered, split)
}

/// `instances_train2014.json` -> `train2014`.
fn split_from_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    stem.strip_prefix("instances_").map(str::to_string)
}
