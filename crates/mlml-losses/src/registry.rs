//! Names used in configs and on the command line, mapped to constructors with their defaults.

use burn::tensor::backend::Backend;
use mlml_data::LabelMatrix;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::common::MultiLabelLoss;
use crate::error::{LossError, Result};
use crate::{
    AnLsLossConfig, AssumeNegativeLoss, AsymmetricLossConfig, BceLoss, EmAplLossConfig,
    EmLossConfig, EprLossConfig, GrLossConfig, HillLossConfig, LabelEstimator, LargeLossConfig,
    LargeLossScheme, RoleLossConfig, SplcLossConfig, WanLossConfig,
};

/// One registered loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossInfo {
    /// Name in configs and on the command line.
    pub name: &'static str,
    /// One line: what it is.
    pub summary: &'static str,
    /// Reduction of the reference.
    pub reduction: &'static str,
    /// Whether it keeps state across batches or needs the epoch.
    pub needs: &'static str,
}

/// Every loss, in the order of the crate's table.
pub const LOSSES: &[LossInfo] = &[
    LossInfo {
        name: "bce",
        summary: "BCE on fully observed labels (Cole et al.)",
        reduction: "mean",
        needs: "-",
    },
    LossInfo {
        name: "an",
        summary: "assume negative (Cole et al.)",
        reduction: "mean",
        needs: "-",
    },
    LossInfo {
        name: "an-ls",
        summary: "assume negative with label smoothing (Cole et al.)",
        reduction: "mean",
        needs: "-",
    },
    LossInfo {
        name: "wan",
        summary: "weak assume negative (Cole et al.)",
        reduction: "mean",
        needs: "-",
    },
    LossInfo {
        name: "asl-bce",
        summary: "BCE of the ASL/Hill scripts (eps-floored logs)",
        reduction: "sum",
        needs: "-",
    },
    LossInfo {
        name: "focal",
        summary: "focal loss of the ASL/Hill scripts (detached weight)",
        reduction: "sum",
        needs: "-",
    },
    LossInfo {
        name: "asl",
        summary: "asymmetric loss (Ben-Baruch et al.)",
        reduction: "sum",
        needs: "-",
    },
    LossInfo {
        name: "hill",
        summary: "Hill loss (Zhang et al.)",
        reduction: "sum",
        needs: "-",
    },
    LossInfo {
        name: "splc",
        summary: "self-paced loss correction (Zhang et al.)",
        reduction: "sum",
        needs: "epoch",
    },
    LossInfo {
        name: "ll-r",
        summary: "large-loss rejection (Kim et al.)",
        reduction: "mean",
        needs: "epoch",
    },
    LossInfo {
        name: "ll-ct",
        summary: "large-loss temporary correction (Kim et al.)",
        reduction: "mean",
        needs: "epoch",
    },
    LossInfo {
        name: "ll-cp",
        summary: "large-loss permanent correction (Kim et al.)",
        reduction: "mean",
        needs: "epoch, sample rows, state",
    },
    LossInfo {
        name: "epr",
        summary: "expected positive regularisation (Cole et al.)",
        reduction: "mean + R",
        needs: "-",
    },
    LossInfo {
        name: "role",
        summary: "regularised online label estimation (Cole et al.)",
        reduction: "mean + R",
        needs: "sample rows, estimator module",
    },
    LossInfo {
        name: "em",
        summary: "entropy maximisation (Zhou et al.)",
        reduction: "mean",
        needs: "-",
    },
    LossInfo {
        name: "em-apl",
        summary: "EM with asymmetric pseudo-labels (Zhou et al.)",
        reduction: "mean",
        needs: "epoch, sample rows, state",
    },
    LossInfo {
        name: "gr",
        summary: "generalised robust loss with schedules (Chen et al.)",
        reduction: "mean",
        needs: "epoch",
    },
    LossInfo {
        name: "boostlu",
        summary: "BoostLU: LL-R on boosted CAM logits (Kim et al.; head in mlml-models)",
        reduction: "mean",
        needs: "epoch",
    },
];

/// What some losses need to be built.
#[derive(Clone, Debug)]
pub struct LossSetup<'a, B: Backend> {
    /// The training set's observed labels (ROLE's estimator is initialised from them).
    pub train_labels: Option<&'a LabelMatrix>,
    /// Seed of any random initialisation.
    pub seed: u64,
    /// Device of any parameter.
    pub device: B::Device,
}

fn valid_names() -> String {
    LOSSES.iter().map(|l| l.name).collect::<Vec<_>>().join(", ")
}

/// A config with the user's overrides applied: every key must be a field of the config.
fn with_overrides<C: Serialize + DeserializeOwned>(
    loss: &'static str,
    defaults: C,
    overrides: &serde_json::Value,
) -> Result<C> {
    let mut value = serde_json::to_value(defaults).expect("configs serialise");
    match overrides {
        serde_json::Value::Null => {}
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
    serde_json::from_value(value).map_err(|e| LossError::Config {
        loss,
        message: e.to_string(),
    })
}

fn no_overrides(loss: &'static str, overrides: &serde_json::Value) -> Result<()> {
    with_overrides(loss, serde_json::json!({}), overrides).map(|_: serde_json::Value| ())
}

/// Builds a loss by name, with hyperparameter overrides (a JSON/TOML table; `null` for the
/// defaults).
///
/// # Errors
/// An unknown name (the message lists the valid ones), an unknown hyperparameter, an
/// out-of-range value, or ROLE without training labels.
pub fn build<B: Backend>(
    name: &str,
    overrides: &serde_json::Value,
    setup: &LossSetup<'_, B>,
) -> Result<Box<dyn MultiLabelLoss<B>>> {
    let large = |loss: &'static str, scheme| -> Result<Box<dyn MultiLabelLoss<B>>> {
        let config = with_overrides(loss, LargeLossConfig::new(scheme), overrides)?;
        Ok(Box::new(config.init()?))
    };
    Ok(match name {
        "bce" => {
            no_overrides("bce", overrides)?;
            Box::new(BceLoss)
        }
        "an" => {
            no_overrides("an", overrides)?;
            Box::new(AssumeNegativeLoss)
        }
        "an-ls" => Box::new(with_overrides("an-ls", AnLsLossConfig::new(), overrides)?.init()?),
        "wan" => Box::new(with_overrides("wan", WanLossConfig::new(), overrides)?.init()?),
        "asl-bce" => Box::new(
            with_overrides("asl-bce", AsymmetricLossConfig::bce(), overrides)?.init("asl-bce")?,
        ),
        "focal" => Box::new(
            with_overrides("focal", AsymmetricLossConfig::focal(), overrides)?.init("focal")?,
        ),
        "asl" => {
            Box::new(with_overrides("asl", AsymmetricLossConfig::asl(), overrides)?.init("asl")?)
        }
        "hill" => Box::new(with_overrides("hill", HillLossConfig::new(), overrides)?.init()?),
        "splc" => Box::new(with_overrides("splc", SplcLossConfig::new(), overrides)?.init()?),
        "ll-r" | "boostlu" => large(
            if name == "ll-r" { "ll-r" } else { "boostlu" },
            LargeLossScheme::LlR,
        )?,
        "ll-ct" => large("ll-ct", LargeLossScheme::LlCt)?,
        "ll-cp" => large("ll-cp", LargeLossScheme::LlCp)?,
        "epr" => Box::new(with_overrides("epr", EprLossConfig::new(), overrides)?.init()?),
        "role" => {
            let config = with_overrides("role", RoleLossConfig::new(), overrides)?;
            let labels = setup.train_labels.ok_or_else(|| LossError::Config {
                loss: "role",
                message: "needs the training set's observed labels to initialise its estimator"
                    .into(),
            })?;
            Box::new(config.init(LabelEstimator::init(labels, setup.seed, &setup.device))?)
        }
        "em" => Box::new(with_overrides("em", EmLossConfig::new(), overrides)?.init()?),
        "em-apl" => Box::new(with_overrides("em-apl", EmAplLossConfig::new(), overrides)?.init()?),
        "gr" => Box::new(with_overrides("gr", GrLossConfig::new(), overrides)?.init()?),
        other => {
            return Err(LossError::UnknownLoss {
                name: other.to_string(),
                valid: valid_names(),
            })
        }
    })
}
