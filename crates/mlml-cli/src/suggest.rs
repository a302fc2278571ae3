//! `mlml suggest`: the unobserved entries of a run's training rows that its model finds most
//! likely positive (or negative), as a TSV for review and optionally a grid of their images.

use std::path::PathBuf;

use anyhow::Result;
use mlml_data::review::{to_tsv, write_suggestions, Proposal};
use mlml_train::suggest::{suggest, Keep};
use mlml_train::ConvBackend;

use crate::grid::{row_image, write_grid, Tile};
use crate::stdout::print;

/// `mlml suggest`'s arguments.
#[derive(clap::Args, Debug)]
pub struct SuggestArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Write the TSV here (and its sidecar `.meta.json` beside it) instead of printing it.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Keep the best N entries [default: 1000 without --min-score].
    #[arg(long, conflicts_with = "min_score")]
    pub top: Option<usize>,
    /// Keep every entry scoring at least S (at most S with --negatives).
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Suggest observed negatives instead: the entries the model finds least likely.
    #[arg(long)]
    pub negatives: bool,
    /// Also draw the top suggestions' images with their class and score (a PNG).
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// How many suggestions the grid shows.
    #[arg(long, default_value_t = 24)]
    pub grid_count: usize,
}

pub fn suggest_cmd<B: ConvBackend>(args: &SuggestArgs, device: &B::Device) -> Result<()> {
    let keep = match (args.top, args.min_score) {
        (_, Some(s)) => Keep::MinScore(s),
        (Some(n), None) => Keep::Top(n),
        (None, None) => Keep::Top(1000),
    };
    let proposal = if args.negatives {
        Proposal::Negative
    } else {
        Proposal::Positive
    };
    let suggested = suggest::<B>(&args.run_dir, proposal, keep, device)?;
    if let Some(grid) = &args.grid {
        // Training row i of the run is row train_rows[i] of the file.
        let tiles = suggested
            .suggestions
            .iter()
            .take(args.grid_count)
            .map(|s| {
                let i = suggested
                    .train_rows
                    .iter()
                    .position(|&r| r == s.row)
                    .expect("a suggestion's row is a training row");
                Ok(Tile {
                    image: row_image(&suggested.train, i)?,
                    caption: vec![
                        format!("#{} {}", s.rank, s.class),
                        format!("p {:.3} row {}", s.score, s.row),
                    ],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        write_grid(grid, &tiles, 128)?;
    }
    let info = &suggested.info;
    let summary = format!(
        "mlml: {} of {} unobserved entries ({}), scored by the model of epoch {}",
        suggested.suggestions.len(),
        info.candidates,
        info.kept,
        info.epoch
    );
    match &args.output {
        Some(path) => {
            write_suggestions(path, &suggested.suggestions, info)?;
            eprintln!("{summary}; wrote {}", path.display());
            Ok(())
        }
        None => {
            eprintln!("{summary}");
            print(to_tsv(&suggested.suggestions).trim_end())
        }
    }
}
