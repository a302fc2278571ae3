//! `batch_norm_train` (and `batch_norm_activation_train`, with burn's add and activation after
//! it) against burn's own `BatchNorm::forward` in training mode: the output and
//! the gradients of the input, gamma and beta, on several shapes (1 x 1 maps, a batch of one,
//! odd channel counts), with random parameters; and the running statistics, which follow
//! PyTorch (unbiased variance) where burn takes the biased one.
//!
//! Tolerance: 1e-5 relative plus a floor of 1e-6 of the tensor's largest magnitude (sums in a
//! different order).

use burn::backend::{Autodiff, Flex};
use burn::module::Param;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Distribution, Tensor};
use mlml_ops::{batch_norm_activation_train, batch_norm_train, Activation};
use mlml_testing::{assert_all_close, Tolerance};

type B = Autodiff<Flex>;

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn inner<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// 1e-5 relative, with a floor of 1e-6 of the largest expected magnitude.
fn tolerance(expected: &[f32]) -> Tolerance {
    Tolerance::relative(1e-5).scaled_to(expected, 1e-6)
}

/// A BatchNorm with the given gamma and beta (each built fresh: a cloned module would share
/// its running statistics with the original).
fn batch_norm(gamma: &Tensor<B, 1>, beta: &Tensor<B, 1>, momentum: f64) -> BatchNorm<B> {
    let c = gamma.dims()[0];
    let mut bn = BatchNormConfig::new(c)
        .with_momentum(momentum)
        .init::<B>(&Default::default());
    bn.gamma = Param::from_tensor(gamma.clone().detach().require_grad());
    bn.beta = Param::from_tensor(beta.clone().detach().require_grad());
    bn
}

#[test]
fn training_batch_norm_equals_burns_in_value_and_gradient() {
    let device = Default::default();
    for (seed, [n, c, h, w]) in [
        (1, [4, 3, 5, 7]),
        (2, [8, 16, 1, 1]),
        (3, [1, 5, 6, 6]),
        (4, [3, 32, 9, 4]),
    ] {
        <Flex as burn::tensor::backend::Backend>::seed(&Default::default(), seed);
        let x = Tensor::<B, 4>::random([n, c, h, w], Distribution::Normal(0.5, 2.0), &device);
        let upstream =
            Tensor::<B, 4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device);
        let gamma = Tensor::<B, 1>::random([c], Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<B, 1>::random([c], Distribution::Normal(0.0, 1.0), &device);
        let what = format!("[{n}, {c}, {h}, {w}]");

        let ours_bn = batch_norm(&gamma, &beta, 0.1);
        let burns_bn = batch_norm(&gamma, &beta, 0.1);
        let (x_ours, x_burns) = (
            x.clone().detach().require_grad(),
            x.clone().detach().require_grad(),
        );
        let ours = batch_norm_train(&ours_bn, x_ours.clone());
        let burns = burns_bn.forward(x_burns.clone());
        assert_all_close(
            format!("{what} output"),
            &values(ours.clone()),
            &values(burns.clone()),
            tolerance(&values(burns.clone())),
        );

        let grads_ours = (ours * upstream.clone()).sum().backward();
        let grads_burns = (burns * upstream).sum().backward();
        let grad = |t: &Tensor<B, 4>, g| inner(t.grad(g).unwrap());
        assert_all_close(
            format!("{what} input gradient"),
            &grad(&x_ours, &grads_ours),
            &grad(&x_burns, &grads_burns),
            tolerance(&grad(&x_burns, &grads_burns)),
        );
        for (name, ours_p, burns_p) in [
            ("gamma", &ours_bn.gamma, &burns_bn.gamma),
            ("beta", &ours_bn.beta, &burns_bn.beta),
        ] {
            assert_all_close(
                format!("{what} {name} gradient"),
                &inner(ours_p.val().grad(&grads_ours).unwrap()),
                &inner(burns_p.val().grad(&grads_burns).unwrap()),
                tolerance(&inner(burns_p.val().grad(&grads_burns).unwrap())),
            );
        }

        // Running mean as burn's; running variance from the unbiased batch variance, as
        // PyTorch: burn's update is 0.9 + 0.1 v, ours 0.9 + 0.1 v m / (m - 1).
        assert_all_close(
            format!("{what} running mean"),
            &values(ours_bn.running_mean.value_sync()),
            &values(burns_bn.running_mean.value_sync()),
            tolerance(&values(burns_bn.running_mean.value_sync())),
        );
        let m = (n * h * w) as f32;
        let unbiased = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
        let expected: Vec<f32> = values(burns_bn.running_var.value_sync())
            .iter()
            .map(|r| 0.9 + (r - 0.9) * unbiased)
            .collect();
        assert_all_close(
            format!("{what} running variance"),
            &values(ours_bn.running_var.value_sync()),
            &expected,
            tolerance(&expected),
        );
    }
}

/// `batch_norm_activation_train` (one op with its own backward) against burn's `BatchNorm`
/// followed by burn's add and activation, through autodiff: the output and the gradients of
/// the input, the residual, gamma and beta, for ReLU and ReLU6, with and without a residual;
/// gamma and beta spread the values so that both of ReLU6's bounds cut.
#[test]
fn batch_norm_with_residual_and_activation_equals_burns_layers() {
    let device = Default::default();
    for (seed, [n, c, h, w]) in [(5, [4, 3, 5, 7]), (6, [2, 8, 3, 3])] {
        for activation in [Activation::Relu, Activation::Relu6] {
            for with_residual in [false, true] {
                <Flex as burn::tensor::backend::Backend>::seed(&Default::default(), seed);
                let shape = [n, c, h, w];
                let x = Tensor::<B, 4>::random(shape, Distribution::Normal(0.5, 2.0), &device);
                let upstream =
                    Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let gamma = Tensor::<B, 1>::random([c], Distribution::Uniform(2.0, 4.0), &device);
                let beta = Tensor::<B, 1>::random([c], Distribution::Uniform(1.0, 5.0), &device);
                let residual =
                    Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let what = format!("{shape:?} {activation:?} residual {with_residual}");

                let ours_bn = batch_norm(&gamma, &beta, 0.1);
                let burns_bn = batch_norm(&gamma, &beta, 0.1);
                let leaf = |t: &Tensor<B, 4>| t.clone().detach().require_grad();
                let (x_ours, x_burns) = (leaf(&x), leaf(&x));
                let (r_ours, r_burns) = (leaf(&residual), leaf(&residual));
                let ours = batch_norm_activation_train(
                    &ours_bn,
                    x_ours.clone(),
                    with_residual.then(|| r_ours.clone()),
                    activation,
                );
                let sum = burns_bn.forward(x_burns.clone());
                let sum = if with_residual {
                    sum + r_burns.clone()
                } else {
                    sum
                };
                let burns = match activation {
                    Activation::Relu6 => burn::tensor::activation::relu(sum).clamp_max(6.0),
                    _ => burn::tensor::activation::relu(sum),
                };
                let expected = values(burns.clone());
                assert_all_close(
                    format!("{what} output"),
                    &values(ours.clone()),
                    &expected,
                    tolerance(&expected),
                );
                if activation == Activation::Relu6 {
                    assert!(expected.contains(&6.0), "{what}: nothing above 6");
                }
                assert!(expected.contains(&0.0), "{what}: nothing below 0");

                let grads_ours = (ours * upstream.clone()).sum().backward();
                let grads_burns = (burns * upstream).sum().backward();
                let grad = |t: &Tensor<B, 4>, g| inner(t.grad(g).unwrap());
                let mut leaves = vec![("input", &x_ours, &x_burns)];
                if with_residual {
                    leaves.push(("residual", &r_ours, &r_burns));
                }
                for (name, ours_t, burns_t) in leaves {
                    let expected = grad(burns_t, &grads_burns);
                    assert_all_close(
                        format!("{what} {name} gradient"),
                        &grad(ours_t, &grads_ours),
                        &expected,
                        tolerance(&expected),
                    );
                }
                for (name, ours_p, burns_p) in [
                    ("gamma", &ours_bn.gamma, &burns_bn.gamma),
                    ("beta", &ours_bn.beta, &burns_bn.beta),
                ] {
                    let expected = inner(burns_p.val().grad(&grads_burns).unwrap());
                    assert_all_close(
                        format!("{what} {name} gradient"),
                        &inner(ours_p.val().grad(&grads_ours).unwrap()),
                        &expected,
                        tolerance(&expected),
                    );
                }
                assert_all_close(
                    format!("{what} running mean"),
                    &values(ours_bn.running_mean.value_sync()),
                    &values(burns_bn.running_mean.value_sync()),
                    tolerance(&values(burns_bn.running_mean.value_sync())),
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "the residual's shape is not the input's")]
fn a_residual_of_another_shape_is_refused() {
    let device = Default::default();
    let bn = BatchNormConfig::new(2).init::<B>(&device);
    let x = Tensor::<B, 4>::ones([2, 2, 3, 3], &device);
    // Broadcastable, but its gradient would be the output's shape.
    let residual = Tensor::<B, 4>::ones([1, 2, 3, 3], &device);
    batch_norm_activation_train(&bn, x, Some(residual), Activation::Relu);
}
