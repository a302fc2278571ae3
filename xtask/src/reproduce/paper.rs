//! A paper setting: its data imported, every row trained with its recipe, the table beside the
//! published figures; and `--plan`, every row's resolved run without data.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::options::Options;
use super::published::published;
use super::report::{add_gap_recovered, markdown_table, published_table, recipe_section};
use super::runs::{
    all_ran, mlml_binary, registered_losses, run_import, seed_sets, sweep_row, target_dir,
    train_args, train_labels, Parallel, SettingRuns,
};
use super::settings::{
    paper_setting_message, PaperRun, Recipes, EMBEDDED, FULL_LABEL_ROW, PAPER_RUNS, SMOKE,
    SMOKE_LOSSES,
};
use super::unknown_setting;
use crate::project_root;
use crate::recipes;

pub(super) fn run_paper_setting(
    run: &PaperRun,
    options: &Options,
    data: &Path,
) -> Result<(), String> {
    let missing: Vec<&str> = run
        .needs
        .iter()
        .copied()
        .filter(|p| !data.join(p).exists())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{}\n--data {} lacks {}",
            paper_setting_message(run.name, run.summary, Some(data)),
            data.display(),
            missing.join(", ")
        ));
    }
    let mlml = mlml_binary(options)?;
    let mlml_data = mlml.with_file_name(format!("mlml-data{}", std::env::consts::EXE_SUFFIX));
    if !mlml_data.is_file() {
        return Err(format!(
            "{}: not found beside {} (build it: cargo build --release -p mlml-data)",
            mlml_data.display(),
            mlml.display()
        ));
    }
    let runs = options
        .runs
        .clone()
        .unwrap_or_else(|| target_dir().join("reproduce").join(run.name));
    std::fs::create_dir_all(&runs).map_err(|e| format!("{}: {e}", runs.display()))?;
    let mut sets = Vec::new();
    for (import, file) in [
        (&run.import_train, "train.tsv"),
        (&run.import_test, "test.tsv"),
    ] {
        let output = runs.join(file);
        let data_paths: Vec<String> = import
            .data_paths
            .iter()
            .flat_map(|(flag, path)| [flag.to_string(), data.join(path).display().to_string()])
            .collect();
        let args: Vec<&str> = import
            .args
            .iter()
            .copied()
            .chain(data_paths.iter().map(String::as_str))
            .collect();
        run_import(&mlml_data, &args, &data.join(import.input), &output)?;
        sets.push(output);
    }
    let (label_sets, labels_note) = train_labels(run, data, &mlml_data, &sets[0])?;
    let quoted = |p: &Path| format!("{:?}", p.display().to_string());
    let mut extra = vec![
        format!("data.train_set={}", quoted(&sets[0])),
        format!("data.test_set={}", quoted(&sets[1])),
        format!("data.images={}", quoted(&data.join(run.images))),
    ];
    extra.extend(label_sets);
    if options.select_on_test {
        extra.push("data.selection=\"test\"".into());
    }
    if options.smoke {
        extra.extend(SMOKE.iter().map(|s| s.to_string()));
    }
    let losses: Vec<String> = if !options.losses.is_empty() {
        options.losses.clone()
    } else if options.smoke {
        SMOKE_LOSSES.iter().map(|s| s.to_string()).collect()
    } else {
        let mut all = registered_losses(&mlml)?;
        all.push(FULL_LABEL_ROW.to_string());
        all
    };
    let seeds = options.seeds.unwrap_or(1);
    let summary = format!("{}, {}", run.summary, run.recipe);
    println!(
        "{}: {summary}; labels: {labels_note}{}",
        run.name,
        if options.smoke {
            " (smoke: small CNN, 32 px, one epoch; the figures mean nothing)"
        } else {
            ""
        }
    );
    let job = SettingRuns {
        mlml: &mlml,
        config: run.config,
        extra: &extra,
        row_sets: &|loss| run.recipes.recipe(loss).sets(),
        seed_draws_labels: false,
        device: &options.backend,
        runs: &runs,
        // ResNet-50 at 448 px: one run holds a machine; side by side only when asked.
        parallel: Parallel::new(Some(options.jobs.unwrap_or(1))),
    };
    // With --sweep, Cole et al.'s rows search their batch x lr grid, as their numbers did.
    let swept: Vec<String> = if options.sweep {
        losses
            .iter()
            .filter(|l| recipes::COLE_ROWS.contains(&l.as_str()))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let plain: Vec<String> = losses
        .iter()
        .filter(|l| !swept.contains(l))
        .cloned()
        .collect();
    let (mut rows, mut failures) = job.every_loss(&plain, seeds);
    for loss in &swept {
        match sweep_row(&job, loss, &run.recipes.recipe(loss)) {
            Ok(row) => rows.push(row),
            Err(message) => failures.push(format!("{loss} (sweep): {message}")),
        }
    }
    rows.sort_by_key(|r| {
        losses
            .iter()
            .position(|l| r.loss == *l)
            .unwrap_or(usize::MAX)
    });
    add_gap_recovered(&mut rows);
    for row in &mut rows {
        if let Some((value, source)) = published(run.name, &row.loss) {
            row.published_map = Some(value);
            row.published_source = Some(source);
        }
        let recipe = run.recipes.recipe(&row.loss);
        row.recipe = Some(recipe.name);
        row.recipe_follows = Some(recipe.follows);
    }
    let table = markdown_table(&rows, &[], seeds);
    let beside = published_table(run.name, &rows);
    let recipe_notes = recipe_section(run.recipes, &losses);
    let selection_note = if options.select_on_test {
        " THE EPOCH WAS PICKED ON THE TEST SPLIT (--select-on-test, the ASL reference's \
         protocol): the test figures are optimistic."
    } else {
        ""
    };
    println!("\n{table}\nBeside the published figures:\n\n{beside}");
    // A smoke run's figures mean nothing: they stay with the runs, out of docs/results.
    let out_dir = if options.smoke {
        runs.clone()
    } else {
        options.results.clone()
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let json = out_dir.join(format!("{}.json", run.name));
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&rows).expect("rows serialise"),
    )
    .map_err(|e| format!("{}: {e}", json.display()))?;
    let md = out_dir.join(format!("{}.md", run.name));
    let text = format!(
        "# {name}\n\n{summary}. Written by `cargo xtask reproduce {name} --data DIR{smoke}` from \
         `{config}` ({seeds} seed(s) of the initialisation; the training labels: {labels_note}). \
         Test figures of the epoch with the best validation mAP; mAP, CF1 and OF1 in \
         percent.{selection_note}\n\n{table}\n## Beside the published figures\n\n{beside}\n\
         ## Recipes\n\n{recipe_notes}",
        name = run.name,
        smoke = if options.smoke { " --smoke" } else { "" },
        config = run.config,
    );
    std::fs::write(&md, text).map_err(|e| format!("{}: {e}", md.display()))?;
    println!("wrote {} and {}", json.display(), md.display());
    all_ran(&failures)
}

/// `--plan`: each row's recipe and the run `mlml train --dry-run --json` resolves for it, with
/// no data read (a paper setting's paths are its template's).
pub(super) fn plan(options: &Options) -> Result<(), String> {
    let (config, recipes, seed_draws_labels): (&str, Option<Recipes>, bool) =
        if let Some(setting) = EMBEDDED.iter().find(|s| s.name == options.setting) {
            (setting.config, None, true)
        } else if let Some(run) = PAPER_RUNS.iter().find(|r| r.name == options.setting) {
            (run.config, Some(run.recipes), false)
        } else {
            return Err(unknown_setting(&options.setting));
        };
    let mlml = mlml_binary(options)?;
    let losses = if options.losses.is_empty() {
        let mut all: Vec<String> = registered_losses(&mlml)?
            .into_iter()
            .filter(|l| recipes.is_some() || l != "boostlu")
            .collect();
        all.push(FULL_LABEL_ROW.to_string());
        all
    } else {
        options.losses.clone()
    };
    let mut rows = Vec::new();
    for loss in &losses {
        let recipe = recipes.map(|r| r.recipe(loss));
        let mut sets = seed_sets(0, seed_draws_labels);
        if let Some(recipe) = &recipe {
            sets.extend(recipe.sets());
        }
        if options.select_on_test {
            sets.push("data.selection=\"test\"".into());
        }
        let mut args = train_args(config, loss, &sets, &options.backend, None);
        args.extend(["--dry-run".into(), "--json".into()]);
        let out = Command::new(&mlml)
            .args(&args)
            .current_dir(project_root())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", mlml.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{loss}: `mlml train --dry-run` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let resolved: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{loss}: `mlml train --dry-run --json` printed no JSON: {e}"))?;
        let mut row = json!({ "row": loss });
        if let Some(recipe) = &recipe {
            row["recipe"] = json!({
                "name": recipe.name,
                "follows": recipe.follows,
                "differs": recipe.differs,
                "values": recipe.values.iter().map(|v| json!({
                    "key": v.key, "value": v.value, "source": v.source,
                })).collect::<Vec<_>>(),
            });
        }
        row["config"] = resolved["config"].clone();
        row["loss"] = resolved["loss"].clone();
        rows.push(row);
    }
    if options.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
        return Ok(());
    }
    println!(
        "{} ({config}): one line per row; --json for every resolved key\n",
        options.setting
    );
    for row in &rows {
        let t = &row["config"]["training"];
        println!(
            "{:<18} {:<8} {} lr {} batch {} epochs {} head x{} wd {}{}{}{}{} | {}",
            row["row"].as_str().unwrap_or_default(),
            row["recipe"]["name"].as_str().unwrap_or("config"),
            t["optimizer"].as_str().unwrap_or_default(),
            t["lr"],
            t["batch_size"],
            t["epochs"],
            t["head_lr_mult"],
            t["weight_decay"],
            t["patience"]
                .as_u64()
                .map(|p| format!(", patience {p}"))
                .unwrap_or_default(),
            t["stop_below_best"]
                .as_f64()
                .map(|p| format!(", stop {p} below best"))
                .unwrap_or_default(),
            if row["config"]["data"]["drop_last"] == true {
                ", drop_last"
            } else {
                ""
            },
            row["config"]["model"]["boost_alpha"]
                .as_f64()
                .map(|a| format!(", boost alpha {a}"))
                .unwrap_or_default(),
            row["loss"]["settings"],
        );
    }
    Ok(())
}
