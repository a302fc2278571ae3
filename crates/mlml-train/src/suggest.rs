//! What `mlml suggest` does, as a library: score a run's training rows with its selected
//! model and rank the entries the training labels left unobserved, the likeliest positives
//! first (or, for negatives, the least likely first).

use std::path::Path;

use mlml_data::review::{Proposal, Suggestion, SuggestionsInfo};
use mlml_data::UNOBSERVED;

use crate::error::{bail, Result};
use crate::run::RunDir;
use crate::run_data::{AnySource, Prober};
use crate::{load_best, predict, ConvBackend, Source};

/// How many ranked entries to keep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Keep {
    /// The best N.
    Top(usize),
    /// Every entry scoring at least S (positives) or at most S (negatives).
    MinScore(f32),
}

impl Keep {
    fn describe(self, proposal: Proposal) -> String {
        match (self, proposal) {
            (Keep::Top(n), _) => format!("top {n}"),
            (Keep::MinScore(s), Proposal::Positive) => format!("score >= {s}"),
            (Keep::MinScore(s), Proposal::Negative) => format!("score <= {s}"),
        }
    }
}

/// A run's suggestions, and the training rows they point into.
pub struct Suggested {
    /// Best first.
    pub suggestions: Vec<Suggestion>,
    /// What the sidecar records.
    pub info: SuggestionsInfo,
    /// The run's training rows (their images, for a grid).
    pub train: AnySource,
    /// Row `i` of `train` is row `train_rows[i]` of the training file.
    pub train_rows: Vec<usize>,
}

/// Ranks the unobserved entries of a run's training rows by its selected model's
/// probabilities: positives highest first, negatives lowest first, ties by (row, class).
/// `row` is the row of the training file, `image` the row's sample id (the image path as
/// listed, for image files).
///
/// # Errors
/// A run directory that cannot be read, data that no longer reads as the run read it, or a
/// keep rule outside its range.
pub fn suggest<B: ConvBackend>(
    run_dir: &Path,
    proposal: Proposal,
    keep: Keep,
    device: &B::Device,
) -> Result<Suggested> {
    match keep {
        Keep::Top(0) => bail!("--top 0 keeps nothing"),
        Keep::MinScore(s) if !(0.0..=1.0).contains(&s) => {
            bail!("--min-score {s}: expected a probability in [0, 1]")
        }
        _ => {}
    }
    let dir = RunDir::new(run_dir);
    let config = dir.read_config()?;
    let t = &config.training;
    let prober = Prober::<B>::new(&config.data, &config.model, t.seed, t.batch_size, device);
    let splits = config.data.prepare(prober.as_ref())?;
    let train = splits.train;
    let (model, progress) = load_best::<B>(
        run_dir,
        &config.model.trained(),
        train.input_size(),
        train.labels().n_classes(),
        device,
    )?;
    let scores = predict(&model, &train, t.batch_size, device)?;
    let labels = train.labels();
    let c = labels.n_classes();
    let mut candidates: Vec<(usize, usize, f32)> = labels
        .values()
        .iter()
        .enumerate()
        .filter(|(_, &code)| code == UNOBSERVED)
        .map(|(k, _)| (k / c, k % c, scores[k]))
        .collect();
    let total = candidates.len();
    match proposal {
        Proposal::Positive => {
            candidates.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))))
        }
        Proposal::Negative => {
            candidates.sort_by(|a, b| a.2.total_cmp(&b.2).then((a.0, a.1).cmp(&(b.0, b.1))))
        }
    }
    match keep {
        Keep::Top(n) => candidates.truncate(n),
        Keep::MinScore(s) => candidates.retain(|&(_, _, score)| match proposal {
            Proposal::Positive => score >= s,
            Proposal::Negative => score <= s,
        }),
    }
    let ids = labels.sample_ids();
    let suggestions = candidates
        .iter()
        .enumerate()
        .map(|(rank, &(i, j, score))| Suggestion {
            row: splits.train_rows[i],
            image: ids[i].clone(),
            class: labels.classes()[j].clone(),
            score,
            rank: rank + 1,
        })
        .collect();
    Ok(Suggested {
        suggestions,
        info: SuggestionsInfo {
            run: run_dir.display().to_string(),
            epoch: progress.best_epoch,
            proposal,
            kept: keep.describe(proposal),
            candidates: total,
        },
        train,
        train_rows: splits.train_rows,
    })
}
