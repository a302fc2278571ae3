//! Names used in configs and on the command line, mapped to constructors with their defaults
//! and per-dataset presets.
//!
//! A loss is registered by one line of the `registry!` table below naming a type that
//! implements `Registered`: its [`LossInfo`] (with the name, written once), its config type,
//! its per-dataset preset values with their sources, and how it is built from the run's facts.

use crate::backend::LossBackend;
use mlml_data::LabelMatrix;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::common::MultiLabelLoss;
use crate::error::{LossError, Result};

/// One registered loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LossInfo {
    /// Name in configs and on the command line.
    pub name: &'static str,
    /// One line: what it is.
    pub summary: &'static str,
    /// Reduction of the reference.
    pub reduction: &'static str,
    /// What it uses of the lifecycle beyond logits and targets.
    pub needs: &'static str,
}

/// The datasets whose settings differ between losses' references. A preset sets each loss's
/// dataset-dependent hyperparameters to the value its reference (or the paper's maintainer)
/// gives for that dataset; [`presets`] lists every value with its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Pascal VOC 2012 (20 classes).
    Voc,
    /// MS COCO 2014 (80 classes).
    Coco,
    /// NUS-WIDE (81 classes).
    Nuswide,
    /// CUB-200-2011 attributes (312 classes).
    Cub,
    /// The embedded yeast set (14 classes, 4.23 positives per training row).
    Yeast,
    /// The embedded scene set (6 classes, 1.06 positives per training row).
    Scene,
    /// The embedded multi-label Fashion-MNIST composite (10 classes, 2.26 positives per row).
    Fashion,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 7] = [
        Preset::Voc,
        Preset::Coco,
        Preset::Nuswide,
        Preset::Cub,
        Preset::Yeast,
        Preset::Scene,
        Preset::Fashion,
    ];

    /// The name in configs (`voc`, `coco`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Voc => "voc",
            Preset::Coco => "coco",
            Preset::Nuswide => "nuswide",
            Preset::Cub => "cub",
            Preset::Yeast => "yeast",
            Preset::Scene => "scene",
            Preset::Fashion => "fashion",
        }
    }

    /// The preset of a name.
    ///
    /// # Errors
    /// An unknown name; the message lists the valid ones.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| LossError::UnknownPreset {
                name: name.to_string(),
                valid: Self::ALL.map(Preset::name).join(", "),
            })
    }
}

/// One dataset-dependent value of a loss.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PresetValue {
    /// The config field it sets.
    pub field: &'static str,
    /// The value.
    pub value: serde_json::Value,
    /// Where the number comes from.
    pub source: &'static str,
}

impl PresetValue {
    pub(crate) fn new(
        field: &'static str,
        value: impl Into<serde_json::Value>,
        source: &'static str,
    ) -> Self {
        Self {
            field,
            value: value.into(),
            source,
        }
    }
}

/// The run's facts a loss is built from.
#[derive(Clone, Debug)]
pub struct LossSetup<'a, B: LossBackend> {
    /// Epochs of the run (T). A loss whose configured epoch count differs is an error.
    pub epochs: usize,
    /// The training set's observed labels, in training row order: the training-set size, the
    /// class count, ROLE's estimator initialisation and EM+APL's unobserved entries.
    pub train_labels: &'a LabelMatrix,
    /// Seed of any random initialisation.
    pub seed: u64,
    /// Device of any parameter.
    pub device: B::Device,
}

impl<B: LossBackend> LossSetup<'_, B> {
    /// Training rows.
    pub fn n_train(&self) -> usize {
        self.train_labels.n_samples()
    }

    /// Classes.
    pub fn n_classes(&self) -> usize {
        self.train_labels.n_classes()
    }
}

/// How a loss type registers itself; one implementation per registry name.
pub(crate) trait Registered {
    /// Name and description.
    const INFO: LossInfo;
    /// Its hyperparameters (a burn `Config`; every field has a default).
    type Config: Serialize + DeserializeOwned;
    /// The defaults of the reference.
    fn defaults() -> Self::Config;
    /// The values a preset changes, with their sources (none by default).
    fn preset(preset: Preset) -> Vec<PresetValue> {
        let _ = preset;
        Vec::new()
    }
    /// Builds the loss from a validated config and the run's facts.
    fn build<B: LossBackend>(
        config: Self::Config,
        setup: &LossSetup<'_, B>,
    ) -> Result<Box<dyn MultiLabelLoss<B>>>;
}

/// The registry's table: one line per loss. Generates [`LOSSES`] and the name dispatch.
macro_rules! registry {
    ($($loss:ty),* $(,)?) => {
        /// Every loss, in the order of the crate's table.
        pub const LOSSES: &[LossInfo] = &[$(<$loss as Registered>::INFO),*];

        fn dispatch<B: LossBackend>(
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
pub fn build<B: LossBackend>(
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

/// Takes a run-level count (epochs, classes) from the run unless the config names one; a
/// configured value that disagrees with the run's is an error, never a silent mismatch.
pub(crate) fn agree_with_run(
    loss: &'static str,
    field: &'static str,
    configured: Option<usize>,
    run: usize,
    run_name: &str,
) -> Result<usize> {
    match configured {
        Some(value) if value != run => Err(LossError::Config {
            loss,
            message: format!(
                "`{field}` is {value} but the run has {run} {run_name}; leave it unset to take the run's"
            ),
        }),
        _ => Ok(run),
    }
}

/// The config of a loss without hyperparameters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoHyperparameters {}

/// A loss's `Registered` impl from its parts: the type, its config and defaults, its
/// [`LossInfo`], optionally its preset function, and how it is built from the config and the
/// run's facts (an expression that may use `?`).
macro_rules! register {
    (
        $loss:ty,
        config: $config:ty = $defaults:expr,
        info: { name: $name:literal, summary: $summary:literal, reduction: $reduction:literal, needs: $needs:literal },
        $(preset: $preset:expr,)?
        build: |$cfg:ident, $setup:ident| $build:expr $(,)?
    ) => {
        impl $crate::registry::Registered for $loss {
            const INFO: $crate::registry::LossInfo = $crate::registry::LossInfo {
                name: $name,
                summary: $summary,
                reduction: $reduction,
                needs: $needs,
            };
            type Config = $config;

            fn defaults() -> Self::Config {
                $defaults
            }

            $(
                fn preset(preset: $crate::registry::Preset) -> Vec<$crate::registry::PresetValue> {
                    ($preset)(preset)
                }
            )?

            fn build<B: $crate::LossBackend>(
                $cfg: Self::Config,
                $setup: &$crate::registry::LossSetup<'_, B>,
            ) -> $crate::Result<Box<dyn $crate::MultiLabelLoss<B>>> {
                Ok(Box::new($build))
            }
        }
    };
}
pub(crate) use register;
