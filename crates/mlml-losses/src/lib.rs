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
//! **Epochs** are 1-based everywhere ([`LossContext::epoch`]; a context refuses epoch 0); losses
//! whose reference counts from 0 convert and say so.
//!
//! **Lifecycle** ([`MultiLabelLoss`]): a loop builds a loss from the run's facts
//! ([`LossSetup`]: epochs T, the training labels, seed, device) with [`registry::build`], calls
//! [`MultiLabelLoss::forward`] per batch with a train or eval [`LossContext`], then
//! [`MultiLabelLoss::on_optimizer_step`] with the step's gradients (ROLE trains its estimator
//! there, LL-Cp stores its corrections), [`MultiLabelLoss::after_epoch`] with the training set's
//! eval-mode probabilities when [`MultiLabelLoss::wants_train_probabilities`] asks (EM+APL's
//! pseudo-labelling), and saves [`MultiLabelLoss::state`] in its checkpoints. Evaluation batches
//! never read or write training-row state. A configured epoch or class count that disagrees
//! with the run's is an error; so are logits and targets of different shapes.
//!
//! **Presets** ([`Preset`]): `voc`, `coco`, `nuswide`, `cub`, `yeast`, `scene`, `fashion` set
//! each loss's dataset-dependent values (EPR/ROLE `expected_num_pos`, EM/EM+APL `alpha`, `beta`,
//! `warmup_epoch`, LL `delta_rel_percent`); [`registry::presets`] lists them with their sources.
//!
//! ```
//! use burn::backend::{Autodiff, Flex};
//! use burn::tensor::Tensor;
//! use mlml_data::LabelMatrix;
//! use mlml_losses::{gradient_lookup, registry, LossContext, LossSetup, OptimizerStep, Preset};
//!
//! type B = Autodiff<Flex>;
//! let device = Default::default();
//! let train = LabelMatrix::new(
//!     vec!["a".into(), "b".into()],
//!     vec!["x.jpg".into(), "y.jpg".into()],
//!     vec![1, 0, 0, 1],
//! )?;
//! let setup = LossSetup::<B> { epochs: 10, train_labels: &train, seed: 0, device };
//! let mut loss = registry::build("role", Some(Preset::Voc), &serde_json::Value::Null, &setup)?;
//! let logits = Tensor::<B, 2>::from_floats([[2.0, -1.0], [0.5, 3.0]], &device).require_grad();
//! let targets = Tensor::<B, 2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
//! let value = loss.forward(logits.clone(), targets, &LossContext::train(1, &[0, 1])?)?;
//! let grads = value.backward();
//! assert!(logits.grad(&grads).is_some());
//! let lookup = gradient_lookup::<B>(&grads);
//! loss.on_optimizer_step(&OptimizerStep { lr: 1e-4, gradient: &lookup })?;
//! assert_eq!(loss.state().values["adam_steps"], 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod an;
mod asl;
pub mod backend;
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
mod wan;

pub use an::{AnLsLoss, AnLsLossConfig, AssumeNegativeLoss};
pub use asl::{AsymmetricLoss, AsymmetricLossConfig};
pub use backend::LossBackend;
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
pub use reduction::Reduction;
pub use registry::{LossInfo, LossSetup, Preset, PresetValue};
pub use role::{linear_init_state, LabelEstimator, RoleLoss, RoleLossConfig};
pub use splc::{SplcLoss, SplcLossConfig};
pub use wan::{WanLoss, WanLossConfig};
