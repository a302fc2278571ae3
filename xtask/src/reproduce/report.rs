//! A setting's table: each row's figures over seeds, the share of the AN-to-full gap it
//! recovers, the published figure beside it, the recipes, and the files written.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::published::published;
use super::settings::{Recipes, Setting, FULL_LABEL_ROW};
use crate::recipes::Recipe;

/// One run's figures, from its `report.json`.
#[derive(Clone, Debug)]
pub(super) struct RunFigures {
    pub(super) map: f64,
    pub(super) cf1: f64,
    pub(super) of1: f64,
    pub(super) seconds: f64,
    pub(super) val_map: f64,
    pub(super) best_epoch: f64,
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

pub(super) fn summarise(loss: &str, figures: &[RunFigures]) -> Value {
    let pick = |f: fn(&RunFigures) -> f64| mean_std(&figures.iter().map(f).collect::<Vec<_>>());
    let (map, map_std) = pick(|f| f.map);
    let (cf1, cf1_std) = pick(|f| f.cf1);
    let (of1, of1_std) = pick(|f| f.of1);
    let (seconds, _) = pick(|f| f.seconds);
    let (val_map, _) = pick(|f| f.val_map);
    json!({
        "loss": loss,
        "map": map, "map_std": map_std,
        "cf1": cf1, "cf1_std": cf1_std,
        "of1": of1, "of1_std": of1_std,
        "seconds": seconds,
        "val_map": val_map,
        "seeds": figures.len(),
        "map_per_seed": figures.iter().map(|f| f.map).collect::<Vec<_>>(),
    })
}

/// The smallest AN-to-full gap (mAP points) for which the recovered share is reported.
pub(super) const MIN_GAP: f64 = 1.0;

/// The share of the gap between AN and the full-label row that each loss recovers.
pub(super) fn add_gap_recovered(rows: &mut [Value]) {
    let find = |name: &str, rows: &[Value]| {
        rows.iter()
            .find(|r| r["loss"] == name)
            .and_then(|r| r["map"].as_f64())
    };
    let (Some(an), Some(full)) = (find("an", rows), find(FULL_LABEL_ROW, rows)) else {
        return;
    };
    // Under one mAP point the ratio is noise over noise (scene: AN is within 0.6 of full).
    if full - an < MIN_GAP {
        return;
    }
    for row in rows.iter_mut() {
        let map = row["map"].as_f64().unwrap_or(f64::NAN);
        row["gap_recovered"] = json!(100.0 * (map - an) / (full - an));
    }
}

pub(super) fn markdown_table(rows: &[Value], seeds: usize) -> String {
    let pm = |row: &Value, key: &str| {
        let value = row[key].as_f64().unwrap_or(f64::NAN);
        if seeds > 1 {
            let std = row[format!("{key}_std")].as_f64().unwrap_or(f64::NAN);
            format!("{value:.2} ± {std:.2}")
        } else {
            format!("{value:.2}")
        }
    };
    let mut out = String::from(
        "| loss | test mAP | CF1 | OF1 | AN→full gap recovered | seconds |\n\
         |---|---|---|---|---|---|\n",
    );
    for row in rows {
        let gap = row["gap_recovered"]
            .as_f64()
            .map(|g| format!("{g:.0} %"))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} |\n",
            row["loss"].as_str().unwrap_or_default(),
            pm(row, "map"),
            pm(row, "cf1"),
            pm(row, "of1"),
            gap,
            row["seconds"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    out
}

/// Ours beside the published figure, per loss.
pub(super) fn published_table(setting: &str, rows: &[Value]) -> String {
    let mut out = String::from(
        "| loss | test mAP (here) | published | here - published | source |\n|---|---|---|---|---|\n",
    );
    for row in rows {
        let loss = row["loss"].as_str().unwrap_or_default();
        let map = row["map"].as_f64().unwrap_or(f64::NAN);
        let (value, difference, source) = match published(setting, loss) {
            Some((p, source)) => (format!("{p:.2}"), format!("{:+.2}", map - p), source),
            None => ("-".into(), "-".into(), "no published figure"),
        };
        out.push_str(&format!(
            "| {loss} | {map:.2} | {value} | {difference} | {source} |\n"
        ));
    }
    out
}

pub(super) fn write_results(
    mlml: &Path,
    setting: &Setting,
    rows: &[Value],
    table: &str,
    seeds: usize,
    results: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(results).map_err(|e| format!("{}: {e}", results.display()))?;
    let write = |name: String, bytes: &[u8]| {
        let path = results.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    let json_name = format!("{}.json", setting.name);
    write(
        json_name.clone(),
        serde_json::to_string_pretty(rows)
            .expect("rows serialise")
            .as_bytes(),
    )?;
    let md = format!(
        "# {name}\n\n{summary}. Written by `cargo xtask reproduce {name}{seeds_flag}` from \
         `{config}` ({seeds} seed(s): seed s draws the labels and initialises the model; mean ± \
         sample standard deviation over seeds). Test split figures of the epoch with the best \
         validation mAP (sklearn AP, 20 % of the training file held out); CF1 / OF1 at \
         threshold 0.5; mAP, CF1 and OF1 in percent. The last column but one is (mAP - mAP of \
         AN) / (mAP of the full-label row - mAP of AN), left out when that gap is under one \
         mAP point. Seconds: wall time of one run, \
         including the process start. `bce` uses the observed entries only, `an` takes every \
         unobserved label as negative, `bce (full labels)` trains on the full labels (the \
         upper bound); {model_note}\n\n{table}\n![mAP per loss]({name}.png)\n",
        name = setting.name,
        summary = setting.summary,
        model_note = if setting.name.starts_with("fashion") {
            "the head trains on frozen EfficientNet-Lite0 features, which have no class \
             activation map to boost, so `boostlu` has no row (`ll-r` is its loss unboosted)."
        } else {
            "a feature MLP has no class activation map to boost, so `boostlu` has no row \
             (`ll-r` is its loss unboosted)."
        },
        config = setting.config,
        seeds_flag = if seeds == setting.seeds {
            String::new()
        } else {
            format!(" --seeds {seeds}")
        },
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
        let mut rows = vec![
            json!({"loss": "an", "map": 40.0}),
            json!({"loss": "role", "map": 43.0}),
            json!({"loss": FULL_LABEL_ROW, "map": 50.0}),
        ];
        add_gap_recovered(&mut rows);
        assert_eq!(rows[0]["gap_recovered"], 0.0);
        assert_eq!(rows[1]["gap_recovered"], 30.0);
        assert_eq!(rows[2]["gap_recovered"], 100.0);
        let mut tiny_gap = vec![
            json!({"loss": "an", "map": 81.5}),
            json!({"loss": FULL_LABEL_ROW, "map": 82.0}),
        ];
        add_gap_recovered(&mut tiny_gap);
        assert!(tiny_gap[0].get("gap_recovered").is_none());
        let mut without_an = vec![json!({"loss": "role", "map": 43.0})];
        add_gap_recovered(&mut without_an);
        assert!(without_an[0].get("gap_recovered").is_none());
    }
}
