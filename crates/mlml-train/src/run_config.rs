//! A run's whole config (`[data]`, `[model]`, `[training]`), read from TOML with `--set`
//! overrides, and resolved: what it leaves implicit made explicit and every part checked
//! before anything is written.

use std::path::Path;

use mlml_losses::registry::{self, Preset};
use serde::{Deserialize, Serialize};

use crate::error::{bail, Context, Result};
use crate::run_data::DataConfig;
use crate::{LinearPhase, Mode, ModelConfig, TrainingConfig};

/// A run's config: the data, the model and how to train.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Where the rows come from and which labels the training rows keep.
    pub data: DataConfig,
    /// The network.
    #[serde(default)]
    pub model: ModelConfig,
    /// How it trains.
    #[serde(default)]
    pub training: TrainingConfig,
}

/// Reads a config, applies `--set` overrides, and checks every key.
///
/// # Errors
/// A file that cannot be read or is not TOML, a `--set` that is not `KEY=VALUE` or whose value
/// does not fit its key (named), an unknown key, or a config [`resolve`] refuses.
pub fn read_config(path: &Path, overrides: &[String]) -> Result<RunConfig> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
    apply_sets(&mut table, overrides)?;
    let config: RunConfig = match toml::Value::Table(table).try_into() {
        Ok(config) => config,
        Err(err) => {
            // Name the --set that broke it, when one did.
            for item in overrides {
                if read_config_with(&text, std::slice::from_ref(item)).is_err()
                    && read_config_with(&text, &[]).is_ok()
                {
                    let key = item
                        .split_once('=')
                        .map_or(item.as_str(), |(k, _)| k.trim());
                    if err.to_string().contains("unknown field") {
                        bail!("--set {item}: {key} is not a config key: {err}");
                    }
                    bail!("--set {item}: not a valid value for {key}: {err}");
                }
            }
            return Err(err).with_context(|| format!("{}: bad config", path.display()));
        }
    };
    resolve(config).with_context(|| format!("{}: bad config", path.display()))
}

/// The config of `text` with `overrides` applied, parsed (no checks beyond the types).
fn read_config_with(text: &str, overrides: &[String]) -> Result<RunConfig> {
    let mut table: toml::Table = toml::from_str(text).context("not valid TOML")?;
    apply_sets(&mut table, overrides)?;
    toml::Value::Table(table).try_into().context("bad config")
}

/// Applies `--set KEY=VALUE`s to a config table: a value that is not TOML is a string.
///
/// # Errors
/// An item that is not `KEY=VALUE`, or a key through a value that is not a table.
pub fn apply_sets(table: &mut toml::Table, overrides: &[String]) -> Result<()> {
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("--set {item}: expected KEY=VALUE"))?;
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let mut node = &mut *table;
        let parts: Vec<&str> = key.trim().split('.').collect();
        for part in &parts[..parts.len() - 1] {
            node = node
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("--set {key}: '{part}' is not a table"))?;
        }
        node.insert(parts[parts.len() - 1].to_string(), value);
    }
    Ok(())
}

/// What a config leaves implicit, made explicit, and the whole run checked before anything is
/// written: `boostlu` gets a head that boosts (BoostLU's alpha 5 unless `model.boost_alpha`
/// says otherwise) and is refused on a model without class activation maps; the loss's name,
/// preset and overrides must build; `data.drop_last` reaches the loop.
///
/// # Errors
/// The first setting that does not fit, named by its key.
pub fn resolve(mut config: RunConfig) -> Result<RunConfig> {
    if config.training.loss == "boostlu" {
        if config.model.is_probe() {
            bail!(
                "training.loss = \"boostlu\" boosts the class activation maps of a network trained end to end (a 1x1 convolution before pooling); a linear probe (model.mode = \"linear-probe\") trains a head on pooled features, which have no map to boost: use model.mode = \"end-to-end\", or ll-r for the same loss without the boost"
            );
        }
        if !config.model.takes_images() {
            bail!(
                "training.loss = \"boostlu\" boosts the class activation maps of an image network; an MLP on feature vectors has none: use ll-r for the same loss without the boost"
            );
        }
        config.model.boost_alpha.get_or_insert(BOOSTLU_ALPHA);
    }
    if let Some(alpha) = config.model.boost_alpha {
        if !(alpha.is_finite() && alpha > 0.0) {
            bail!("model.boost_alpha must be positive, got {alpha}");
        }
    }
    match (config.model.mode, &config.training.linear_phase) {
        (Mode::LinearInit, None) => {
            config.training.linear_phase = Some(
                cole_linear_phase(&config.training.loss, config.training.preset).with_context(
                    || {
                        format!(
                            "model.mode = \"linear-init\" with {}: give training.linear_phase = {{ epochs = 25, lr = ..., batch_size = ... }} (Cole et al. fix the linear phase only for an-ls and role on voc, coco, nuswide and cub)",
                            config.training.loss
                        )
                    },
                )?,
            );
        }
        (Mode::LinearInit, Some(_)) => {}
        (_, Some(_)) => bail!(
            "training.linear_phase is the first phase of model.mode = \"linear-init\"; this run's mode is {:?}",
            config.model.mode
        ),
        (_, None) => {}
    }
    if config.model.mode == Mode::LinearInit && config.model.backbone == crate::BackboneKind::Mlp {
        bail!("model.mode = \"linear-init\" needs an image backbone: its first phase trains on the backbone's frozen features");
    }
    if let Some(phase) = &config.training.linear_phase {
        if phase.epochs == 0 || phase.batch_size == 0 || !(phase.lr.is_finite() && phase.lr > 0.0) {
            bail!(
                "training.linear_phase: epochs ({}), batch_size ({}) and lr ({}) must be positive",
                phase.epochs,
                phase.batch_size,
                phase.lr
            );
        }
    }
    config.training.drop_last = config.data.drop_last;
    config.training.validate()?;
    registry::settings(
        &config.training.loss,
        config.training.preset,
        &config.training.loss_overrides,
    )?;
    Ok(config)
}

/// Cole et al.'s fixed linear-phase hyperparameters of `linear_init` (`train.py`; the only
/// losses with an entry are AN-LS and ROLE: any other raises a KeyError there), 25 epochs.
fn cole_linear_phase(loss: &str, preset: Option<Preset>) -> Option<LinearPhase> {
    let (lr, batch_size) = match (loss, preset?) {
        ("an-ls", Preset::Voc | Preset::Coco | Preset::Cub) => (1e-4, 8),
        ("an-ls", Preset::Nuswide) => (1e-4, 16),
        ("role", Preset::Voc | Preset::Coco | Preset::Nuswide) => (1e-3, 16),
        ("role", Preset::Cub) => (1e-3, 8),
        _ => return None,
    };
    Some(LinearPhase {
        epochs: 25,
        lr,
        batch_size,
    })
}

/// BoostLU's alpha: `config.py`'s default and the README's `--alpha 5`.
const BOOSTLU_ALPHA: f64 = 5.0;

/// The resolved run as `mlml train --dry-run --json` prints it: every config key and the loss's
/// hyperparameters after its defaults, preset and overrides.
///
/// # Errors
/// A loss the registry cannot resolve.
pub fn dry_run_json(config: &RunConfig) -> Result<serde_json::Value> {
    let t = &config.training;
    Ok(serde_json::json!({
        "config": serde_json::to_value(config).expect("configs serialise"),
        "loss": {
            "name": t.loss,
            "settings": registry::settings(&t.loss, t.preset, &t.loss_overrides)?,
        },
    }))
}
