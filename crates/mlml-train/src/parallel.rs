//! Data-parallel training on several devices of one machine, on burn-collective's all-reduce
//! and broadcast: one peer (thread) per device, each with its own copy of the model, the
//! optimizer and the loss.
//!
//! Every step each peer runs the forward and backward of its shard of the batch (the batch is
//! the single-device run's; `mlml_data::pipeline::Shard` splits it). The losses of this field
//! look at the whole batch (LL's rejection ranks the batch's losses, several normalise by the
//! batch's observed labels, ROLE and LL-Cp keep per-row state), so the peers first share their
//! logits: each puts its rows into a zero `[batch, classes]` tensor and an all-reduce (sum)
//! gives every peer the whole batch's logits, exactly (x + 0 = x). Each peer computes the
//! loss of the whole batch on those, with only its own rows connected to its model, so its
//! gradient is its rows' part of the single-device gradient; an all-reduce (sum) of the
//! gradients gives every peer that gradient, and each steps its own optimizer with it. The
//! loss, fed identical logits, updates identical state on every peer, and its epoch-end work
//! (EM+APL's pseudo-labels) sees every row.
//!
//! BatchNorm normalises each shard by its own statistics, as PyTorch's DDP does; at the end of
//! each epoch rank 0's model and weight average (running statistics included) are broadcast,
//! so that validation, the checkpoint and the next epoch start from one model everywhere.

use std::ops::Range;

use burn::collective::{self, CollectiveConfig, CollectiveError, PeerId, ReduceOperation};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorPrimitive};
use mlml_data::pipeline::Shard;

use crate::error::{Result, TrainError};

/// One device of a data-parallel run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// This device's shard of every batch (`index` is the peer's rank).
    pub shard: Shard,
}

impl Peer {
    /// Rank 0 writes the run directory and reports progress.
    pub fn is_first(&self) -> bool {
        self.shard.index == 0
    }

    fn id(&self) -> PeerId {
        PeerId::from(u32::try_from(self.shard.index).expect("fewer than 2^32 devices"))
    }
}

/// A collective operation that failed: another peer stopped (its own error is the one to
/// report), or the collective itself went wrong.
pub(crate) fn collective_error(what: &str, e: CollectiveError) -> TrainError {
    TrainError::Collective(format!("{what}: {e:?}"))
}

/// Joins the local collective as `peer`, on `device`; returns once every peer has joined.
pub(crate) fn join<B: Backend>(peer: Peer, device: &B::Device) -> Result<()> {
    let config = CollectiveConfig::default().with_num_devices(peer.shard.count);
    collective::register::<B>(peer.id(), device.clone(), config)
        .map_err(|e| collective_error("joining the devices", e))
}

/// Leaves the collective after a run that went to its end on every peer.
pub(crate) fn leave<B: Backend>(peer: Peer) -> Result<()> {
    collective::finish_collective::<B>(peer.id())
        .map_err(|e| collective_error("leaving the devices", e))
}

/// Drops every peer's pending operation, so that the others stop instead of waiting for a
/// peer that failed.
pub(crate) fn abandon<B: Backend>() {
    collective::reset_collective::<B>();
}

/// The sum over peers of `tensor`.
fn sum<B: Backend, const D: usize>(peer: Peer, tensor: Tensor<B, D>) -> Result<Tensor<B, D>> {
    let summed = collective::all_reduce::<B>(
        peer.id(),
        tensor.into_primitive().tensor(),
        ReduceOperation::Sum,
    )
    .map_err(|e| collective_error("summing over the devices", e))?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(summed)))
}

/// Rank 0's `tensor` on every peer.
fn from_first<B: Backend, const D: usize>(
    peer: Peer,
    tensor: Tensor<B, D>,
) -> Result<Tensor<B, D>> {
    let sent = peer.is_first().then(|| tensor.into_primitive().tensor());
    let received = collective::broadcast::<B>(peer.id(), sent)
        .map_err(|e| collective_error("copying rank 0's model", e))?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(received)))
}

/// The whole batch's logits `[rows, classes]` from each peer's `own` rows (at `range` in the
/// batch), with only this peer's rows connected to its model.
pub(crate) fn whole_batch<B: AutodiffBackend>(
    peer: Peer,
    own: Option<Tensor<B, 2>>,
    range: Range<usize>,
    rows: usize,
    classes: usize,
    device: &B::Device,
) -> Result<Tensor<B, 2>> {
    let mut padded = Tensor::<B::InnerBackend, 2>::zeros([rows, classes], device);
    if let Some(own) = &own {
        padded = padded.slice_assign([range.clone(), 0..classes], own.clone().inner());
    }
    let whole = Tensor::<B, 2>::from_inner(sum(peer, padded)?);
    Ok(match own {
        Some(own) => whole.slice_assign([range, 0..classes], own),
        None => whole,
    })
}

/// `grads` with a zero gradient added for each trainable parameter of `module` it lacks (a
/// peer whose shard of a short batch is empty has none), so that every peer all-reduces the
/// same parameters. Every parameter of mlml's networks takes part in the forward pass, so on
/// a peer with rows nothing is added.
fn completed<B: AutodiffBackend, M: AutodiffModule<B>>(
    mut grads: GradientsParams,
    module: &M,
) -> GradientsParams {
    struct Missing<'a>(&'a mut GradientsParams);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Missing<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() && self.0.get::<B::InnerBackend, D>(param.id).is_none() {
                let zeros = param.val().inner().zeros_like();
                self.0.register::<B::InnerBackend, D>(param.id, zeros);
            }
        }
    }
    module.visit(&mut Missing(&mut grads));
    grads
}

/// The sum over peers of each peer's gradients of `module`'s parameters: the gradient of the
/// whole batch. Outside a data-parallel run (`peer` is `None`), `grads` as they are.
pub(crate) fn summed_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: Option<Peer>,
    grads: GradientsParams,
    module: &M,
) -> Result<GradientsParams> {
    let Some(peer) = peer else {
        return Ok(grads);
    };
    completed::<B, M>(grads, module)
        .all_reduce::<B::InnerBackend>(peer.id(), ReduceOperation::Sum)
        .map_err(|e| collective_error("summing the gradients over the devices", e))
}

/// `model` with its parameters numbered in module order. burn draws a random id for each
/// parameter it builds, and the all-reduce of the gradients pairs the peers' parameters by
/// id: the peers' copies of the model must carry the same ids. Running statistics keep theirs
/// (they have no gradient).
pub(crate) fn numbered<B: Backend, M: Module<B>>(model: M) -> M {
    struct Numbering(u64);
    impl<B: Backend> ModuleMapper<B> for Numbering {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (_, tensor, mapper) = param.consume();
            self.0 += 1;
            Param::from_mapped_value(ParamId::from(self.0), tensor, mapper)
        }
    }
    model.map(&mut Numbering(0))
}

/// Rank 0's value of every float tensor of a module, as a [`ModuleMapper`] pass keeps them:
/// once a broadcast fails the rest pass through unchanged and the first error is kept.
struct FromFirst {
    peer: Peer,
    failed: Option<TrainError>,
}

impl FromFirst {
    fn new(peer: Peer) -> Self {
        Self { peer, failed: None }
    }

    /// Rank 0's `inner`, or `None` after a failure (this one or an earlier one).
    fn received<I: Backend, const D: usize>(
        &mut self,
        inner: Tensor<I, D>,
    ) -> Option<Tensor<I, D>> {
        if self.failed.is_some() {
            return None;
        }
        from_first(self.peer, inner)
            .map_err(|e| self.failed = Some(e))
            .ok()
    }

    fn finish<M>(self, module: M) -> Result<M> {
        self.failed.map_or(Ok(module), Err)
    }
}

/// [`FromFirst`] over an autodiff module: the broadcast is of the inner tensor, and each
/// parameter keeps whether it is trained.
struct TrainingFromFirst(FromFirst);

impl<B: AutodiffBackend> ModuleMapper<B> for TrainingFromFirst {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let trainable = tensor.is_require_grad();
        let value = match self.0.received(tensor.clone().inner()) {
            Some(inner) => Tensor::from_inner(inner).set_require_grad(trainable),
            None => tensor,
        };
        Param::from_mapped_value(id, value, mapper)
    }
}

/// [`FromFirst`] over an inner (non-autodiff) module.
struct InnerFromFirst(FromFirst);

impl<I: Backend> ModuleMapper<I> for InnerFromFirst {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<I, D>>) -> Param<Tensor<I, D>> {
        let (id, tensor, mapper) = param.consume();
        let value = self.0.received(tensor.clone()).unwrap_or(tensor);
        Param::from_mapped_value(id, value, mapper)
    }
}

/// `model` with rank 0's values of every float tensor (parameters and BatchNorm statistics).
pub(crate) fn model_from_first<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: Peer,
    model: M,
) -> Result<M> {
    let mut mapper = TrainingFromFirst(FromFirst::new(peer));
    let model = model.map(&mut mapper);
    mapper.0.finish(model)
}

/// An inner (non-autodiff) `module` with rank 0's values of every float tensor.
pub(crate) fn inner_from_first<I: Backend, M: Module<I>>(peer: Peer, module: M) -> Result<M> {
    let mut mapper = InnerFromFirst(FromFirst::new(peer));
    let module = module.map(&mut mapper);
    mapper.0.finish(module)
}
