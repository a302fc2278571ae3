//! Names used in configs and on the command line, mapped to constructors with their defaults
//! and per-dataset presets.
//!
//! A loss is registered by one line of the `registry!` table below naming a type that
//! implements `Registered`: its [`LossInfo`] (with the name, written once), its config type,
//! its per-dataset preset values with their sources, and how it is built from the loss's setup.

use mlml_ops::SigmoidBackend;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::common::MultiLabelLoss;
use crate::error::{LossError, Result};
use crate::registration::Registered;
pub use crate::registration::{LossInfo, LossSetup, Preset, PresetValue};

/// The registry's table: one line per loss. Generates [`LOSSES`] and the name dispatch.
macro_rules! registry {
    ($($loss:ty),* $(,)?) => {
        /// Every loss, in the order of the crate's table.
        pub const LOSSES: &[LossInfo] = &[$(<$loss as Registered>::INFO),*];

        fn dispatch<B: SigmoidBackend>(
            name: &str,
            preset: Option<Preset>,
            overrides: &serde_json::Value,
            setup: &LossSetup<'_, B>,
        ) -> Result<Box<dyn MultiLabelLoss<B>>> {
            $(if name == <$loss as Registered>::INFO.name {
                let config = resolve::<$loss>(preset, overrides)?;
                return <$loss>::build(config, setup);
            })*
            Err(unknown(name))
        }

        /// A loss's hyperparameters as they would be built (defaults, then the preset's
        /// values), as JSON: for `mlml losses` and resolved configs.
        ///
        /// # Errors
        /// An unknown name.
        pub fn resolved_config(name: &str, preset: Option<Preset>) -> Result<serde_json::Value> {
            $(if name == <$loss as Registered>::INFO.name {
                let config = resolve::<$loss>(preset, &serde_json::Value::Null)?;
                return Ok(serde_json::to_value(config).expect("configs serialise"));
            })*
            Err(unknown(name))
        }

        /// A loss's hyperparameters as a run builds them (defaults, then the preset's values,
        /// then `overrides`), as JSON: what a dry run prints, and the check of a config before
        /// anything is written.
        ///
        /// # Errors
        /// An unknown name, an unknown hyperparameter or a value of the wrong type.
        pub fn settings(
            name: &str,
            preset: Option<Preset>,
            overrides: &serde_json::Value,
        ) -> Result<serde_json::Value> {
            $(if name == <$loss as Registered>::INFO.name {
                let config = resolve::<$loss>(preset, overrides)?;
                return Ok(serde_json::to_value(config).expect("configs serialise"));
            })*
            Err(unknown(name))
        }

        /// The values `preset` sets for the loss `name`, with their sources.
        ///
        /// # Errors
        /// An unknown name.
        pub fn preset_for(name: &str, preset: Preset) -> Result<Vec<PresetValue>> {
            $(if name == <$loss as Registered>::INFO.name {
                return Ok(<$loss>::preset(preset));
            })*
            Err(unknown(name))
        }
    };
}

registry![
    crate::BceLoss,
    crate::AssumeNegativeLoss,
    crate::AnLsLoss,
    crate::WanLoss,
    crate::asl::AslBce,
    crate::asl::Focal,
    crate::asl::Asl,
    crate::HillLoss,
    crate::SplcLoss,
    crate::large_loss::LlR,
    crate::large_loss::LlCt,
    crate::large_loss::LlCp,
    crate::EprLoss,
    crate::role::Role,
    crate::EmLoss,
    crate::EmAplLoss,
    crate::GrLoss,
    crate::large_loss::BoostLu,
];

fn unknown(name: &str) -> LossError {
    LossError::UnknownLoss {
        name: name.to_string(),
        valid: LOSSES.iter().map(|l| l.name).collect::<Vec<_>>().join(", "),
    }
}

/// The defaults, then the preset's values, then the user's overrides.
fn resolve<L: Registered>(
    preset: Option<Preset>,
    overrides: &serde_json::Value,
) -> Result<L::Config> {
    let loss = L::INFO.name;
    let mut config = L::defaults();
    if let Some(preset) = preset {
        let values: serde_json::Map<String, serde_json::Value> = L::preset(preset)
            .into_iter()
            .map(|v| (v.field.to_string(), v.value))
            .collect();
        config = with_overrides(loss, config, &serde_json::Value::Object(values))?;
    }
    with_overrides(loss, config, overrides)
}

/// A config with overrides applied: every key must be a field of the config.
fn with_overrides<C: Serialize + DeserializeOwned>(
    loss: &'static str,
    defaults: C,
    overrides: &serde_json::Value,
) -> Result<C> {
    let mut value = serde_json::to_value(defaults).expect("configs serialise");
    match overrides {
        serde_json::Value::Null => {
            return serde_json::from_value(value).map_err(|e| config_error(loss, e))
        }
        serde_json::Value::Object(map) => {
            let fields = value.as_object_mut().expect("configs are structs");
            for (key, v) in map {
                if !fields.contains_key(key) {
                    let valid: Vec<&str> = fields.keys().map(String::as_str).collect();
                    return Err(LossError::Config {
                        loss,
                        message: format!(
                            "unknown hyperparameter '{key}'; valid: {}",
                            if valid.is_empty() {
                                "none".into()
                            } else {
                                valid.join(", ")
                            }
                        ),
                    });
                }
                fields.insert(key.clone(), v.clone());
            }
        }
        other => {
            return Err(LossError::Config {
                loss,
                message: format!("hyperparameters must be a table, got {other}"),
            })
        }
    }
    serde_json::from_value(value).map_err(|e| config_error(loss, e))
}

fn config_error(loss: &'static str, e: serde_json::Error) -> LossError {
    LossError::Config {
        loss,
        message: e.to_string(),
    }
}

/// Builds a loss by name for a run: the reference's defaults, then the preset's values (when
/// given), then `overrides` (a JSON/TOML table of the config's fields; `null` for none).
///
/// # Errors
/// An unknown name (the message lists the valid ones), an unknown hyperparameter, an
/// out-of-range value, or a configured epoch count that disagrees with `setup.epochs`.
pub fn build<B: SigmoidBackend>(
    name: &str,
    preset: Option<Preset>,
    overrides: &serde_json::Value,
    setup: &LossSetup<'_, B>,
) -> Result<Box<dyn MultiLabelLoss<B>>> {
    if setup.epochs == 0 {
        return Err(LossError::Epoch {
            message: "a run needs at least one epoch".into(),
        });
    }
    dispatch(name, preset, overrides, setup)
}

/// Every preset value of every loss: `(preset, loss, value)`.
pub fn presets() -> Vec<(Preset, &'static str, PresetValue)> {
    let mut all = Vec::new();
    for preset in Preset::ALL {
        for info in LOSSES {
            for value in preset_for(info.name, preset).expect("registered") {
                all.push((preset, info.name, value));
            }
        }
    }
    all
}
