//! What `mlml train` shows while it runs: on a terminal a progress bar per epoch with the
//! samples per second and the time left; otherwise (a log file, a pipe) one line per epoch.
//! Lines go through `tracing`, so `RUST_LOG` filters them.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use mlml_train::{EpochRecord, Observer};

pub struct EpochDisplay {
    epochs: usize,
    unit: &'static str,
    bar: Option<ProgressBar>,
    terminal: bool,
}

impl EpochDisplay {
    /// `unit` names what a batch holds (`images`, `rows`).
    pub fn new(epochs: usize, unit: &'static str) -> Self {
        Self {
            epochs,
            unit,
            bar: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }
}

impl Observer for EpochDisplay {
    fn batch_done(&mut self, epoch: usize, batch: usize, batches: usize, samples: usize) {
        tracing::debug!(
            "mlml: epoch {epoch}, batch {batch}/{batches} ({samples} {})",
            self.unit
        );
        if !self.terminal {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "mlml: epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, {eta} left)",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar
        });
        if batch == 1 {
            bar.reset();
            bar.set_length(batches as u64);
            bar.set_prefix(format!("{epoch}/{}", self.epochs));
            bar.set_message(format!("batches of {samples} {}", self.unit));
        }
        bar.set_position(batch as u64);
    }

    fn epoch_done(&mut self, e: &EpochRecord) {
        let line = format!(
            "mlml: epoch {}/{}: train loss {:.5}, val mAP {:.2}{}{}",
            e.epoch,
            self.epochs,
            e.train_loss,
            e.val_map,
            e.val_map_ema
                .map(|m| format!(" (EMA {m:.2})"))
                .unwrap_or_default(),
            e.loss_note
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        match &self.bar {
            Some(bar) => bar.suspend(|| tracing::info!("{line}")),
            None => tracing::info!("{line}"),
        }
    }
}

impl Drop for EpochDisplay {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
