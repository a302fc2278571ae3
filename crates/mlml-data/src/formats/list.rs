//! Text list formats.
//!
//! **mlml list** (`.tsv`, read and written): header lines first, then one line per image; fields
//! are separated by tabs (shown as `<TAB>`).
//! ```text
//! #classes<TAB>person,bicycle,car
//! #unlisted<TAB>unobserved
//! train2014/a.jpg<TAB>person,car
//! train2014/b.jpg<TAB><TAB>bicycle
//! ```
//! `#classes` (required) names the columns; `#unlisted` says what a class not listed on a line
//! is: `negative` (the default: a full annotation) or `unobserved`. The second field lists the
//! positives, the optional third the observed negatives, each by class name or 0-based index.
//!
//! **Hill/SPLC release lists** (read only): `name.jpg,3 17 42` per line, 0-based indices, the
//! class names from a separate list (the `dataset/coco_train_*.txt` files of robust-loss-mlml).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{read_text, DataError, Result};
use crate::labels::{LabelMatrix, NEGATIVE, POSITIVE, UNOBSERVED};

/// What a class missing from a line means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Unlisted {
    /// An observed negative: the file is a full annotation.
    #[default]
    Negative,
    /// Unobserved: the file lists only what was annotated.
    Unobserved,
}

impl Unlisted {
    fn code(self) -> i8 {
        match self {
            Unlisted::Negative => NEGATIVE,
            Unlisted::Unobserved => UNOBSERVED,
        }
    }
}

/// Resolves class tokens (names or indices) to column indices.
struct ClassLookup<'a> {
    classes: &'a [String],
    by_name: HashMap<&'a str, usize>,
}

impl<'a> ClassLookup<'a> {
    fn new(classes: &'a [String]) -> Self {
        let by_name = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        Self { classes, by_name }
    }

    fn resolve(&self, token: &str) -> std::result::Result<usize, String> {
        if let Some(&i) = self.by_name.get(token) {
            return Ok(i);
        }
        match token.parse::<usize>() {
            Ok(i) if i < self.classes.len() => Ok(i),
            Ok(i) => Err(format!(
                "class index {i} is out of range 0..{}",
                self.classes.len()
            )),
            Err(_) => {
                let shown: Vec<&str> = self.classes.iter().take(8).map(String::as_str).collect();
                let more = if self.classes.len() > 8 { ", ..." } else { "" };
                Err(format!(
                    "unknown class '{token}' (classes: {}{more})",
                    shown.join(", ")
                ))
            }
        }
    }
}

fn check_class_names(path: &Path, classes: &[String]) -> Result<()> {
    let mut seen = HashMap::new();
    for (i, c) in classes.iter().enumerate() {
        if c.is_empty() || c.contains(['\t', ',', '\n', '\r']) {
            return Err(DataError::invalid(
                path,
                format!("class {i} name {c:?} is empty or holds a tab, comma or newline"),
            ));
        }
        if let Some(first) = seen.insert(c.as_str(), i) {
            return Err(DataError::invalid(
                path,
                format!("class '{c}' is named twice (columns {first} and {i})"),
            ));
        }
    }
    Ok(())
}

/// Reads an mlml list file.
///
/// # Errors
/// A missing or malformed header, unknown classes, a class listed twice on a line, a line
/// with more than three fields, or no image: each names the line.
pub fn read_list(path: &Path) -> Result<Dataset> {
    let text = read_text(path)?;
    let mut classes: Option<Vec<String>> = None;
    let mut unlisted = Unlisted::Negative;
    let mut paths = Vec::new();
    let mut values: Vec<i8> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(directive) = line.strip_prefix('#') {
            if !paths.is_empty() {
                return Err(DataError::at_line(
                    path,
                    lineno,
                    "header line after the first image line",
                ));
            }
            let (key, value) = directive.split_once('\t').unwrap_or((directive, ""));
            match key.trim() {
                "classes" => {
                    let names: Vec<String> =
                        value.split(',').map(|s| s.trim().to_string()).collect();
                    check_class_names(path, &names)
                        .map_err(|e| DataError::at_line(path, lineno, e.to_string()))?;
                    classes = Some(names);
                }
                "unlisted" => {
                    unlisted = match value.trim() {
                        "negative" => Unlisted::Negative,
                        "unobserved" => Unlisted::Unobserved,
                        other => {
                            return Err(DataError::at_line(
                                path,
                                lineno,
                                format!(
                                    "#unlisted must be 'negative' or 'unobserved', got '{other}'"
                                ),
                            ))
                        }
                    }
                }
                other => {
                    return Err(DataError::at_line(
                        path,
                        lineno,
                        format!("unknown header '#{other}' (expected #classes or #unlisted)"),
                    ))
                }
            }
            continue;
        }
        let Some(classes) = classes.as_deref() else {
            return Err(DataError::at_line(
                path,
                lineno,
                "no '#classes<TAB>a,b,...' header before the first image",
            ));
        };
        let lookup = ClassLookup::new(classes);
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() > 3 {
            return Err(DataError::at_line(
                path,
                lineno,
                format!(
                    "{} tab-separated fields; expected path, positives and optional negatives",
                    fields.len()
                ),
            ));
        }
        if fields[0].is_empty() {
            return Err(DataError::at_line(path, lineno, "empty image path"));
        }
        let start = values.len();
        values.extend(std::iter::repeat_n(unlisted.code(), classes.len()));
        let row = &mut values[start..];
        for (field, code) in fields[1..].iter().zip([POSITIVE, NEGATIVE]) {
            for token in field.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let j = lookup
                    .resolve(token)
                    .map_err(|m| DataError::at_line(path, lineno, m))?;
                if row[j] == POSITIVE || (row[j] == NEGATIVE && unlisted == Unlisted::Unobserved) {
                    return Err(DataError::at_line(
                        path,
                        lineno,
                        format!("class '{}' listed twice", classes[j]),
                    ));
                }
                row[j] = code;
            }
        }
        paths.push(PathBuf::from(fields[0]));
    }
    let classes =
        classes.ok_or_else(|| DataError::invalid(path, "empty file: no '#classes' header"))?;
    if paths.is_empty() {
        return Err(DataError::invalid(path, "no image lines"));
    }
    Dataset::from_paths(paths, classes, values, None)
}

/// Encodes a dataset in the mlml list format; the inverse of [`read_list`].
///
/// # Errors
/// When a class name or an image path cannot be written in the format (tabs, commas, newlines).
pub fn list_text(path: &Path, dataset: &Dataset) -> Result<String> {
    let labels: &LabelMatrix = &dataset.labels;
    check_class_names(path, labels.classes())?;
    let full = labels.is_fully_observed();
    let mut out = format!("#classes\t{}\n", labels.classes().join(","));
    if !full {
        out.push_str("#unlisted\tunobserved\n");
    }
    for (image, row) in dataset.image_paths.iter().zip(labels.rows()) {
        let image = image.to_string_lossy();
        if image.is_empty() || image.contains(['\t', '\n', '\r']) || image.starts_with('#') {
            return Err(DataError::Usage(format!(
                "{}: image path {image:?} is empty, starts with '#' or holds a tab or newline",
                path.display()
            )));
        }
        out.push_str(&image);
        let column = |code: i8| {
            let names: Vec<&str> = row
                .iter()
                .zip(labels.classes())
                .filter(|(v, _)| **v == code)
                .map(|(_, c)| c.as_str())
                .collect();
            names.join(",")
        };
        let positives = column(POSITIVE);
        out.push('\t');
        out.push_str(&positives);
        if !full {
            let negatives = column(NEGATIVE);
            if !negatives.is_empty() {
                out.push('\t');
                out.push_str(&negatives);
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// Reads a Hill/SPLC release list (`name.jpg,idx idx ...`), with class names from `classes`.
///
/// # Errors
/// A line without a comma, a non-numeric or out-of-range index, a repeated index, or no line.
pub fn read_hill_list(path: &Path, classes: Vec<String>, unlisted: Unlisted) -> Result<Dataset> {
    let text = read_text(path)?;
    let lookup_len = classes.len();
    let mut paths = Vec::new();
    let mut values = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (name, indices) = line
            .split_once(',')
            .ok_or_else(|| DataError::at_line(path, lineno, "expected 'image,idx idx ...'"))?;
        let start = values.len();
        values.extend(std::iter::repeat_n(unlisted.code(), lookup_len));
        for token in indices.split(' ').map(str::trim).filter(|t| !t.is_empty()) {
            let j: usize = token.parse().map_err(|_| {
                DataError::at_line(path, lineno, format!("'{token}' is not a class index"))
            })?;
            if j >= lookup_len {
                return Err(DataError::at_line(
                    path,
                    lineno,
                    format!("class index {j} is out of range 0..{lookup_len}"),
                ));
            }
            if values[start + j] == POSITIVE {
                return Err(DataError::at_line(
                    path,
                    lineno,
                    format!("class index {j} listed twice"),
                ));
            }
            values[start + j] = POSITIVE;
        }
        paths.push(PathBuf::from(name.trim()));
    }
    if paths.is_empty() {
        return Err(DataError::invalid(path, "no image lines"));
    }
    Dataset::from_paths(paths, classes, values, None)
}

/// Reads a class list: one name per line, blank lines ignored.
///
/// # Errors
/// When unreadable, empty, or a name repeats.
pub fn read_class_list(path: &Path) -> Result<Vec<String>> {
    let classes: Vec<String> = read_text(path)?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if classes.is_empty() {
        return Err(DataError::invalid(path, "no class names"));
    }
    check_class_names(path, &classes)?;
    Ok(classes)
}
