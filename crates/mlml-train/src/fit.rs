//! The training loop: any [`Source`], any model of [`ModelConfig`], any registered loss. It
//! drives the loss lifecycle, validates every epoch, selects the best epoch by validation mAP,
//! writes an atomic checkpoint after every epoch and resumes from one.
//!
//! Gradients are produced and applied in one place ([`step`]), which also sums them over the
//! devices of a data-parallel run ([`train_parallel`], [`crate::parallel`]).

use std::path::Path;
use std::time::Instant;

use crate::TrainBackend;
use burn::backend::Flex;
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};
use mlml_losses::registry::{self, LossSetup};
use mlml_losses::{
    gradient_lookup, targets_from_labels, EpochEnd, LossContext, MultiLabelLoss, OptimizerStep,
};
use mlml_metrics::{mean_average_precision, ApDefinition, MapOptions};
use mlml_ops::ConvBackend;

use crate::checkpoint::{
    checkpoint_error, load_into, read_checkpoint, record_bytes, CheckpointRecorder, ModelBytes,
    RunFiles,
};
use crate::config::{OptimizerKind, Schedule, TrainingConfig};
use crate::ema::{detached_copy, ModelEma};
use crate::error::{Result, TrainError};
use crate::model::{Classifier, ModelConfig, Weights};
use crate::optim::{torch_sgd, TorchAdam, TorchAdamConfig};
use crate::parallel::{self, Peer};
use crate::precision::{self, LossScale};
use crate::records::{EpochRecord, Observer, Progress, Run};
use crate::schedule::{OneCycle, OneCycleConfig};
use crate::source::pass_batches;
use crate::source::{Pass, Source};
use crate::start::{with_head, Start};
use mlml_data::pipeline::Shard;

/// Serialises seeding the backend and drawing from it: burn's backends keep one generator per
/// process, so two runs initialising at once (tests, or a library user's threads) would
/// otherwise interleave their draws and neither would get its seed's weights.
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The module `init` builds, with the backend seeded by `seed` and no other seeded draw in
/// between. burn initialises parameters lazily, at their first use; every parameter is
/// touched here, under the lock, so that its draw happens now.
///
/// # Errors
/// `init`'s.
pub fn seeded_init<B: Backend, M: Module<B>>(
    device: &B::Device,
    seed: u64,
    init: impl FnOnce() -> Result<M>,
) -> Result<M> {
    struct Touch;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    holding_backend_rng(|| {
        B::seed(device, seed);
        let module = init()?;
        module.visit(&mut Touch);
        Ok(module)
    })
}

/// The model's starting weights, drawn from `seed` on the CPU whatever the backend, then moved
/// to `device`. Each backend has its own generator, so drawing on the device would start a wgpu
/// or CUDA run from other weights than the CPU run of the same seed; this way the same seed
/// starts the same network everywhere.
///
/// # Errors
/// `ModelConfig::init`'s, or a record that does not fit (a bug: both sides are built from the
/// same config).
pub fn starting_model<B: Backend>(
    config: &ModelConfig,
    input: usize,
    classes: usize,
    device: &B::Device,
    seed: u64,
) -> Result<Classifier<B>> {
    let cpu = Default::default();
    let drawn = seeded_init::<Flex, _>(&cpu, seed, || config.init::<Flex>(input, classes, &cpu))?;
    // Its parameters are lazy and are replaced before their first use, so this draws nothing;
    // random weights spare it a second read of a weights file.
    let skeleton = ModelConfig {
        weights: Weights::Random,
        ..config.clone()
    }
    .init::<B>(input, classes, device)?;
    moved(drawn, skeleton, device)
}

/// `into` (a module of the same shape on backend `B`) with `from`'s parameters and buffers,
/// through burn's byte recorder in full precision: exact for f32.
///
/// # Errors
/// A record that does not fit `into`.
pub fn moved<A: Backend, B: Backend, MA: Module<A>, MB: Module<B>>(
    from: MA,
    into: MB,
    device: &B::Device,
) -> Result<MB> {
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bad = |e: burn::record::RecorderError| {
        TrainError::Config(format!("moving the starting weights to the device: {e}"))
    };
    let bytes = Recorder::<A>::record(&recorder, from.into_record(), ()).map_err(bad)?;
    let record = Recorder::<B>::load::<MB::Record>(&recorder, bytes, device).map_err(bad)?;
    Ok(holding_backend_rng(|| into.load_record(record)))
}

/// `load`, run with no seeded initialisation able to happen meanwhile (the one holder of
/// [`BACKEND_RNG`]). Loading a record into a freshly built module can draw: burn's `Linear::load_record` counts the layer's parameters,
/// which initialises its lazy weight with a throwaway draw from the backend's one generator.
/// Outside the lock that draw could fall between another run's seeding and its draws, and that
/// run would start from other weights than its seed's.
pub(crate) fn holding_backend_rng<T>(load: impl FnOnce() -> T) -> T {
    let _guard = BACKEND_RNG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    load()
}

/// Sigmoid probabilities `[n, C]`, row-major in the source's row order, of a model in eval
/// mode. Rows the source skipped (bad images) score 0.
///
/// # Errors
/// A batch the source cannot build, or an input the model does not take.
pub fn predict<B: ConvBackend, S: Source>(
    model: &Classifier<B>,
    source: &S,
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<f32>> {
    let c = source.labels().n_classes();
    let mut out = vec![0.0f32; source.len() * c];
    for batch in source.batches::<B>(Pass::Scoring, batch_size, device)? {
        let (rows, input) = batch?;
        if rows.is_empty() {
            continue;
        }
        let p = sigmoid(model.logits(input)?)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32");
        for (&r, scores) in rows.iter().zip(p.chunks_exact(c)) {
            out[r * c..(r + 1) * c].copy_from_slice(scores);
        }
    }
    Ok(out)
}

/// mAP (%) in both definitions of scores on a source with clean labels.
fn validation_maps(scores: &[f32], labels: &mlml_data::LabelMatrix) -> Result<(f64, f64)> {
    let map = |definition| {
        mean_average_precision(
            scores,
            labels,
            MapOptions {
                definition,
                skip_empty: false,
            },
        )
        .map(|r| r.map)
    };
    Ok((map(ApDefinition::Sklearn)?, map(ApDefinition::Ranked)?))
}

/// Which parameters a step updates, and at what rates.
#[derive(Clone, Copy, Debug)]
pub struct ParameterGroups {
    /// The backbone frozen (GR's linear-init epochs): only the head's gradients reach the
    /// optimizer, while the backbone still runs in training mode (BatchNorm statistics move),
    /// as the reference's `requires_grad = False` does.
    pub head_only: bool,
    /// The head's learning rate over the backbone's.
    pub head_lr_mult: f64,
}

impl Default for ParameterGroups {
    fn default() -> Self {
        Self {
            head_only: false,
            head_lr_mult: 1.0,
        }
    }
}

/// Where a step stands in its run: for its learning rate and for the message of a loss that
/// blows up.
#[derive(Clone, Copy, Debug)]
pub struct StepAt {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// The learning rate of this step.
    pub lr: f64,
}

/// One optimizer step: the loss, its gradients, the loss's after-step hook, the update. The one
/// place where gradients are produced and applied; the benchmarks time this very function.
///
/// With a `loss_scale` (`training.precision = "f16"`) the backward pass starts from the loss
/// times the scale, the gradients are divided by it, and a step whose gradients are not all
/// finite is skipped (the model, the optimizer and the loss's state unchanged) and the scale
/// halved, as PyTorch's `GradScaler` does. The gradients checked are the summed ones, so every
/// device of a data-parallel run skips the same steps.
///
/// # Errors
/// A loss that cannot be computed, or one that is not finite (epoch and batch named); with a
/// loss scale, gradients that stay non-finite down to [`LossScale::SMALLEST`].
#[allow(clippy::too_many_arguments)]
pub fn step<B: TrainBackend, O: Optimizer<Classifier<B>, B>>(
    model: Classifier<B>,
    optimizer: &mut O,
    loss: &mut Box<dyn MultiLabelLoss<B>>,
    logits: Tensor<B, 2>,
    targets: Tensor<B, 2>,
    context: &LossContext<'_>,
    at: StepAt,
    groups: ParameterGroups,
    peer: Option<Peer>,
    loss_scale: Option<&mut LossScale>,
) -> Result<(Classifier<B>, f32)> {
    let StepAt { epoch, batch, lr } = at;
    let value = loss.forward(logits, targets, context)?;
    let scalar: f32 = value.clone().into_scalar().elem::<f32>();
    if !scalar.is_finite() {
        return Err(TrainError::NonFinite {
            epoch,
            batch,
            value: scalar,
        });
    }
    let scale = loss_scale.as_ref().map(|s| s.scale);
    let mut grads = match scale {
        Some(scale) => value.mul_scalar(scale).backward(),
        None => value.backward(),
    };
    let (update, finite) = match &model {
        Classifier::Image(m) if groups.head_only || groups.head_lr_mult != 1.0 => {
            let (backbone, backbone_finite) = match groups.head_only {
                true => (None, true),
                false => {
                    let own = GradientsParams::from_module(&mut grads, &m.backbone);
                    let (backbone, finite) = gradients_of(peer, own, &m.backbone, scale)?;
                    (Some(backbone), finite)
                }
            };
            let own = GradientsParams::from_module(&mut grads, &m.head);
            let (head, head_finite) = gradients_of(peer, own, &m.head, scale)?;
            (
                Update::Groups { backbone, head },
                backbone_finite && head_finite,
            )
        }
        _ => {
            let own = GradientsParams::from_module(&mut grads, &model);
            let (whole, finite) = gradients_of(peer, own, &model, scale)?;
            (Update::Whole(whole), finite)
        }
    };
    if let Some(loss_scale) = loss_scale {
        if !loss_scale.update(finite) {
            if loss_scale.scale < LossScale::SMALLEST {
                return Err(TrainError::Config(format!(
                    "epoch {epoch}, batch {batch}: the f16 gradients are not finite even at a loss scale of {:e} ({} steps skipped); train with training.precision = \"bf16\" or \"f32\", or lower the learning rate",
                    loss_scale.scale, loss_scale.skipped_steps
                )));
            }
            tracing::debug!(
                "mlml: epoch {epoch}, batch {batch}: f16 gradients overflowed, step skipped; loss scale now {}",
                loss_scale.scale
            );
            return Ok((model, scalar));
        }
    }
    {
        let lookup = gradient_lookup::<B>(&grads);
        let unscaled = |tensor: &Tensor<B, 2>| {
            let grad = lookup(tensor)?;
            Some(match scale {
                Some(scale) => grad.div_scalar(scale),
                None => grad,
            })
        };
        loss.on_optimizer_step(&OptimizerStep {
            lr,
            gradient: &unscaled,
        })?;
    }
    let model = match update {
        // Two parameter groups, as the reference's optimizer has: each parameter's update
        // depends on its own gradient and state only, so two steps make one.
        Update::Groups { backbone, head } => {
            let model = match backbone {
                Some(backbone) => optimizer.step(lr, model, backbone),
                None => model,
            };
            optimizer.step(lr * groups.head_lr_mult, model, head)
        }
        Update::Whole(grads) => optimizer.step(lr, model, grads),
    };
    Ok((model, scalar))
}

/// A step's gradients, for the whole model or for its two parameter groups.
enum Update {
    Whole(GradientsParams),
    Groups {
        backbone: Option<GradientsParams>,
        head: GradientsParams,
    },
}

/// `module`'s gradients of the whole batch (summed over the devices of a data-parallel run),
/// divided by the loss scale when there is one, and whether they are all finite.
fn gradients_of<B: TrainBackend, M: AutodiffModule<B>>(
    peer: Option<Peer>,
    own: GradientsParams,
    module: &M,
    scale: Option<f32>,
) -> Result<(GradientsParams, bool)> {
    // Each peer's gradient is its rows' part of the batch's; the sum over peers is the batch's.
    let grads = parallel::summed_gradients::<B, M>(peer, own, module)?;
    Ok(match scale {
        Some(scale) => precision::unscaled::<B, M>(grads, module, 1.0 / scale),
        None => (grads, true),
    })
}

/// [`train_from`] with the config's own start.
///
/// # Errors
/// As [`train_from`].
#[allow(clippy::too_many_arguments)]
pub fn train<B: TrainBackend, S: Source>(
    config: &TrainingConfig,
    model_config: &ModelConfig,
    train: &S,
    val: &S,
    run_dir: Option<&Path>,
    stop_after: Option<usize>,
    device: &B::Device,
    observer: &mut dyn Observer,
) -> Result<Run<B::InnerBackend>> {
    train_from::<B, S>(
        config,
        model_config,
        train,
        val,
        run_dir,
        stop_after,
        device,
        observer,
        &Start::default(),
    )
}

/// Trains `model` on `train` (its labels are the observed ones) and selects the epoch by the
/// mAP on `val` (clean labels), with the loss's whole lifecycle. With `run_dir`, writes an
/// atomic checkpoint after every epoch and resumes from one found there; `stop_after` ends
/// the run after that many epochs in all (as an interrupted run would); `observer` sees every
/// optimizer step and each finished epoch's figures (after its checkpoint is written); a
/// closure `|record| ...` observes epochs only. On the CPU backend a resumed run
/// ends with the same weights as an uninterrupted one.
///
/// # Errors
/// Bad settings, a model or loss that cannot be built, a batch that cannot be built (a bad
/// image, named), a non-finite loss (epoch and batch named), or checkpoint files that cannot
/// be written or read.
#[allow(clippy::too_many_arguments)]
pub fn train_from<B: TrainBackend, S: Source>(
    config: &TrainingConfig,
    model_config: &ModelConfig,
    train: &S,
    val: &S,
    run_dir: Option<&Path>,
    stop_after: Option<usize>,
    device: &B::Device,
    observer: &mut dyn Observer,
    start: &Start,
) -> Result<Run<B::InnerBackend>> {
    train_on::<B, S>(
        config,
        model_config,
        train,
        val,
        run_dir,
        stop_after,
        device,
        None,
        observer,
        start,
    )
}

/// Serialises data-parallel runs: burn-collective keeps one local collective per backend type
/// and process.
static ONE_COLLECTIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// [`train_from`] on several devices of this machine, data-parallel: `config.batch_size` stays
/// the whole batch, each device takes its shard of it, and the gradients are summed over the
/// devices (burn-collective's all-reduce) before the same optimizer step everywhere. The loss
/// sees the whole batch's logits on every device, so every loss, its state and its epoch-end
/// work are those of the single-device run ([`crate::parallel`]). Rank 0 (the first device)
/// writes the run directory and reports to `observer`. One data-parallel run per process at a
/// time: a second waits for the first. One device is [`train_from`].
///
/// # Errors
/// As [`train_from`], from whichever device failed first; a collective operation that fails.
#[allow(clippy::too_many_arguments)]
pub fn train_parallel<B: TrainBackend, S: Source + Sync>(
    config: &TrainingConfig,
    model_config: &ModelConfig,
    train: &S,
    val: &S,
    run_dir: Option<&Path>,
    stop_after: Option<usize>,
    devices: &[B::Device],
    observer: &mut dyn Observer,
    start: &Start,
) -> Result<Run<B::InnerBackend>> {
    let mut runs = train_parallel_peers::<B, S>(
        config,
        model_config,
        train,
        val,
        run_dir,
        stop_after,
        devices,
        observer,
        start,
    )?;
    Ok(runs.swap_remove(0))
}

/// [`train_parallel`], returning every device's run (rank 0 first): the peers' models, losses'
/// states and figures, which must agree.
///
/// # Errors
/// As [`train_parallel`].
#[allow(clippy::too_many_arguments)]
pub fn train_parallel_peers<B: TrainBackend, S: Source + Sync>(
    config: &TrainingConfig,
    model_config: &ModelConfig,
    train: &S,
    val: &S,
    run_dir: Option<&Path>,
    stop_after: Option<usize>,
    devices: &[B::Device],
    observer: &mut dyn Observer,
    start: &Start,
) -> Result<Vec<Run<B::InnerBackend>>> {
    let count = devices.len();
    if count == 0 {
        return Err(TrainError::Config("training.devices is empty".into()));
    }
    if count == 1 {
        let run = train_from::<B, S>(
            config,
            model_config,
            train,
            val,
            run_dir,
            stop_after,
            &devices[0],
            observer,
            start,
        )?;
        return Ok(vec![run]);
    }
    if config.batch_size < count {
        return Err(TrainError::Config(format!(
            "training.batch_size ({}) is the whole batch of all {count} devices: give each at least one row",
            config.batch_size
        )));
    }
    let _one = ONE_COLLECTIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let peer_run = |index: usize, observer: &mut dyn Observer| {
        let peer = Peer {
            shard: Shard { index, count },
        };
        let device = &devices[index];
        parallel::join::<B::InnerBackend>(peer, device)?;
        let run = train_on::<B, S>(
            config,
            model_config,
            train,
            val,
            run_dir,
            stop_after,
            device,
            Some(peer),
            observer,
            start,
        );
        match &run {
            Ok(_) => parallel::leave::<B::InnerBackend>(peer)?,
            Err(_) => parallel::abandon::<B::InnerBackend>(),
        }
        run
    };
    let mut runs: Vec<Result<Run<B::InnerBackend>>> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..count)
            .map(|index| {
                let peer_run = &peer_run;
                std::thread::Builder::new()
                    .name(format!("mlml-device-{index}"))
                    .spawn_scoped(scope, move || peer_run(index, &mut ()))
            })
            .collect();
        let mut runs = vec![peer_run(0, observer)];
        for other in others {
            runs.push(match other {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    Err(TrainError::Collective("a device's thread panicked".into()))
                }),
                Err(e) => Err(TrainError::Collective(format!(
                    "cannot start a device's thread: {e}"
                ))),
            });
        }
        runs
    });
    // A peer that fails stops the others with collective errors: report its own error.
    if let Some(i) = runs
        .iter()
        .position(|r| matches!(r, Err(e) if !matches!(e, TrainError::Collective(_))))
        .or_else(|| runs.iter().position(Result::is_err))
    {
        return Err(runs.swap_remove(i).expect_err("an error at i"));
    }
    Ok(runs.into_iter().map(|r| r.expect("no error")).collect())
}

#[allow(clippy::too_many_arguments)]
fn train_on<B: TrainBackend, S: Source>(
    config: &TrainingConfig,
    model_config: &ModelConfig,
    train: &S,
    val: &S,
    run_dir: Option<&Path>,
    stop_after: Option<usize>,
    device: &B::Device,
    peer: Option<Peer>,
    observer: &mut dyn Observer,
    start: &Start,
) -> Result<Run<B::InnerBackend>> {
    config.validate()?;
    config.precision.check::<B>(device)?;
    if train.input_size() != val.input_size()
        || train.labels().n_classes() != val.labels().n_classes()
    {
        return Err(TrainError::Config(format!(
            "train has input size {} and {} classes, val {} and {}",
            train.input_size(),
            train.labels().n_classes(),
            val.input_size(),
            val.labels().n_classes()
        )));
    }
    if train.is_empty() || val.is_empty() {
        return Err(TrainError::Config(format!(
            "{} training and {} validation rows: both need at least one",
            train.len(),
            val.len()
        )));
    }
    let c = train.labels().n_classes();
    let setup = LossSetup::<B> {
        epochs: config.epochs,
        train_labels: train.labels(),
        seed: config.seed,
        device: device.clone(),
    };
    let mut loss = registry::build(&config.loss, config.preset, &config.loss_overrides, &setup)?;
    let mut model: Classifier<B> =
        starting_model(model_config, train.input_size(), c, device, config.seed)?;
    if let Some((weight, bias)) = &start.head {
        model = with_head(model, weight, bias, device)?;
    }
    if let Some(state) = &start.loss_state {
        loss.load_state(state)?;
    }
    if peer.is_some() {
        model = parallel::numbered(model);
    }
    if config.head_lr_mult != 1.0 && !matches!(model, Classifier::Image(_)) {
        return Err(TrainError::Config(format!(
            "training.head_lr_mult ({}) applies to image models trained end to end; this model ({}) is one part",
            config.head_lr_mult,
            if model_config.is_probe() { "a linear probe's head" } else { "an MLP" }
        )));
    }
    let steps_per_epoch = if config.drop_last {
        train.len() / config.batch_size
    } else {
        train.len().div_ceil(config.batch_size)
    };
    if steps_per_epoch == 0 {
        return Err(TrainError::Config(format!(
            "data.drop_last with training.batch_size {} and {} training rows leaves no batch",
            config.batch_size,
            train.len()
        )));
    }
    if let Schedule::OneCycle { epochs, pct_start } = config.schedule {
        OneCycleConfig::new(config.lr, epochs * steps_per_epoch)
            .with_pct_start(pct_start)
            .check()
            .map_err(|e| TrainError::Config(format!("training.schedule.one-cycle: {e}")))?;
    }
    let total_steps = config.epochs * steps_per_epoch;
    let rates = |beta_1| match config.schedule {
        Schedule::Constant => LearningRates::Constant(config.lr),
        Schedule::OneCycle { epochs, pct_start } => LearningRates::OneCycle(
            OneCycleConfig::new(config.lr, epochs * steps_per_epoch)
                .with_pct_start(pct_start)
                .init(beta_1),
        ),
        Schedule::Cosine { min_lr } => LearningRates::Cosine {
            lr: config.lr,
            min_lr,
            total_steps,
        },
    };
    let run = Loop {
        config,
        steps_per_epoch,
        train,
        val,
        run_dir,
        stop_after,
        device,
        peer,
    };
    match config.optimizer {
        OptimizerKind::Adam | OptimizerKind::AdamW => {
            let adam = TorchAdamConfig::new()
                .with_weight_decay(config.weight_decay)
                .with_decoupled_weight_decay(config.optimizer == OptimizerKind::AdamW)
                .init();
            let rates = rates(Some(adam.beta_1()));
            let optimizer: OptimizerAdaptor<TorchAdam, Classifier<B>, B> =
                OptimizerAdaptor::from(adam);
            run.fit(model, optimizer, rates, loss, observer)
        }
        OptimizerKind::Sgd => {
            let optimizer = torch_sgd(
                config.momentum.unwrap_or(0.9),
                config.nesterov,
                config.weight_decay,
            )
            .init::<B, Classifier<B>>();
            run.fit(model, optimizer, rates(None), loss, observer)
        }
    }
}

/// The learning rate of each optimizer step.
enum LearningRates {
    Constant(f64),
    OneCycle(OneCycle),
    Cosine {
        lr: f64,
        min_lr: f64,
        total_steps: usize,
    },
}

impl LearningRates {
    /// The learning rate of 0-based step `step` of the run (for a one-cycle schedule, it also
    /// sets Adam's beta1 for that step).
    fn at(&self, step: usize) -> f64 {
        match self {
            Self::Constant(lr) => *lr,
            Self::OneCycle(schedule) => schedule.lr_at(step),
            Self::Cosine {
                lr,
                min_lr,
                total_steps,
            } => cosine_lr(*lr, *min_lr, *total_steps, step),
        }
    }
}

/// Why a run stops after `epoch` (its record already in `progress`), or `None` to go on: the
/// last epoch is never an early stop.
fn early_stop(config: &TrainingConfig, progress: &Progress, epoch: usize) -> Option<String> {
    if epoch >= config.epochs {
        return None;
    }
    if let Some(patience) = config.patience {
        if epoch - progress.best_epoch >= patience {
            return Some(format!(
                "no better validation mAP for {patience} epoch(s) (training.patience)"
            ));
        }
    }
    let val_map = progress.epochs.last().map(|r| r.val_map)?;
    if let Some(points) = config.stop_below_best {
        if progress.best_val_map - val_map > points {
            return Some(format!(
                "validation mAP {val_map:.2} is more than {points} points below the best, {:.2} at epoch {} (training.stop_below_best)",
                progress.best_val_map, progress.best_epoch
            ));
        }
    }
    None
}

/// PyTorch's `CosineAnnealingLR(T_max = total_steps, eta_min = min_lr)` at 0-based `step`
/// (`step <= total_steps`), in the closed form its docs give and burn's
/// `CosineAnnealingLrScheduler` computes.
pub fn cosine_lr(lr: f64, min_lr: f64, total_steps: usize, step: usize) -> f64 {
    let pct = step as f64 / total_steps.max(1) as f64;
    min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * pct).cos())
}

/// What the epochs of a run share, whichever optimizer it has.
struct Loop<'a, B: TrainBackend, S: Source> {
    config: &'a TrainingConfig,
    steps_per_epoch: usize,
    train: &'a S,
    val: &'a S,
    run_dir: Option<&'a Path>,
    stop_after: Option<usize>,
    device: &'a B::Device,
    /// This device's part in a data-parallel run.
    peer: Option<Peer>,
}

/// What changes as a run goes beside the model: its optimizer, the loss, the weight average,
/// the kept best model and the progress.
struct Trainee<B: TrainBackend, O> {
    optimizer: O,
    loss: Box<dyn MultiLabelLoss<B>>,
    ema: Option<ModelEma<B, Classifier<B>>>,
    best: Classifier<B::InnerBackend>,
    /// `best`'s validation scores, kept so that the run's report need not score them again.
    best_val_scores: Option<Vec<f32>>,
    progress: Progress,
}

/// One epoch's training figures.
struct EpochTraining {
    mean_loss: f64,
    last_lr: f64,
    /// Seconds and samples after each epoch's first two batches (start-up, pipeline warm-up).
    steady_seconds: f64,
    steady_samples: usize,
}

/// The weights that count for an epoch: the raw ones, or the weight average when it scores
/// higher.
struct Validation<B: Backend> {
    val_map: f64,
    val_map_ranked: f64,
    val_map_ema: Option<f64>,
    counted: Classifier<B>,
    counted_is_ema: bool,
    /// `counted`'s scores on the validation rows.
    scores: Vec<f32>,
}

impl<B: TrainBackend, S: Source> Loop<'_, B, S> {
    /// Whether this run writes the run directory: rank 0 of a data-parallel run, or the run.
    fn writes(&self) -> bool {
        self.peer.is_none_or(|p| p.is_first())
    }

    fn fit<O: Optimizer<Classifier<B>, B>>(
        self,
        model: Classifier<B>,
        optimizer: O,
        rates: LearningRates,
        loss: Box<dyn MultiLabelLoss<B>>,
        observer: &mut dyn Observer,
    ) -> Result<Run<B::InnerBackend>> {
        let ema = self
            .config
            .ema_decay
            .map(|d| ModelEma::<B, Classifier<B>>::new(&model, d));
        let mut model = model;
        let mut t = Trainee {
            best: model.valid(),
            best_val_scores: None,
            optimizer,
            loss,
            ema,
            progress: Progress::default(),
        };
        let files = self.run_dir.map(RunFiles::in_dir);
        if let Some(files) = files.as_ref().filter(|f| f.checkpoint.is_file()) {
            (model, t) = self.resume(model, t, files)?;
        }
        let resumed_at = t.progress.epochs_done;
        let last_epoch = self
            .stop_after
            .map_or(self.config.epochs, |s| s.min(self.config.epochs));
        let (mut steady_seconds, mut steady_samples) = (0.0f64, 0usize);
        let first = t.progress.epochs_done + 1;
        for epoch in first..=last_epoch {
            if t.progress.stopped_early {
                break;
            }
            let trained;
            (model, trained) = self.train_epoch(model, &mut t, epoch, &rates, observer)?;
            steady_seconds += trained.steady_seconds;
            steady_samples += trained.steady_samples;
            if let Some(peer) = self.peer {
                model = parallel::model_from_first::<B, _>(peer, model)?;
                if let Some(ema) = t.ema.as_mut() {
                    let average = parallel::inner_from_first(peer, ema.module().clone())?;
                    *ema = ModelEma::from_average(average, ema.decay());
                }
            }
            let loss_note = self.after_epoch(&model, &mut t, epoch)?;
            let v = self.validate(&model, &t)?;
            let record = EpochRecord {
                epoch,
                train_loss: trained.mean_loss,
                val_map: v.val_map,
                val_map_ranked: v.val_map_ranked,
                lr: trained.last_lr,
                val_map_ema: v.val_map_ema,
                loss_note,
            };
            self.record(&mut t, record, v);
            if let Some(files) = files.as_ref().filter(|_| self.writes()) {
                save(&model, &t, files)?;
            }
            observer.epoch_done(t.progress.epochs.last().expect("recorded above"));
            observer.progress_recorded(&t.progress);
        }
        Ok(Run {
            best: t.best,
            last: model.valid(),
            progress: t.progress,
            resumed_at,
            train_samples_per_second: steady_samples as f64 / steady_seconds.max(1e-9),
            best_val_scores: t.best_val_scores,
        })
    }

    /// The state a checkpoint holds, read into a freshly built trainee.
    fn resume<O: Optimizer<Classifier<B>, B>>(
        &self,
        model: Classifier<B>,
        mut t: Trainee<B, O>,
        files: &RunFiles,
    ) -> Result<(Classifier<B>, Trainee<B, O>)> {
        let (path, device) = (&files.checkpoint, self.device);
        let parts = read_checkpoint(path)?;
        t.progress = parts.progress;
        let model = load_into(path, model, parts.model, device)?;
        let record = CheckpointRecorder::default()
            .load(parts.optimizer, device)
            .map_err(|e| checkpoint_error(path, e))?;
        t.optimizer = t.optimizer.load_record(record);
        t.loss.load_state(&t.progress.loss_state)?;
        t.best = load_into(path, model.valid(), parts.best, device)?;
        if let Some(ema) = t.ema.as_mut() {
            let average = load_into(path, model.valid(), parts.ema, device)?;
            *ema = ModelEma::from_average(average, ema.decay());
        }
        Ok((model, t))
    }

    /// One pass over the training rows: a [`step`] per batch, the weight average after each.
    fn train_epoch<O: Optimizer<Classifier<B>, B>>(
        &self,
        mut model: Classifier<B>,
        t: &mut Trainee<B, O>,
        epoch: usize,
        rates: &LearningRates,
        observer: &mut dyn Observer,
    ) -> Result<(Classifier<B>, EpochTraining)> {
        let (config, device) = (self.config, self.device);
        let (mut total, mut batches, mut last_lr) = (0.0f64, 0usize, config.lr);
        let (mut steady_from, mut steady_samples) = (None::<Instant>, 0usize);
        // A peer's source yields its shard of each batch; the loss takes the whole batch.
        let whole = |shard| Pass::Training {
            epoch,
            seed: config.seed,
            drop_last: config.drop_last,
            shard,
        };
        let source_pass = whole(self.peer.map(|p| p.shard));
        let whole_batches = match self.peer {
            Some(_) => pass_batches(whole(None), self.train.len(), config.batch_size),
            None => Vec::new(),
        };
        let classes = self.train.labels().n_classes();
        if t.progress.loss_scale.is_none() {
            t.progress.loss_scale = config.precision.initial_loss_scale();
        }
        let autocast = config.precision.autocast();
        let groups = ParameterGroups {
            head_only: epoch <= config.linear_init_epochs,
            head_lr_mult: config.head_lr_mult,
        };
        for (b, batch) in self
            .train
            .batches::<B>(source_pass, config.batch_size, device)?
            .enumerate()
        {
            let (rows, input) = batch?;
            let (rows, logits) = match self.peer {
                None if rows.is_empty() => continue,
                None => {
                    let logits = mlml_ops::autocast(autocast, || model.logits(input))?;
                    (rows, logits)
                }
                Some(peer) => {
                    let whole = &whole_batches[b];
                    let range = peer.shard.range(whole.len());
                    if rows != whole[range.clone()] {
                        return Err(TrainError::Config(format!(
                            "device {} was given {} of its {} rows of batch {}: a data-parallel run stops at a bad image instead of skipping it (data.bad_images = \"skip\" needs one device)",
                            peer.shard.index,
                            rows.len(),
                            range.len(),
                            b + 1
                        )));
                    }
                    let own = match rows.is_empty() {
                        true => None,
                        false => Some(mlml_ops::autocast(autocast, || model.logits(input))?),
                    };
                    let logits =
                        parallel::whole_batch(peer, own, range, whole.len(), classes, device)?;
                    (whole.clone(), logits)
                }
            };
            if b == 2 {
                steady_from = Some(Instant::now());
            }
            last_lr = rates.at((epoch - 1) * self.steps_per_epoch + b);
            let targets = targets_from_labels::<B>(self.train.labels(), &rows, device);
            let context = LossContext::train(epoch, &rows)?;
            let (next, value) = step(
                model,
                &mut t.optimizer,
                &mut t.loss,
                logits,
                targets,
                &context,
                StepAt {
                    epoch,
                    batch: b + 1,
                    lr: last_lr,
                },
                groups,
                self.peer,
                t.progress.loss_scale.as_mut(),
            )?;
            model = next;
            if let Some(ema) = t.ema.as_mut() {
                ema.update(&model);
            }
            if steady_from.is_some() {
                steady_samples += rows.len();
            }
            observer.batch_done(epoch, b + 1, self.steps_per_epoch, rows.len());
            total += f64::from(value);
            batches += 1;
        }
        let trained = EpochTraining {
            mean_loss: total / batches.max(1) as f64,
            last_lr,
            steady_seconds: steady_from.map_or(0.0, |s| s.elapsed().as_secs_f64()),
            steady_samples,
        };
        Ok((model, trained))
    }

    /// The loss's end of epoch (EM+APL's pseudo-labelling round), with the training rows'
    /// probabilities when it asks for them.
    fn after_epoch<O>(
        &self,
        model: &Classifier<B>,
        t: &mut Trainee<B, O>,
        epoch: usize,
    ) -> Result<Option<String>> {
        let train_probabilities = if t.loss.wants_train_probabilities(epoch) {
            Some(predict(
                &model.valid(),
                self.train,
                self.config.batch_size,
                self.device,
            )?)
        } else {
            None
        };
        Ok(t.loss.after_epoch(&EpochEnd {
            epoch,
            train_probabilities: train_probabilities.as_deref(),
        })?)
    }

    /// The validation mAP of the raw weights and of the weight average; the better counts.
    fn validate<O>(
        &self,
        model: &Classifier<B>,
        t: &Trainee<B, O>,
    ) -> Result<Validation<B::InnerBackend>> {
        let (val, batch_size) = (self.val, self.config.batch_size);
        // The inner backend shares the autodiff backend's device type.
        let raw = model.valid();
        let scores = predict(&raw, val, batch_size, self.device)?;
        let (val_map, val_map_ranked) = validation_maps(&scores, val.labels())?;
        let mut v = Validation {
            val_map,
            val_map_ranked,
            val_map_ema: None,
            counted: raw,
            counted_is_ema: false,
            scores,
        };
        if let Some(ema) = &t.ema {
            let average = ema.module().clone();
            let scores = predict(&average, val, batch_size, self.device)?;
            let (map, ranked) = validation_maps(&scores, val.labels())?;
            v.val_map_ema = Some(map);
            if map > v.val_map {
                (v.val_map, v.val_map_ranked) = (map, ranked);
                v.counted = average;
                v.counted_is_ema = true;
                v.scores = scores;
            }
        }
        Ok(v)
    }

    /// The epoch's record, the selection, the loss's state and the early-stop decision.
    fn record<O>(
        &self,
        t: &mut Trainee<B, O>,
        record: EpochRecord,
        v: Validation<B::InnerBackend>,
    ) {
        let epoch = record.epoch;
        let progress = &mut t.progress;
        // The first epoch with the strictly highest validation mAP, as Cole et al. select.
        if progress.best_epoch == 0 || record.val_map > progress.best_val_map {
            progress.best_epoch = epoch;
            progress.best_val_map = record.val_map;
            progress.best_is_ema = v.counted_is_ema;
            // The weight average's BatchNorm statistics are shared by its clones and move with
            // every update: the kept model must not.
            t.best = detached_copy::<B, Classifier<B>>(&v.counted);
            t.best_val_scores = Some(v.scores);
        }
        progress.epochs.push(record);
        progress.epochs_done = epoch;
        progress.loss_state = t.loss.state();
        if self.config.keep_best_loss_state && progress.best_epoch == epoch {
            progress.best_loss_state = progress.loss_state.clone();
        }
        // Decided before the checkpoint, so that a resumed run knows it is over.
        progress.stop_reason = early_stop(self.config, progress, epoch);
        progress.stopped_early = progress.stop_reason.is_some();
    }
}

/// The trainee's checkpoint, written atomically.
fn save<B: TrainBackend, O: Optimizer<Classifier<B>, B>>(
    model: &Classifier<B>,
    t: &Trainee<B, O>,
    files: &RunFiles,
) -> Result<()> {
    let path = &files.checkpoint;
    let ema = match &t.ema {
        Some(ema) => record_bytes(path, ema.module().clone().into_record())?,
        None => Vec::new(),
    };
    files.save(
        &t.progress,
        &ModelBytes {
            model: record_bytes(path, model.clone().into_record())?,
            optimizer: record_bytes::<B, _>(path, t.optimizer.to_record())?,
            best: record_bytes(path, t.best.clone().into_record())?,
            ema,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::{moved, seeded_init};
    use burn::backend::Flex;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};

    fn weights(layer: &Linear<Flex>) -> Vec<f32> {
        layer.weight.val().into_data().to_vec().unwrap()
    }

    /// Loading into a freshly built module realises its lazy parameters (burn's
    /// `Linear::load_record` counts them); those throwaway draws must not land inside another
    /// thread's seeded initialisation.
    #[test]
    fn loading_into_a_fresh_module_on_another_thread_leaves_seeded_draws_alone() {
        let device = Default::default();
        let draw = || {
            seeded_init::<Flex, _>(&device, 3, || Ok(LinearConfig::new(8, 8).init(&device)))
                .unwrap()
        };
        let alone = weights(&draw());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_loads = stop.clone();
        let loads = std::thread::spawn(move || {
            let device = Default::default();
            let source = seeded_init::<Flex, _>(&device, 5, || {
                Ok(LinearConfig::new(16, 16).init::<Flex>(&device))
            })
            .unwrap();
            while !stop_loads.load(std::sync::atomic::Ordering::Relaxed) {
                let fresh = LinearConfig::new(16, 16).init::<Flex>(&device);
                let loaded = moved(source.clone(), fresh, &device).unwrap();
                assert_eq!(loaded.num_params(), 16 * 16 + 16);
            }
        });
        let disturbed = (0..2000).filter(|_| weights(&draw()) != alone).count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        loads.join().unwrap();
        assert_eq!(disturbed, 0, "of 2000 seeded draws");
    }
}
