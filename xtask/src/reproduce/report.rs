//! A setting's table: each row's figures over seeds, the share of the AN-to-full gap it
//! recovers, the published figure beside it, the recipes, and the files written.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::published::published;
use super::runs::Parallel;
use super::settings::{Recipes, Setting, SettingModel, FULL_LABEL_ROW, QUICK};
use crate::recipes::Recipe;

/// One run's figures, from its `report.json`.
#[derive(Clone, Debug)]
pub(super) struct RunSummary {
    pub(super) map: f64,
    pub(super) cf1: f64,
    pub(super) of1: f64,
    pub(super) seconds: f64,
    pub(super) val_map: f64,
    pub(super) best_epoch: f64,
    /// Read from a run an earlier reproduce finished with the same arguments.
    pub(super) reused: bool,
}

pub(super) fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// One row of a setting's table: a loss's figures over seeds (mean and sample standard
/// deviation), as `docs/results/<setting>.json` holds it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(super) struct Row {
    pub(super) loss: String,
    pub(super) map: f64,
    pub(super) map_std: f64,
    pub(super) cf1: f64,
    pub(super) cf1_std: f64,
    pub(super) of1: f64,
    pub(super) of1_std: f64,
    /// Wall time of one run, process start included.
    pub(super) seconds: f64,
    pub(super) val_map: f64,
    pub(super) seeds: usize,
    pub(super) map_per_seed: Vec<f64>,
    /// (mAP - AN's) / (full labels' - AN's), in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) gap_recovered: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) published_map: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) published_source: Option<&'static str>,
    /// The recipe's name and the repository it follows (paper settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) recipe: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) recipe_follows: Option<&'static str>,
    /// The point of Cole et al.'s grid `--sweep` kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) sweep_choice: Option<String>,
}

pub(super) fn summarise(loss: &str, figures: &[RunSummary]) -> Row {
    let pick = |f: fn(&RunSummary) -> f64| mean_std(&figures.iter().map(f).collect::<Vec<_>>());
    let (map, map_std) = pick(|f| f.map);
    let (cf1, cf1_std) = pick(|f| f.cf1);
    let (of1, of1_std) = pick(|f| f.of1);
    Row {
        loss: loss.to_string(),
        map,
        map_std,
        cf1,
        cf1_std,
        of1,
        of1_std,
        seconds: pick(|f| f.seconds).0,
        val_map: pick(|f| f.val_map).0,
        seeds: figures.len(),
        map_per_seed: figures.iter().map(|f| f.map).collect(),
        ..Row::default()
    }
}

/// The smallest AN-to-full gap (mAP points) for which the recovered share is reported.
pub(super) const MIN_GAP: f64 = 1.0;

/// The share of the gap between AN and the full-label row that each loss recovers.
pub(super) fn add_gap_recovered(rows: &mut [Row]) {
    let find = |name: &str| rows.iter().find(|r| r.loss == name).map(|r| r.map);
    let (Some(an), Some(full)) = (find("an"), find(FULL_LABEL_ROW)) else {
        return;
    };
    // Under one mAP point the ratio is noise over noise (scene: AN is within 0.6 of full).
    if full - an < MIN_GAP {
        return;
    }
    for row in rows.iter_mut() {
        row.gap_recovered = Some(100.0 * (row.map - an) / (full - an));
    }
}

/// The table of `rows`, each followed by the twin rows (`(row of ours, twin's row)`) beside it.
pub(super) fn markdown_table(rows: &[Row], twins: &[(String, Row)], seeds: usize) -> String {
    let pm = |value: f64, std: f64| {
        if value.is_nan() {
            "-".to_string()
        } else if seeds > 1 {
            format!("{value:.2} ± {std:.2}")
        } else {
            format!("{value:.2}")
        }
    };
    let mut out = String::from(
        "| loss | test mAP | CF1 | OF1 | AN→full gap recovered | seconds |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in rows.iter().flat_map(|row| {
        let beside = twins.iter().filter(|(b, _)| *b == row.loss);
        std::iter::once(row).chain(beside.map(|(_, twin)| twin))
    }) {
        let gap = row
            .gap_recovered
            .map(|g| format!("{g:.0} %"))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} |\n",
            row.loss,
            pm(row.map, row.map_std),
            pm(row.cf1, row.cf1_std),
            pm(row.of1, row.of1_std),
            gap,
            row.seconds,
        ));
    }
    out
}

/// Ours beside the published figure, per loss.
pub(super) fn published_table(setting: &str, rows: &[Row]) -> String {
    let mut out = String::from(
        "| loss | test mAP (here) | published | here - published | source |\n|---|---|---|---|---|\n",
    );
    for row in rows {
        let (value, difference, source) = match published(setting, &row.loss) {
            Some((p, source)) => (format!("{p:.2}"), format!("{:+.2}", row.map - p), source),
            None => ("-".into(), "-".into(), "no published figure"),
        };
        out.push_str(&format!(
            "| {} | {:.2} | {value} | {difference} | {source} |\n",
            row.loss, row.map
        ));
    }
    out
}

/// How a setting's runs were made, for the table's note.
pub(super) struct RunNotes {
    pub(super) seeds: usize,
    pub(super) quick: bool,
    pub(super) parallel: Parallel,
    /// Where the twin's rows come from, when the table has them.
    pub(super) twin: Option<String>,
}

pub(super) fn write_results(
    mlml: &Path,
    setting: &Setting,
    rows: &[Row],
    twins: &[(String, Row)],
    table: &str,
    notes: &RunNotes,
    results: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(results).map_err(|e| format!("{}: {e}", results.display()))?;
    let write = |name: String, bytes: &[u8]| {
        let path = results.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    let json_name = format!("{}.json", setting.name);
    let all: Vec<&Row> = rows.iter().chain(twins.iter().map(|(_, r)| r)).collect();
    write(
        json_name.clone(),
        serde_json::to_string_pretty(&all)
            .expect("rows serialise")
            .as_bytes(),
    )?;
    let seeds = notes.seeds;
    let mut flags = String::new();
    if notes.quick {
        flags.push_str(" --quick");
    }
    if seeds != setting.seeds {
        flags.push_str(&format!(" --seeds {seeds}"));
    }
    let seed_note = if setting.seed_draws_labels {
        "seed s draws the labels and initialises the model"
    } else {
        "the labels are the config's one draw; seed s initialises the model and orders the batches"
    };
    let model_note = match setting.model {
        SettingModel::EndToEnd => {
            "the network trains end to end, so `boostlu` boosts its class activation maps."
        }
        SettingModel::FeatureMlp => {
            "a feature MLP has no class activation map to boost, so `boostlu` has no row \
             (`ll-r` is its loss unboosted)."
        }
    };
    let quick_note = if notes.quick {
        format!(
            "\n\n`--quick`: AN, the full labels and one loss of each family: {}.",
            QUICK
                .iter()
                .skip(1)
                .map(|(family, loss)| format!("`{loss}` for {family}"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else {
        String::new()
    };
    let twin_note = notes
        .twin
        .as_ref()
        .map(|source| {
            format!(
                "\n\nThe PyTorch rows train the same network with the same recipe: {source}. \
                 Their seconds are the script's training loop (from the first epoch to the \
                 last evaluation), ours the whole process."
            )
        })
        .unwrap_or_default();
    let md = format!(
        "# {name}\n\n{summary}. Written by `cargo xtask reproduce {name}{flags}` from \
         `{config}` ({seeds} seed(s): {seed_note}; mean ± \
         sample standard deviation over seeds). Test split figures of the epoch with the best \
         validation mAP (sklearn AP, 20 % of the training file held out); CF1 / OF1 at \
         threshold 0.5; mAP, CF1 and OF1 in percent. The last column but one is (mAP - mAP of \
         AN) / (mAP of the full-label row - mAP of AN), left out when that gap is under one \
         mAP point. Seconds: wall time of one run, including the process start ({parallel}). \
         `bce` uses the observed entries only, `an` takes every \
         unobserved label as negative, `bce (full labels)` trains on the full labels (the \
         upper bound); {model_note}{quick_note}{twin_note}\n\n{table}\n![mAP per loss]({name}.png)\n",
        name = setting.name,
        summary = setting.summary,
        config = setting.config,
        parallel = notes.parallel.describe(),
    );
    write(format!("{}.md", setting.name), md.as_bytes())?;
    let png = results.join(format!("{}.png", setting.name));
    let status = Command::new(mlml)
        .args([
            "chart".as_ref(),
            "--results".as_ref(),
            results.join(&json_name).as_os_str(),
            "--title".as_ref(),
            format!("{}: test mAP per loss", setting.name).as_ref(),
            "-o".as_ref(),
            png.as_os_str(),
        ])
        .status()
        .map_err(|e| format!("cannot run {}: {e}", mlml.display()))?;
    if !status.success() {
        return Err(format!("`mlml chart` failed for {}", png.display()));
    }
    println!(
        "wrote {} (.md, .json, .png)",
        results.join(setting.name).display()
    );
    Ok(())
}

/// Per recipe: the rows that follow it, the repository, and what differs from it.
pub(super) fn recipe_section(recipes: Recipes, losses: &[String]) -> String {
    let mut groups: Vec<(Recipe, Vec<&str>)> = Vec::new();
    for loss in losses {
        let recipe = recipes.recipe(loss);
        match groups.iter_mut().find(|(r, _)| r.name == recipe.name) {
            Some((_, rows)) => rows.push(loss),
            None => groups.push((recipe, vec![loss])),
        }
    }
    let mut out = String::new();
    for (recipe, rows) in groups {
        out.push_str(&format!(
            "- **{}** ({}): follows {}; differs: {}.\n",
            recipe.name,
            rows.join(", "),
            recipe.follows,
            recipe.differs.join("; ")
        ));
    }
    out.push_str(
        "\nEvery value of each recipe and its source: `cargo xtask reproduce SETTING --plan`.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_standard_deviation() {
        let (mean, std) = mean_std(&[40.0, 42.0, 44.0]);
        assert_eq!(mean, 42.0);
        assert_eq!(std, 2.0);
        assert_eq!(mean_std(&[41.5]), (41.5, 0.0));
    }

    #[test]
    fn gap_recovered_is_measured_from_an_to_the_full_label_row() {
        let row = |loss: &str, map: f64| Row {
            loss: loss.into(),
            map,
            ..Row::default()
        };
        let mut rows = vec![
            row("an", 40.0),
            row("role", 43.0),
            row(FULL_LABEL_ROW, 50.0),
        ];
        add_gap_recovered(&mut rows);
        assert_eq!(rows[0].gap_recovered, Some(0.0));
        assert_eq!(rows[1].gap_recovered, Some(30.0));
        assert_eq!(rows[2].gap_recovered, Some(100.0));
        let mut tiny_gap = vec![row("an", 81.5), row(FULL_LABEL_ROW, 82.0)];
        add_gap_recovered(&mut tiny_gap);
        assert_eq!(tiny_gap[0].gap_recovered, None);
        let mut without_an = vec![row("role", 43.0)];
        add_gap_recovered(&mut without_an);
        assert_eq!(without_an[0].gap_recovered, None);
    }
}
