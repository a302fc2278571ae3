//! # mlml-train
//!
//! The pieces of the papers' training recipes that burn 0.21 lacks, on burn's own traits:
//!
//! - [`TorchAdam`]: PyTorch's `torch.optim.Adam` to the formula (epsilon 1e-8 by default, not
//!   burn's 1e-5; bias corrections with the current beta1), with **coupled** L2 weight decay
//!   (added to the gradient before the moments, as the ASL scripts' `add_weight_decay` groups
//!   do) applied only to parameters of two or more dimensions, and a beta1 that a schedule can
//!   change between steps ([`Beta1`]); with `decoupled_weight_decay` it is PyTorch's `AdamW`
//!   (on the same parameters). It is a burn `SimpleOptimizer`, so
//!   `OptimizerAdaptor::from(adam)` optimises any module and its state is a burn record. SGD
//!   (momentum without dampening, Nesterov, L2 on every parameter) is burn's own `Sgd`.
//! - [`OneCycle`]: PyTorch's `OneCycleLR` (two phases, cosine annealing) with its momentum
//!   cycle (beta1 0.95 -> 0.85 -> 0.95), as a burn `LrScheduler`; a run may stop before the
//!   schedule ends (the ASL recipe builds it for 80 epochs and runs 31).
//! - [`ModelEma`]: an exponential moving average of every float tensor of a module, parameters
//!   and BatchNorm running statistics alike, updated after each optimizer step.
//!
//! - [`train`]: the loop, for any [`Source`] (feature vectors, images in memory, image files
//!   through `mlml-data`'s pipeline), any [`ModelConfig`] (MLP, small CNN, ResNet,
//!   EfficientNet-Lite0 with a GAP or BoostLU head) and any registered loss: the loss
//!   lifecycle, Adam, AdamW or SGD with the head at its own learning-rate multiplier, constant,
//!   one-cycle or cosine learning rate, optional weight EMA, validation mAP every epoch,
//!   selection of the best epoch, atomic checkpoints and resume.
//!
//! The recipe pieces are tested step by step against `tests/vectors/train_recipes.json`, which
//! replays both recipes with PyTorch's own `Adam` and `OneCycleLR`, and
//! `tests/vectors/optimizers.json` (PyTorch's `AdamW` under `CosineAnnealingLR`, and `SGD`).

pub mod bench;
mod checkpoint;
mod config;
mod ema;
mod error;
pub mod features;
mod finite;
mod fit;
mod model;
mod optim;
pub mod parallel;
mod precision;
pub mod probe;
mod records;
pub mod run;
pub mod run_config;
pub mod run_data;
pub mod run_rows;
mod schedule;
pub mod source;
mod start;
pub mod suggest;

pub use checkpoint::load_best;
pub use config::{LinearPhase, OptimizerKind, Schedule, TrainingConfig};
pub use ema::ModelEma;
pub use error::{Result, TrainError};
pub use features::FeatureSet;
pub use fit::{
    cosine_lr, predict, seeded_init, step, train, train_from, train_parallel, train_parallel_peers,
    ParameterGroups, StepAt,
};
pub use mlml_ops::{ConvBackend, SigmoidBackend, TrainBackend};
pub use model::{
    Backbone, BackboneKind, Classifier, ImageClassifier, Input, Mode, ModelConfig, Weights,
};
pub use optim::{torch_sgd, Beta1, TorchAdam, TorchAdamConfig, TorchAdamState};
pub use precision::{LossScale, Precision};
pub use records::{EpochRecord, Observer, Progress, Run};
pub use schedule::{OneCycle, OneCycleConfig};
pub use source::{ImageArray, ImageFiles, Pass, Source};
pub use start::Start;
