//! The tracked convolution on `Autodiff<B>`: its backward asks `B` for the gradients.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::ops::{ConvOptions, FloatTensor};

use super::ConvBackend;
#[derive(Debug)]
struct Conv2dWithBias;

#[derive(Debug)]
struct Conv2dNoBias;

/// The input and weight gradients of a convolution, registered on their nodes when tracked.
/// (Each checkpointed state is retrieved once: the checkpointer hands it out once per
/// checkpoint.)
fn register_conv_grads<B: ConvBackend>(
    grads: &mut Gradients,
    node_x: Option<NodeId>,
    node_weight: Option<NodeId>,
    (x, weight): (FloatTensor<B>, FloatTensor<B>),
    output_grad: &FloatTensor<B>,
    options: &ConvOptions<2>,
) {
    if let Some(node) = node_x {
        let grad = B::conv2d_input_grad(
            x.clone(),
            weight.clone(),
            output_grad.clone(),
            options.clone(),
        );
        grads.register::<B>(node, grad);
    }
    if let Some(node) = node_weight {
        let grad = B::conv2d_weight_grad(x, weight, output_grad.clone(), options.clone());
        grads.register::<B>(node, grad);
    }
}

impl<B: ConvBackend> Backward<B, 3> for Conv2dWithBias {
    type State = (NodeId, NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, bias_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        let bias = checkpointer.retrieve_node_output::<FloatTensor<B>>(bias_state);
        if let Some(node) = node_bias {
            let grad = B::conv2d_bias_backward(x.clone(), bias, output_grad.clone());
            grads.register::<B>(node.id, grad);
        }
        register_conv_grads::<B>(
            grads,
            node_x.map(|node| node.id),
            node_weight.map(|node| node.id),
            (x, weight),
            &output_grad,
            &options,
        );
    }
}

impl<B: ConvBackend> Backward<B, 2> for Conv2dNoBias {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        register_conv_grads::<B>(
            grads,
            node_x.map(|node| node.id),
            node_weight.map(|node| node.id),
            (x, weight),
            &output_grad,
            &options,
        );
    }
}

impl<B: ConvBackend, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    const MIXED_PRECISION: bool = B::MIXED_PRECISION;

    fn conv2d_tracked(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match bias {
            Some(bias) => match Conv2dWithBias
                .prepare::<C>([x.node.clone(), weight.node.clone(), bias.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let state = (
                        prep.checkpoint(&x),
                        prep.checkpoint(&weight),
                        prep.checkpoint(&bias),
                        options.clone(),
                    );
                    let output = B::conv2d_tracked(
                        x.primitive,
                        weight.primitive,
                        Some(bias.primitive),
                        options,
                    );
                    prep.finish(state, output)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::conv2d_tracked(
                    x.primitive,
                    weight.primitive,
                    Some(bias.primitive),
                    options,
                )),
            },
            None => match Conv2dNoBias
                .prepare::<C>([x.node.clone(), weight.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(mut prep) => {
                    let state = (
                        prep.checkpoint(&x),
                        prep.checkpoint(&weight),
                        options.clone(),
                    );
                    let output = B::conv2d_tracked(x.primitive, weight.primitive, None, options);
                    prep.finish(state, output)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::conv2d_tracked(
                    x.primitive,
                    weight.primitive,
                    None,
                    options,
                )),
            },
        }
    }
}
