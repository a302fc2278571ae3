//! The training BatchNorm on `Autodiff<B>`: its backward asks `B` for the gradients.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::ops::FloatTensor;

use super::{BatchNormBackend, BatchNormOutput};
use crate::conv::Activation;

#[derive(Debug)]
struct BatchNormTrain;

impl<B: BatchNormBackend> Backward<B, 3> for BatchNormTrain {
    /// x, gamma, the batch mean and variance, epsilon.
    type State = (NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let output_grad = grads.consume::<B>(&ops.node);
        let (x_state, gamma_state, mean, variance, epsilon) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma_state);
        let computed = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, output_grad);
        for (node, grad) in [
            (node_x, computed.x),
            (node_gamma, computed.gamma),
            (node_beta, computed.beta),
        ] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: BatchNormBackend, C: CheckpointStrategy> BatchNormBackend for Autodiff<B, C> {
    fn batch_norm_train_op(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> BatchNormOutput<Self> {
        let untracked = |t: FloatTensor<B>| {
            <Autodiff<B, C> as burn::tensor::backend::AutodiffBackend>::from_inner(t)
        };
        let prepared = BatchNormTrain
            .prepare::<C>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
            .compute_bound()
            .stateful();
        match prepared {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let inner =
                    B::batch_norm_train_op(x.primitive, gamma.primitive, beta.primitive, epsilon);
                let (mean, variance) = (inner.mean.clone(), inner.variance.clone());
                BatchNormOutput {
                    output: prep.finish(
                        (x_state, gamma_state, inner.mean, inner.variance, epsilon),
                        inner.output,
                    ),
                    mean: untracked(mean),
                    variance: untracked(variance),
                }
            }
            OpsKind::UnTracked(prep) => {
                let inner =
                    B::batch_norm_train_op(x.primitive, gamma.primitive, beta.primitive, epsilon);
                BatchNormOutput {
                    output: prep.finish(inner.output),
                    mean: untracked(inner.mean),
                    variance: untracked(inner.variance),
                }
            }
        }
    }

    fn batch_norm_activation_train_op(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        residual: Option<FloatTensor<Self>>,
        activation: Activation,
    ) -> BatchNormOutput<Self> {
        match &residual {
            Some(residual) => {
                batch_norm_activation([&x, &gamma, &beta, residual], epsilon, activation)
            }
            None => batch_norm_activation([&x, &gamma, &beta], epsilon, activation),
        }
    }
}

/// `activation(bn(x) + residual)`: `N` is 3 (x, gamma, beta) or 4 (and the residual).
#[derive(Debug)]
struct BatchNormActivationTrain<const N: usize>;

impl<B: BatchNormBackend, const N: usize> Backward<B, N> for BatchNormActivationTrain<N> {
    /// x, gamma, the batch mean and variance, epsilon, the output, the activation.
    type State = (
        NodeId,
        NodeId,
        FloatTensor<B>,
        FloatTensor<B>,
        f64,
        FloatTensor<B>,
        Activation,
    );

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let output_grad = grads.consume::<B>(&ops.node);
        let (x_state, gamma_state, mean, variance, epsilon, output, activation) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma_state);
        let computed = B::batch_norm_activation_train_backward(
            x,
            gamma,
            mean,
            variance,
            epsilon,
            output,
            activation,
            output_grad,
        );
        let mut computed_grads = [
            Some(computed.norm.x),
            Some(computed.norm.gamma),
            Some(computed.norm.beta),
            Some(computed.sum),
        ];
        for (parent, grad) in ops.parents.into_iter().zip(&mut computed_grads) {
            if let (Some(node), Some(grad)) = (parent, grad.take()) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// [`BatchNormBackend::batch_norm_activation_train_op`] on `Autodiff<B>` for `N` parents.
fn batch_norm_activation<B: BatchNormBackend, C: CheckpointStrategy, const N: usize>(
    inputs: [&FloatTensor<Autodiff<B, C>>; N],
    epsilon: f64,
    activation: Activation,
) -> BatchNormOutput<Autodiff<B, C>> {
    let untracked = |t: FloatTensor<B>| {
        <Autodiff<B, C> as burn::tensor::backend::AutodiffBackend>::from_inner(t)
    };
    let [x, gamma, beta] = [inputs[0], inputs[1], inputs[2]];
    let residual = inputs.get(3).map(|r| r.primitive.clone());
    let compute = || {
        B::batch_norm_activation_train_op(
            x.primitive.clone(),
            gamma.primitive.clone(),
            beta.primitive.clone(),
            epsilon,
            residual.clone(),
            activation,
        )
    };
    match BatchNormActivationTrain::<N>
        .prepare::<C>(inputs.map(|t| t.node.clone()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(x);
            let gamma_state = prep.checkpoint(gamma);
            let inner = compute();
            let (mean, variance) = (inner.mean.clone(), inner.variance.clone());
            let state = (
                x_state,
                gamma_state,
                inner.mean,
                inner.variance,
                epsilon,
                inner.output.clone(),
                activation,
            );
            BatchNormOutput {
                output: prep.finish(state, inner.output),
                mean: untracked(mean),
                variance: untracked(variance),
            }
        }
        OpsKind::UnTracked(prep) => {
            let inner = compute();
            BatchNormOutput {
                output: prep.finish(inner.output),
                mean: untracked(inner.mean),
                variance: untracked(inner.variance),
            }
        }
    }
}
