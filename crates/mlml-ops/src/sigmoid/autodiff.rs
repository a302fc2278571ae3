//! The sigmoids on `Autodiff<B>`: a node that keeps its output for the backward.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::ops::FloatTensor;

use super::SigmoidBackend;
/// The autodiff node of the two ops. Its state is one tensor: the sigmoid's output (its
/// backward is `grad s (1 - s)`) or the log-sigmoid's input (backward `grad sigmoid(-x)`).
#[derive(Clone, Copy, Debug)]
enum KeptTensorNode {
    Sigmoid,
    LogSigmoid,
}

impl KeptTensorNode {
    fn forward<B: SigmoidBackend>(self, x: FloatTensor<B>) -> FloatTensor<B> {
        match self {
            KeptTensorNode::Sigmoid => B::sigmoid_tracked(x),
            KeptTensorNode::LogSigmoid => B::log_sigmoid_tracked(x),
        }
    }

    fn tracked<B: SigmoidBackend, C: CheckpointStrategy>(
        self,
        x: FloatTensor<Autodiff<B, C>>,
    ) -> FloatTensor<Autodiff<B, C>> {
        match self
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (state, output) = match self {
                    KeptTensorNode::Sigmoid => {
                        let output = self.forward::<B>(x.primitive);
                        (output.clone(), output)
                    }
                    KeptTensorNode::LogSigmoid => {
                        (x.primitive.clone(), self.forward::<B>(x.primitive))
                    }
                };
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(self.forward::<B>(x.primitive)),
        }
    }
}

impl<B: SigmoidBackend> Backward<B, 1> for KeptTensorNode {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(parent) = parent {
            let grad = match self {
                KeptTensorNode::Sigmoid => B::sigmoid_backward(ops.state, grad),
                KeptTensorNode::LogSigmoid => B::log_sigmoid_tracked_backward(ops.state, grad),
            };
            grads.register::<B>(parent.id, grad);
        }
    }
}

impl<B: SigmoidBackend, C: CheckpointStrategy> SigmoidBackend for Autodiff<B, C> {
    fn sigmoid_tracked(x: FloatTensor<Self>) -> FloatTensor<Self> {
        KeptTensorNode::Sigmoid.tracked::<B, C>(x)
    }

    fn log_sigmoid_tracked(x: FloatTensor<Self>) -> FloatTensor<Self> {
        KeptTensorNode::LogSigmoid.tracked::<B, C>(x)
    }
}
