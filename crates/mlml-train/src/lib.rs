//! # mlml-train
//!
//! The pieces of the papers' training recipes that burn 0.21 lacks, on burn's own traits:
//!
//! - [`AdamL2`]: PyTorch's `torch.optim.Adam` to the formula (epsilon 1e-8 by default, not
//!   burn's 1e-5; bias corrections with the current beta1), with **coupled** L2 weight decay
//!   (added to the gradient before the moments, as the ASL scripts' `add_weight_decay` groups
//!   do) applied only to parameters of two or more dimensions, and a beta1 that a schedule can
//!   change between steps ([`Beta1`]). It is a burn `SimpleOptimizer`, so
//!   `OptimizerAdaptor::from(adam)` optimises any module and its state is a burn record.
//! - [`OneCycle`]: PyTorch's `OneCycleLR` (two phases, cosine annealing) with its momentum
//!   cycle (beta1 0.95 -> 0.85 -> 0.95), as a burn `LrScheduler`; a run may stop before the
//!   schedule ends (the ASL recipe builds it for 80 epochs and runs 31).
//! - [`ModelEma`]: an exponential moving average of every float tensor of a module, parameters
//!   and BatchNorm running statistics alike, updated after each optimizer step.
//!
//! - [`features::train_features`]: the loop on feature vectors (an MLP, any registered loss):
//!   the loss lifecycle, validation mAP every epoch, selection of the best epoch, atomic
//!   checkpoints and resume.
//!
//! The recipe pieces are tested step by step against `tests/vectors/train_recipes.json`, which replays both
//! recipes with PyTorch's own `Adam` and `OneCycleLR`.

mod ema;
mod error;
pub mod features;
mod optim;
mod schedule;

pub use ema::ModelEma;
pub use error::{Result, TrainError};
pub use optim::{AdamL2, AdamL2Config, AdamL2State, Beta1};
pub use schedule::{OneCycle, OneCycleConfig};
