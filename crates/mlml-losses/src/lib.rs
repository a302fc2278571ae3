//! The crate's documentation is its README (the table of losses, how a loss is built for a
//! run, the lifecycle a loop drives, the presets with their sources, how to add a loss), so
//! that the table is written once.
#![doc = include_str!("../README.md")]

mod an;
mod asl;
mod bce;
#[macro_use]
mod common;
mod em;
mod em_apl;
mod epr;
mod error;
mod gr;
mod hill;
mod large_loss;
mod reduction;
mod registration;
pub mod registry;
mod role;
mod splc;
mod stateless;
#[cfg(test)]
mod vectors;
mod wan;

pub use an::{AnLsLoss, AnLsLossConfig, AssumeNegativeLoss};
pub use asl::{AsymmetricLoss, AsymmetricLossConfig};
pub use bce::BceLoss;
pub use common::{
    gradient_lookup, negative_mask, positive_mask, targets_from_labels, unobserved_mask, EpochEnd,
    ExtraTrainable, LossContext, LossState, MultiLabelLoss, OptimizerStep, Phase, StateTensor,
};
pub use em::{EmLoss, EmLossConfig};
pub use em_apl::{AplState, EmAplLoss, EmAplLossConfig};
pub use epr::{EprLoss, EprLossConfig};
pub use error::{LossError, Result};
pub use gr::{GrLoss, GrLossConfig, GrSchedule};
pub use hill::{HillLoss, HillLossConfig};
pub use large_loss::{
    clean_rate, LargeLoss, LargeLossConfig, LargeLossRate, LargeLossScheme, LargeLossSelection,
    LlCpRate, LlCpVariant,
};
pub use mlml_ops::SigmoidBackend;
pub use reduction::Reduction;
pub use registry::{LossInfo, LossSetup, Preset, PresetValue};
pub use role::{linear_init_state, LabelEstimator, RoleLoss, RoleLossConfig};
pub use splc::{SplcLoss, SplcLossConfig};
pub use wan::{WanLoss, WanLossConfig};
