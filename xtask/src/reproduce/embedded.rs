//! An embedded setting: every loss over seeds on the shipped data, and the recipe sweep that
//! chose its config.

use std::path::Path;

use super::options::Options;
use super::report::{add_gap_recovered, markdown_table, mean_std, write_results, RunNotes};
use super::runs::{
    all_ran, finish_progress, mlml_binary, progress, registered_losses, seed_sets, target_dir,
    Parallel, SettingRuns, TrainRun,
};
use super::settings::{Setting, SettingModel, FULL_LABEL_ROW, QUICK};
use super::twin::{twin_rows, TwinRows};

/// The learning recipes the sweep tries: (hidden sizes, lr, weight decay, epochs).
pub(super) const SWEEP: &[(&str, f64, f64, usize)] = &[
    ("[]", 1e-2, 0.0, 50),
    ("[256]", 1e-3, 0.0, 20),
    ("[256]", 1e-3, 1e-3, 20),
    ("[512]", 1e-3, 1e-3, 20),
    ("[512]", 3e-4, 0.0, 50),
    ("[512]", 3e-4, 1e-3, 50),
    ("[512]", 3e-4, 1e-2, 50),
    ("[1024]", 1e-3, 1e-3, 20),
    ("[1024]", 3e-4, 1e-3, 50),
    ("[256, 256]", 1e-3, 1e-3, 20),
    ("[512, 512]", 1e-3, 1e-3, 20),
    ("[512, 512]", 3e-4, 1e-3, 50),
];

pub(super) fn sweep(
    setting: &Setting,
    mlml: &Path,
    runs: &Path,
    losses: &[String],
    results: &Path,
) -> Result<(), String> {
    println!(
        "{}: choosing the recipe by the mean validation mAP of {} losses (seed 0; the test \
         figures are not used)",
        setting.name,
        losses.len()
    );
    let mut table = String::from(
        "| hidden | lr | weight decay | epochs | mean val mAP | mean best epoch |\n|---|---|---|---|---|---|\n",
    );
    let mut best: Option<(f64, usize)> = None;
    for (i, (hidden, lr, wd, epochs)) in SWEEP.iter().enumerate() {
        let extra = vec![
            format!("model.hidden={hidden}"),
            format!("training.lr={lr}"),
            format!("training.weight_decay={wd}"),
            format!("training.epochs={epochs}"),
        ];
        let mut vals = Vec::new();
        let mut best_epochs = Vec::new();
        for loss in losses {
            let dir = runs.join(format!("sweep-{i}")).join(loss);
            let label = format!(
                "[{}/{}] {hidden} lr {lr} wd {wd}: {loss}",
                i + 1,
                SWEEP.len()
            );
            let mut sets = seed_sets(0, true);
            sets.extend_from_slice(&extra);
            let run = TrainRun {
                mlml,
                config: setting.config,
                loss,
                sets: &sets,
                device: "cpu",
                dir: &dir,
                threads: None,
            };
            let figures = run.train(&|epoch| progress(&format!("{label}: epoch {epoch}")))?;
            vals.push(figures.val_map);
            best_epochs.push(figures.best_epoch);
        }
        let (mean, _) = mean_std(&vals);
        let (mean_epoch, _) = mean_std(&best_epochs);
        table.push_str(&format!(
            "| {hidden} | {lr} | {wd} | {epochs} | {mean:.2} | {mean_epoch:.1} |\n"
        ));
        if best.is_none_or(|(b, _)| mean > b) {
            best = Some((mean, i));
        }
    }
    finish_progress();
    let (score, i) = best.expect("the sweep has recipes");
    let (hidden, lr, wd, epochs) = SWEEP[i];
    let text = format!(
        "# Recipe sweep: {name}\n\nWritten by `cargo xtask reproduce {name} --sweep`. Each recipe \
         trains every registered loss once (seed 0) on `{config}`; the score is the mean over \
         losses of the best validation mAP (20 % of the training file; the runs' test figures \
         play no part). Best: hidden {hidden}, lr {lr}, weight decay {wd}, {epochs} epochs (mean val mAP \
         {score:.2}).\n\n{table}",
        name = setting.name,
        config = setting.config,
    );
    println!("\n{text}");
    std::fs::create_dir_all(results).map_err(|e| format!("{}: {e}", results.display()))?;
    let path = results.join(format!("{}-sweep.md", setting.name));
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every loss (and the full-label row) over the setting's seeds, or `--sweep`'s recipe search.
pub(super) fn run(setting: &Setting, options: &Options) -> Result<(), String> {
    let mlml = mlml_binary(options)?;
    let runs = options
        .runs
        .clone()
        .unwrap_or_else(|| target_dir().join("reproduce").join(setting.name));
    let mut losses = if options.quick {
        QUICK.iter().map(|(_, loss)| loss.to_string()).collect()
    } else if options.losses.is_empty() {
        registered_losses(&mlml)?
            .into_iter()
            // A feature MLP has no class activation map to boost.
            .filter(|l| setting.model == SettingModel::EndToEnd || l != "boostlu")
            .collect()
    } else {
        options.losses.clone()
    };
    if options.losses.is_empty() && !options.sweep {
        losses.push(FULL_LABEL_ROW.to_string());
    }
    if options.sweep {
        return sweep(setting, &mlml, &runs, &losses, &options.results);
    }
    println!("{}: {}", setting.name, setting.summary);
    let seeds = options.seeds.unwrap_or(setting.seeds);
    let parallel = if options.backend == "cpu" {
        Parallel::new(options.jobs)
    } else {
        // One accelerator: its runs take turns unless told otherwise.
        Parallel::new(Some(options.jobs.unwrap_or(1)))
    };
    let job = SettingRuns {
        mlml: &mlml,
        config: setting.config,
        extra: &[],
        row_sets: &|_| Vec::new(),
        seed_draws_labels: setting.seed_draws_labels,
        device: &options.backend,
        runs: &runs,
        parallel,
    };
    let (mut rows, failures) = job.every_loss(&losses, seeds);
    add_gap_recovered(&mut rows);
    let twins = match &setting.twin {
        Some(twin) => twin_rows(twin, &rows, &runs, seeds, options.pytorch)?,
        None => TwinRows::default(),
    };
    let table = markdown_table(&rows, &twins.rows, seeds);
    println!("\n{table}");
    let run_notes = RunNotes {
        seeds,
        quick: options.quick,
        parallel,
        twin: (!twins.rows.is_empty()).then(|| twins.source.clone()),
    };
    write_results(
        &mlml,
        setting,
        &rows,
        &twins.rows,
        &table,
        &run_notes,
        &options.results,
    )?;
    all_ran(&failures)
}
