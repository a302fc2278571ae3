//! The tracked max pooling on `Autodiff<B>`: it keeps the argmax for its backward.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::ops::{FloatTensor, IntTensor};

use super::{MaxPoolOptions, PoolBackend};

#[derive(Debug)]
struct MaxPool2dArgmax;

impl<B: PoolBackend> Backward<B, 1> for MaxPool2dArgmax {
    type State = (NodeId, IntTensor<B>, MaxPoolOptions);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        let (x_state, indices, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        if let Some(node) = node_x {
            let grad = B::max_pool2d_argmax_backward(x, options, output_grad, indices);
            grads.register::<B>(node.id, grad);
        }
    }
}

impl<B: PoolBackend, C: CheckpointStrategy> PoolBackend for Autodiff<B, C> {
    fn max_pool2d_tracked(x: FloatTensor<Self>, options: MaxPoolOptions) -> FloatTensor<Self> {
        match MaxPool2dArgmax
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let (output, indices) = B::max_pool2d_argmax(x.primitive, options);
                prep.finish((x_state, indices, options), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2d_tracked(x.primitive, options)),
        }
    }
}
