//! Suggested labels for review: the unobserved (image, class) entries of a training set that a
//! model ranks highest (or lowest), written as a TSV a person can read and edit, and applied back
//! to the label set as observed positives (or negatives).
//!
//! The TSV's header is `row`, `image`, `class`, `score`, `rank` (tab-separated): `row` is the
//! entry's 0-based row in the
//! training label file, `image` its image path or sample id, `score` the model's probability,
//! `rank` 1 for the best suggestion. Its sidecar (`suggestions.meta.json` beside
//! `suggestions.tsv`) records the run that made it and whether it suggests positives or
//! negatives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, ProvenanceStep};
use crate::error::{DataError, Result};
use crate::formats::{sidecar_path, write_atomic};
use crate::labels::{NEGATIVE, POSITIVE, UNOBSERVED};

/// The TSV's header line.
pub const HEADER: &str = "row\timage\tclass\tscore\trank";

/// One suggested entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Suggestion {
    /// 0-based row in the training label file.
    pub row: usize,
    /// The row's image path (as the label file lists it) or sample id.
    pub image: String,
    /// The class name.
    pub class: String,
    /// The model's probability for the entry.
    pub score: f32,
    /// 1 for the best suggestion.
    pub rank: usize,
}

/// What a suggestion proposes an entry becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Proposal {
    /// An observed positive: the highest-scoring unobserved entries.
    #[default]
    Positive,
    /// An observed negative: the lowest-scoring unobserved entries.
    Negative,
}

impl Proposal {
    fn code(self) -> i8 {
        match self {
            Proposal::Positive => POSITIVE,
            Proposal::Negative => NEGATIVE,
        }
    }
}

/// The sidecar of a suggestions file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuggestionsInfo {
    /// The run directory whose model ranked the entries.
    pub run: String,
    /// The epoch of the model that scored them.
    pub epoch: usize,
    /// Positives or negatives.
    pub proposal: Proposal,
    /// How many were kept, in words (`top 1000`, `score >= 0.9`).
    pub kept: String,
    /// Unobserved entries the model scored.
    pub candidates: usize,
}

/// The TSV's text: the header, then one line per suggestion in the given order.
pub fn to_tsv(suggestions: &[Suggestion]) -> String {
    let mut text = String::with_capacity(64 * (suggestions.len() + 1));
    text.push_str(HEADER);
    text.push('\n');
    for s in suggestions {
        text.push_str(&format!(
            "{}\t{}\t{}\t{:.6}\t{}\n",
            s.row, s.image, s.class, s.score, s.rank
        ));
    }
    text
}

/// Writes the TSV (best first) and its sidecar.
///
/// # Errors
/// A file that cannot be written.
pub fn write_suggestions(
    path: &Path,
    suggestions: &[Suggestion],
    info: &SuggestionsInfo,
) -> Result<()> {
    write_atomic(path, to_tsv(suggestions).as_bytes())?;
    let json = serde_json::to_vec_pretty(info).expect("the sidecar serialises");
    write_atomic(&sidecar_path(path), &json)
}

/// Reads a suggestions TSV (the whole file or the lines a reviewer kept) and its sidecar when
/// there is one.
///
/// # Errors
/// A missing header, a line without five fields, a field that does not parse; each names the
/// file and line.
pub fn read_suggestions(path: &Path) -> Result<(Vec<Suggestion>, Option<SuggestionsInfo>)> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let parse_error = |line: usize, message: String| DataError::Parse {
        path: path.to_path_buf(),
        location: format!("line {line}"),
        message,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim_end() == HEADER => {}
        other => {
            return Err(parse_error(
                1,
                format!(
                    "expected the header {HEADER:?}, found {:?}",
                    other.map_or("", |(_, l)| l)
                ),
            ))
        }
    }
    let mut suggestions = Vec::new();
    for (i, line) in lines {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [row, image, class, score, rank] = fields[..] else {
            return Err(parse_error(
                number,
                format!("{} fields, expected 5 ({HEADER})", fields.len()),
            ));
        };
        let number_of = |name: &str, text: &str| -> Result<usize> {
            text.trim()
                .parse()
                .map_err(|_| parse_error(number, format!("{name} {text:?} is not a whole number")))
        };
        let score: f32 = score
            .trim()
            .parse()
            .ok()
            .filter(|s: &f32| s.is_finite())
            .ok_or_else(|| parse_error(number, format!("score {score:?} is not a number")))?;
        suggestions.push(Suggestion {
            row: number_of("row", row)?,
            image: image.to_string(),
            class: class.to_string(),
            score,
            rank: number_of("rank", rank)?,
        });
    }
    let sidecar = sidecar_path(path);
    let info = if sidecar.is_file() {
        let text = std::fs::read_to_string(&sidecar).map_err(|e| DataError::io(&sidecar, e))?;
        Some(serde_json::from_str(&text).map_err(|e| DataError::Parse {
            path: sidecar.clone(),
            location: format!("line {}", e.line()),
            message: e.to_string(),
        })?)
    } else {
        None
    };
    Ok((suggestions, info))
}

/// Which suggestions are accepted.
#[derive(Clone, Debug, PartialEq)]
pub enum Accept {
    /// Ranks 1 to N.
    Top(usize),
    /// Scores at least S for positives, at most S for negatives.
    MinScore(f32),
    /// The lines of a reviewed copy of the suggestions (the TSV with the rejected lines
    /// deleted).
    Reviewed(PathBuf),
}

impl std::str::FromStr for Accept {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        if let Some(n) = text.strip_prefix("top:") {
            return n
                .parse()
                .map(Accept::Top)
                .map_err(|_| format!("top:{n}: expected a whole number, as in top:1000"));
        }
        if let Some(s) = text.strip_prefix("min-score:") {
            return s
                .parse::<f32>()
                .ok()
                .filter(|s| (0.0..=1.0).contains(s))
                .map(Accept::MinScore)
                .ok_or_else(|| {
                    format!("min-score:{s}: expected a probability, as in min-score:0.9")
                });
        }
        if text.is_empty() {
            return Err("expected top:N, min-score:S or a reviewed suggestions file".into());
        }
        Ok(Accept::Reviewed(PathBuf::from(text)))
    }
}

impl std::fmt::Display for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Accept::Top(n) => write!(f, "top:{n}"),
            Accept::MinScore(s) => write!(f, "min-score:{s}"),
            Accept::Reviewed(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What [`apply`] did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Applied {
    /// Entries set to the proposed label.
    pub accepted: usize,
    /// Suggestions the rule left out.
    pub left: usize,
}

/// The label set with the accepted suggestions observed as `proposal` says, and a provenance
/// step recording the suggestions file, its run, the rule and the count.
///
/// `suggestions_path` names the whole suggestions file (its sidecar says the run and whether it
/// proposes positives or negatives); with [`Accept::Reviewed`] the accepted lines are read from
/// the reviewed copy, every one of which must be a line of the whole file.
///
/// # Errors
/// A suggestion whose row is past the label set, whose image is not that row's, whose class the
/// set does not have, or whose entry is already observed; a reviewed line that the suggestions
/// do not hold. Each names the file and line.
pub fn apply(
    labels: &Dataset,
    suggestions_path: &Path,
    accept: &Accept,
) -> Result<(Dataset, Applied)> {
    let (all, info) = read_suggestions(suggestions_path)?;
    let proposal = info.as_ref().map_or(Proposal::Positive, |i| i.proposal);
    let chosen: Vec<(usize, &Suggestion)> = match accept {
        Accept::Top(n) => all
            .iter()
            .enumerate()
            .filter(|(_, s)| s.rank <= *n)
            .collect(),
        Accept::MinScore(min) => all
            .iter()
            .enumerate()
            .filter(|(_, s)| match proposal {
                Proposal::Positive => s.score >= *min,
                Proposal::Negative => s.score <= *min,
            })
            .collect(),
        Accept::Reviewed(reviewed) => {
            let (kept, _) = read_suggestions(reviewed)?;
            // Each reviewed line found by its entry, not by a scan of every suggestion.
            let mut index: HashMap<(usize, &str), usize> = HashMap::with_capacity(all.len());
            for (i, a) in all.iter().enumerate() {
                index.entry((a.row, a.class.as_str())).or_insert(i);
            }
            let mut chosen = Vec::with_capacity(kept.len());
            for (k, s) in kept.iter().enumerate() {
                let Some(&i) = index.get(&(s.row, s.class.as_str())) else {
                    return Err(DataError::Invalid {
                        path: reviewed.clone(),
                        message: format!(
                            "line {}: row {} class '{}' is not a suggestion of {}",
                            k + 2,
                            s.row,
                            s.class,
                            suggestions_path.display()
                        ),
                    });
                };
                chosen.push((i, &all[i]));
            }
            chosen
        }
    };
    let mut values = labels.labels.values().to_vec();
    let n_classes = labels.labels.n_classes();
    let ids = labels.labels.sample_ids();
    for &(i, s) in &chosen {
        let invalid = |message: String| DataError::Invalid {
            path: suggestions_path.to_path_buf(),
            message: format!("line {}: {message}", i + 2),
        };
        if s.row >= labels.len() {
            return Err(invalid(format!(
                "row {} is past the label set's {} rows",
                s.row,
                labels.len()
            )));
        }
        let path = labels.image_paths[s.row].to_string_lossy();
        if s.image != path && s.image != ids[s.row] {
            return Err(invalid(format!(
                "row {} is {} in the label set, not {}: the suggestions belong to another set",
                s.row, path, s.image
            )));
        }
        let Some(class) = labels.labels.class_index(&s.class) else {
            return Err(invalid(format!("no class '{}' in the label set", s.class)));
        };
        let entry = &mut values[s.row * n_classes + class];
        if *entry != UNOBSERVED {
            return Err(invalid(format!(
                "row {} class '{}' is already observed ({}) in the label set",
                s.row, s.class, *entry
            )));
        }
        *entry = proposal.code();
    }
    let applied = Applied {
        accepted: chosen.len(),
        left: all.len() - chosen.len(),
    };
    let new_labels =
        crate::labels::LabelMatrix::new(labels.labels.classes().to_vec(), ids.to_vec(), values)?;
    let step = ProvenanceStep {
        step: crate::dataset::REVIEW_STEP.into(),
        params: serde_json::json!({
            "suggestions": suggestions_path.display().to_string(),
            "run": info.as_ref().map(|i| i.run.clone()),
            "epoch": info.as_ref().map(|i| i.epoch),
            "proposal": proposal,
            "accept": accept.to_string(),
        }),
        report: serde_json::to_value(&applied).expect("the report serialises"),
    };
    Ok((labels.with_labels(new_labels, step)?, applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Dataset {
        Dataset::from_paths(
            vec!["a.png".into(), "b.png".into(), "c.png".into()],
            vec!["cat".into(), "dog".into()],
            vec![1, 0, 0, 1, 0, 0],
            None,
        )
        .unwrap()
    }

    fn suggestions(dir: &Path, proposal: Proposal) -> PathBuf {
        let path = dir.join("s.tsv");
        let list = [
            (0, "a.png", "dog", 0.9, 1),
            (2, "c.png", "cat", 0.8, 2),
            (1, "b.png", "cat", 0.3, 3),
        ];
        let list: Vec<Suggestion> = list
            .iter()
            .map(|&(row, image, class, score, rank)| Suggestion {
                row,
                image: image.into(),
                class: class.into(),
                score,
                rank,
            })
            .collect();
        let info = SuggestionsInfo {
            run: "runs/x".into(),
            epoch: 3,
            proposal,
            kept: "top 3".into(),
            candidates: 4,
        };
        write_suggestions(&path, &list, &info).unwrap();
        path
    }

    #[test]
    fn the_tsv_round_trips_with_its_header_and_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let path = suggestions(dir.path(), Proposal::Positive);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("row\timage\tclass\tscore\trank\n0\ta.png\tdog\t0.900000\t1\n"));
        let (read, info) = read_suggestions(&path).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read[1].row, 2);
        assert_eq!(info.unwrap().run, "runs/x");
    }

    #[test]
    fn accepted_entries_become_observed_and_the_step_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = suggestions(dir.path(), Proposal::Positive);
        let (new, applied) = apply(&labels(), &path, &Accept::Top(2)).unwrap();
        assert_eq!(
            applied,
            Applied {
                accepted: 2,
                left: 1
            }
        );
        assert_eq!(new.labels.values(), [1, 1, 0, 1, 1, 0]);
        let step = new.provenance.last().unwrap();
        assert_eq!(step.step, "review-apply");
        assert_eq!(step.params["run"], "runs/x");
        assert_eq!(step.params["accept"], "top:2");

        let (new, _) = apply(&labels(), &path, &Accept::MinScore(0.85)).unwrap();
        assert_eq!(new.labels.values(), [1, 1, 0, 1, 0, 0]);

        // A reviewed copy: the header and the lines kept.
        let reviewed = dir.path().join("kept.tsv");
        std::fs::write(&reviewed, format!("{HEADER}\n1\tb.png\tcat\t0.3\t3\n")).unwrap();
        let (new, applied) = apply(&labels(), &path, &Accept::Reviewed(reviewed)).unwrap();
        assert_eq!(applied.accepted, 1);
        assert_eq!(new.labels.values(), [1, 0, 1, 1, 0, 0]);

        let negatives = tempfile::tempdir().unwrap();
        let path = suggestions(negatives.path(), Proposal::Negative);
        let (new, _) = apply(&labels(), &path, &Accept::MinScore(0.3)).unwrap();
        assert_eq!(new.labels.values(), [1, 0, -1, 1, 0, 0]);
    }

    #[test]
    fn suggestions_of_another_set_are_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = suggestions(dir.path(), Proposal::Positive);
        let other = Dataset::from_paths(
            vec!["a.png".into(), "x.png".into(), "c.png".into()],
            vec!["cat".into(), "dog".into()],
            vec![1, 0, 0, 1, 0, 0],
            None,
        )
        .unwrap();
        let err = apply(&other, &path, &Accept::Top(3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("s.tsv: line 4: row 1 is x.png"), "{err}");
        let observed = Dataset::from_paths(
            vec!["a.png".into(), "b.png".into(), "c.png".into()],
            vec!["cat".into(), "dog".into()],
            vec![1, 1, 0, 1, 0, 0],
            None,
        )
        .unwrap();
        let err = apply(&observed, &path, &Accept::Top(1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2: row 0 class 'dog' is already observed"),
            "{err}"
        );
        std::fs::write(&path, "row\timage\n").unwrap();
        let err = read_suggestions(&path).unwrap_err().to_string();
        assert!(err.contains("line 1: expected the header"), "{err}");
        assert!("top:x".parse::<Accept>().is_err());
        assert!("min-score:2".parse::<Accept>().is_err());
    }
}
