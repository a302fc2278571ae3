//! How a loss registers itself: its [`LossInfo`], its config with defaults, its per-dataset
//! [`Preset`] values with their sources, and how it is built from the loss's setup
//! ([`LossSetup`]). Each loss file implements `Registered` with the `register!` macro; the
//! table of names in `registry` lists them. This module depends on no loss.

use mlml_data::LabelMatrix;
use mlml_ops::SigmoidBackend;
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
/// gives for that dataset; [`presets`](crate::registry::presets) lists every value with its source.
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

/// A loss's setup: what a run tells a loss it is built for.
#[derive(Clone, Debug)]
pub struct LossSetup<'a, B: SigmoidBackend> {
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

impl<B: SigmoidBackend> LossSetup<'_, B> {
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
    /// Builds the loss from a validated config and the loss's setup.
    fn build<B: SigmoidBackend>(
        config: Self::Config,
        setup: &LossSetup<'_, B>,
    ) -> Result<Box<dyn MultiLabelLoss<B>>>;
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
/// loss's setup (an expression that may use `?`).
macro_rules! register {
    (
        $loss:ty,
        config: $config:ty = $defaults:expr,
        info: { name: $name:literal, summary: $summary:literal, reduction: $reduction:literal, needs: $needs:literal },
        $(preset: $preset:expr,)?
        build: |$cfg:ident, $setup:ident| $build:expr $(,)?
    ) => {
        impl $crate::registration::Registered for $loss {
            const INFO: $crate::registration::LossInfo = $crate::registration::LossInfo {
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
                fn preset(preset: $crate::registration::Preset) -> Vec<$crate::registration::PresetValue> {
                    ($preset)(preset)
                }
            )?

            fn build<B: $crate::SigmoidBackend>(
                $cfg: Self::Config,
                $setup: &$crate::registration::LossSetup<'_, B>,
            ) -> $crate::Result<Box<dyn $crate::MultiLabelLoss<B>>> {
                Ok(Box::new($build))
            }
        }
    };
}
pub(crate) use register;
