//! # mlml-losses
//!
//! The losses of multi-label learning with missing labels, each faithful to its reference code
//! (value and gradient, checked against vectors produced by running the originals), on burn and
//! generic over its backend.
//!
//! | name | loss | reference code | reduction |
//! |---|---|---|---|
//! | `bce` | [`BceLoss`] | Cole et al. `loss_bce` | mean |
//! | `an` | [`AssumeNegativeLoss`] | Cole et al. `loss_an` | mean |
//! | `an-ls` | [`AnLsLoss`] | Cole et al. `loss_an_ls` | mean |
//! | `wan` | [`WanLoss`] | Cole et al. `loss_wan` | mean |
//! | `asl-bce`, `focal`, `asl` | [`AsymmetricLoss`] | ASL `AsymmetricLoss` | sum |
//! | `hill` | [`HillLoss`] | robust-loss-mlml `Hill` | sum |
//! | `splc` | [`SplcLoss`] | robust-loss-mlml `SPLC` | sum |
//! | `ll-r`, `ll-ct`, `ll-cp`, `boostlu` | [`LargeLoss`] | LargeLossMatters / BoostLU | mean |
//! | `epr` | [`EprLoss`] | Cole et al. `loss_epr` | mean + R |
//! | `role` | [`RoleLoss`] | Cole et al. `loss_role` | mean + R |
//! | `em` | [`EmLoss`] | Zhou et al. `loss_EM` | mean |
//! | `em-apl` | [`EmAplLoss`] | Zhou et al. `loss_EM_APL` | mean |
//! | `gr` | [`GrLoss`] | GRLoss `GR_loss` | mean |
//!
//! **Targets** are mlml's codes as floats: 1 observed positive, -1 observed negative, 0
//! unobserved ([`targets_from_labels`] builds them from an `mlml-data` `LabelMatrix`). Each loss
//! says how it reads 0 and -1; most assume unobserved entries negative, as their papers do.
//! **Epochs** are 1-based everywhere ([`LossContext::epoch`]); losses whose reference counts
//! from 0 convert and say so. Stateful losses (LL-Cp, EM+APL) key their state by dataset row
//! ([`LossContext::sample_indices`]) and expose it for checkpoints; ROLE's estimator is a module.
//! [`registry::build`] makes any of them from its name and a table of overrides.
//!
//! ```
//! use burn::backend::{Autodiff, Flex};
//! use burn::tensor::Tensor;
//! use mlml_losses::{HillLossConfig, LossContext, MultiLabelLoss};
//!
//! type B = Autodiff<Flex>;
//! let device = Default::default();
//! let logits = Tensor::<B, 2>::from_floats([[2.0, -1.0], [0.5, 3.0]], &device).require_grad();
//! let targets = Tensor::<B, 2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
//! let mut hill = HillLossConfig::new().init()?;
//! let loss = hill.forward(logits.clone(), targets, &LossContext::new(1, &[0, 1]));
//! let grads = loss.backward();
//! assert!(logits.grad(&grads).is_some());
//! # Ok::<(), mlml_losses::LossError>(())
//! ```

mod an;
mod asl;
mod bce;
mod boostlu;
mod common;
mod em;
mod em_apl;
mod epr;
mod error;
mod gr;
mod hill;
mod large_loss;
mod reduction;
pub mod registry;
mod role;
mod splc;
mod wan;

pub use an::{AnLsLoss, AnLsLossConfig, AssumeNegativeLoss};
pub use asl::{AsymmetricLoss, AsymmetricLossConfig};
pub use bce::BceLoss;
pub use boostlu::{boost_cam, boosted_logits, BOOSTLU_ALPHA};
pub use common::{
    negative_mask, positive_mask, targets_from_labels, unobserved_mask, LossContext, MultiLabelLoss,
};
pub use em::{EmLoss, EmLossConfig};
pub use em_apl::{AplState, EmAplLoss, EmAplLossConfig};
pub use epr::{EprLoss, EprLossConfig};
pub use error::{LossError, Result};
pub use gr::{GrLoss, GrLossConfig, GrSchedule};
pub use hill::{HillLoss, HillLossConfig};
pub use large_loss::{
    clean_rate, LargeLoss, LargeLossConfig, LargeLossScheme, LlCpVariant, Selection,
};
pub use reduction::Reduction;
pub use role::{LabelEstimator, RoleLoss, RoleLossConfig};
pub use splc::{SplcLoss, SplcLossConfig};
pub use wan::{WanLoss, WanLossConfig};
