//! [`BatchNormBackend`] on burn's Flex (f32): per-channel statistics in parallel, one write pass;
//! the residual and activation of [`BatchNormBackend::batch_norm_activation_train_op`] in that pass.

use crate::shape::dims4;
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::{DType, Shape, TensorData, TensorMetadata};
use rayon::prelude::*;

use super::{
    batch_norm_activation_backward_with_tensor_ops, batch_norm_activation_forward_with_tensor_ops,
    batch_norm_backward_with_tensor_ops, batch_norm_forward_with_tensor_ops,
    BatchNormActivationGrads, BatchNormBackend, BatchNormGrads, BatchNormOutput,
};
use crate::buffer::{contiguous, par_fill_pieces};
use crate::conv::Activation;
impl BatchNormBackend for Flex {
    fn batch_norm_train_op(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> BatchNormOutput<Flex> {
        if [&x, &gamma, &beta].iter().any(|t| t.dtype() != DType::F32) {
            return batch_norm_forward_with_tensor_ops::<Flex>(x, gamma, beta, epsilon);
        }
        forward(x, gamma, beta, epsilon, None, Activation::Identity)
    }

    fn batch_norm_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        output_grad: FlexTensor,
    ) -> BatchNormGrads<Flex> {
        let tensors = [&x, &gamma, &mean, &variance, &output_grad];
        if tensors.iter().any(|t| t.dtype() != DType::F32) {
            return batch_norm_backward_with_tensor_ops::<Flex>(
                x,
                gamma,
                mean,
                variance,
                epsilon,
                output_grad,
            );
        }
        let statistics = Statistics::new(gamma, mean, variance, epsilon);
        backward(x, &statistics, output_grad, None).norm
    }

    fn batch_norm_activation_train_op(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        residual: Option<FlexTensor>,
        activation: Activation,
    ) -> BatchNormOutput<Flex> {
        let tensors = [Some(&x), Some(&gamma), Some(&beta), residual.as_ref()];
        let same_shape = residual.as_ref().is_none_or(|r| r.shape() == x.shape());
        if !same_shape || tensors.iter().flatten().any(|t| t.dtype() != DType::F32) {
            return batch_norm_activation_forward_with_tensor_ops::<Flex>(
                x, gamma, beta, epsilon, residual, activation,
            );
        }
        forward(x, gamma, beta, epsilon, residual, activation)
    }

    fn batch_norm_activation_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        output: FlexTensor,
        activation: Activation,
        output_grad: FlexTensor,
    ) -> BatchNormActivationGrads<Flex> {
        let tensors = [&x, &gamma, &mean, &variance, &output, &output_grad];
        if tensors.iter().any(|t| t.dtype() != DType::F32) {
            return batch_norm_activation_backward_with_tensor_ops::<Flex>(
                x,
                gamma,
                mean,
                variance,
                epsilon,
                output,
                activation,
                output_grad,
            );
        }
        let statistics = Statistics::new(gamma, mean, variance, epsilon);
        let gated = (activation != Activation::Identity).then_some((output, activation));
        backward(x, &statistics, output_grad, gated)
    }
}

/// `activation((x - mean) / std * gamma + beta + residual)` with the batch statistics: two read
/// passes per channel (in parallel) for the statistics, one write pass.
fn forward(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
    residual: Option<FlexTensor>,
    activation: Activation,
) -> BatchNormOutput<Flex> {
    let (x, gamma, beta) = (contiguous(&x), gamma.to_contiguous(), beta.to_contiguous());
    let residual = residual.map(|r| contiguous(&r));
    let layout = ChannelLayout::of(&x.shape());
    let data: &[f32] = x.storage();
    let stats: Vec<(f64, f64)> = (0..layout.channels)
        .into_par_iter()
        .map(|c| {
            let mean = layout.sum(data, c, |v| v) / layout.count() as f64;
            let mean32 = mean as f32;
            let variance = layout.sum(data, c, |v| (v - mean32) * (v - mean32));
            (mean, variance / layout.count() as f64)
        })
        .collect();
    let (gamma, beta): (&[f32], &[f32]) = (gamma.storage(), beta.storage());
    // (x - mean) scale + beta: folding the mean into the shift would cancel when |mean| >> std.
    let affine: Vec<(f32, f32, f32)> = stats
        .iter()
        .enumerate()
        .map(|(c, &(mean, variance))| {
            let scale = f64::from(gamma[c]) / (variance + epsilon).sqrt();
            (mean as f32, scale as f32, beta[c])
        })
        .collect();
    let residual: Option<&[f32]> = residual.as_ref().map(|r| r.storage());
    // One loop per activation, so that each is a plain vectorisable map.
    let output = match activation {
        Activation::Identity => normalise(&layout, data, &affine, residual, |v| v),
        Activation::Relu => normalise(&layout, data, &affine, residual, |v| v.max(0.0)),
        Activation::Relu6 => normalise(&layout, data, &affine, residual, |v| v.clamp(0.0, 6.0)),
    };
    BatchNormOutput {
        output: FlexTensor::from_data(TensorData::new(output, x.shape())),
        mean: per_channel(stats.iter().map(|s| s.0 as f32).collect()),
        variance: per_channel(stats.iter().map(|s| s.1 as f32).collect()),
    }
}

/// The forward's write pass: `act((x - mean) scale + shift [+ residual])` per channel.
fn normalise(
    layout: &ChannelLayout,
    data: &[f32],
    affine: &[(f32, f32, f32)],
    residual: Option<&[f32]>,
    act: impl Fn(f32) -> f32 + Sync,
) -> Vec<f32> {
    layout
        .map_planes(|c, i, out| {
            let (mean, scale, shift) = affine[c];
            let x = &data[i..][..out.len()];
            match residual {
                Some(residual) => {
                    let residual = &residual[i..][..out.len()];
                    for ((o, &v), &r) in out.iter_mut().zip(x).zip(residual) {
                        *o = act((v - mean) * scale + shift + r);
                    }
                }
                None => {
                    for (o, &v) in out.iter_mut().zip(x) {
                        *o = act((v - mean) * scale + shift);
                    }
                }
            }
        })
        .0
}

/// The per-channel values the backward reads: gamma, the batch mean, `sqrt(var + eps)`.
struct Statistics {
    gamma: Vec<f32>,
    mean: Vec<f32>,
    std: Vec<f64>,
}

impl Statistics {
    fn new(gamma: FlexTensor, mean: FlexTensor, variance: FlexTensor, epsilon: f64) -> Self {
        let values = |t: FlexTensor| t.to_contiguous().storage::<f32>().to_vec();
        Self {
            gamma: values(gamma),
            mean: values(mean),
            std: values(variance)
                .iter()
                .map(|&v| (f64::from(v) + epsilon).sqrt())
                .collect(),
        }
    }
}

/// The gradients of [`forward`]: one read pass for the per-channel sums of `g` and `g (x -
/// mean)`, where `g` is `dY` or, with `gated` (the output and its activation), `dY` where the
/// activation passes it (written in that pass: the residual's gradient), then one write pass
/// for `dX`.
fn backward(
    x: FlexTensor,
    statistics: &Statistics,
    output_grad: FlexTensor,
    gated: Option<(FlexTensor, Activation)>,
) -> BatchNormActivationGrads<Flex> {
    let x = contiguous(&x);
    let output_grad = contiguous(&output_grad);
    let layout = ChannelLayout::of(&x.shape());
    let (data, dy): (&[f32], &[f32]) = (x.storage(), output_grad.storage());
    let Statistics { gamma, mean, std } = statistics;
    let (gated_grad, sums): (Option<Vec<f32>>, Vec<(f64, f64)>) = match gated {
        None => {
            let sums = (0..layout.channels)
                .into_par_iter()
                .map(|c| layout.sum_pair(data, dy, c, mean[c]))
                .collect();
            (None, sums)
        }
        Some((output, activation)) => {
            let output = contiguous(&output);
            let y: &[f32] = output.storage();
            let (g, plane_sums) = match activation {
                Activation::Relu6 => gate(&layout, data, dy, y, mean, |y| y > 0.0 && y < 6.0),
                _ => gate(&layout, data, dy, y, mean, |y| y > 0.0),
            };
            // Each channel's planes added in the order of the batch, as `sum_pair` adds them.
            let sums = (0..layout.channels)
                .map(|c| {
                    (0..layout.batch).fold((0.0, 0.0), |(a, b), n| {
                        let (pa, pb) = plane_sums[n * layout.channels + c];
                        (a + pa, b + pb)
                    })
                })
                .collect();
            (Some(g), sums)
        }
    };
    let count = layout.count() as f64;
    // dX = k_dy g + k_x (x - mean) + k_0 per channel. Centring x before the product (rather
    // than folding `-k_x mean` into k_0) avoids cancellation when |mean| >> std.
    let coefficients: Vec<(f32, f32, f32)> = sums
        .iter()
        .enumerate()
        .map(|(c, &(sum_g, sum_g_centered))| {
            let inv_std = 1.0 / std[c];
            let scale = f64::from(gamma[c]) * inv_std;
            let k_x = -scale * inv_std * inv_std * sum_g_centered / count;
            let k_0 = -scale * sum_g / count;
            (scale as f32, k_x as f32, k_0 as f32)
        })
        .collect();
    let g: &[f32] = gated_grad.as_deref().unwrap_or(dy);
    let (dx, _) = layout.map_planes(|c, i, out| {
        let (k_dy, k_x, k_0) = coefficients[c];
        let mean = mean[c];
        for ((o, &v), &g) in out.iter_mut().zip(&data[i..]).zip(&g[i..]) {
            *o = k_dy * g + k_x * (v - mean) + k_0;
        }
    });
    let d_gamma = sums
        .iter()
        .zip(std)
        .map(|(s, std)| (s.1 / std) as f32)
        .collect();
    let shape = x.shape();
    BatchNormActivationGrads {
        norm: BatchNormGrads {
            x: FlexTensor::from_data(TensorData::new(dx, shape.clone())),
            gamma: per_channel(d_gamma),
            beta: per_channel(sums.iter().map(|s| s.0 as f32).collect()),
        },
        sum: match gated_grad {
            Some(g) => FlexTensor::from_data(TensorData::new(g, shape)),
            None => output_grad,
        },
    }
}

/// `g = dY` where `passes(y)`, else 0, written plane by plane, with each plane's `(sum g, sum g
/// (x - mean))`.
fn gate(
    layout: &ChannelLayout,
    data: &[f32],
    dy: &[f32],
    y: &[f32],
    mean: &[f32],
    passes: impl Fn(f32) -> bool + Sync,
) -> (Vec<f32>, Vec<(f64, f64)>) {
    layout.map_planes(|c, i, out| {
        let len = out.len();
        for ((o, &d), &y) in out.iter_mut().zip(&dy[i..][..len]).zip(&y[i..][..len]) {
            *o = if passes(y) { d } else { 0.0 };
        }
        plane_sums(&data[i..][..len], out, mean[c])
    })
}

/// A `[C]` tensor of per-channel values.
fn per_channel(values: Vec<f32>) -> FlexTensor {
    let channels = values.len();
    FlexTensor::from_data(TensorData::new(values, Shape::new([channels])))
}

/// The `[N, C, H W]` view of a contiguous activation: channel `c` is the planes `n C + c`.
#[derive(Clone, Copy, Debug)]
struct ChannelLayout {
    batch: usize,
    channels: usize,
    plane: usize,
}

/// Lanes of the partial sums, so that the compiler vectorises the reductions (a single f32
/// accumulator would be one long dependency chain); each plane's lanes are added in f64.
const LANES: usize = 8;

impl ChannelLayout {
    fn of(shape: &Shape) -> Self {
        let [batch, channels, height, width] = dims4(shape);
        Self {
            batch,
            channels,
            plane: height * width,
        }
    }

    /// Values per channel, `N H W`.
    fn count(&self) -> usize {
        self.batch * self.plane
    }

    fn planes_of(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.batch).map(move |n| (n * self.channels + c) * self.plane)
    }

    /// `sum f(x)` over channel `c`.
    fn sum(&self, data: &[f32], c: usize, f: impl Fn(f32) -> f32) -> f64 {
        let mut total = 0.0f64;
        for start in self.planes_of(c) {
            let plane = &data[start..][..self.plane];
            let mut lanes = [0.0f32; LANES];
            let chunks = plane.chunks_exact(LANES);
            let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
            for chunk in chunks {
                for (lane, &v) in lanes.iter_mut().zip(chunk) {
                    *lane += f(v);
                }
            }
            total += lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + f64::from(rest);
        }
        total
    }

    /// `(sum dy, sum dy (x - mean))` over channel `c`, its planes in the order of the batch.
    fn sum_pair(&self, data: &[f32], dy: &[f32], c: usize, mean: f32) -> (f64, f64) {
        self.planes_of(c).fold((0.0, 0.0), |(a, b), start| {
            let x = &data[start..][..self.plane];
            let g = &dy[start..][..self.plane];
            let (pa, pb) = plane_sums(x, g, mean);
            (a + pa, b + pb)
        })
    }

    /// A new activation written plane by plane in parallel, `fill(channel, offset, plane)`,
    /// with what `fill` returns for each plane, in order; each plane zeroed by the thread that
    /// fills it ([`par_fill_pieces`]).
    fn map_planes<T: Send>(
        &self,
        fill: impl Fn(usize, usize, &mut [f32]) -> T + Sync + Send,
    ) -> (Vec<f32>, Vec<T>) {
        let len = self.batch * self.channels * self.plane;
        par_fill_pieces(
            len,
            self.plane,
            || (),
            |_, p, plane| fill(p % self.channels, p * self.plane, plane),
        )
    }
}

/// `(sum g, sum g (x - mean))` over one plane, in [`LANES`] partial sums added in f64.
fn plane_sums(x: &[f32], g: &[f32], mean: f32) -> (f64, f64) {
    let (mut total_g, mut total_centered) = (0.0f64, 0.0f64);
    let (mut lanes_g, mut lanes_centered) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (x_chunks, g_chunks) = (x.chunks_exact(LANES), g.chunks_exact(LANES));
    for (&v, &d) in x_chunks.remainder().iter().zip(g_chunks.remainder()) {
        total_g += f64::from(d);
        total_centered += f64::from(d * (v - mean));
    }
    for (xs, gs) in x_chunks.zip(g_chunks) {
        for k in 0..LANES {
            lanes_g[k] += gs[k];
            lanes_centered[k] += gs[k] * (xs[k] - mean);
        }
    }
    total_g += lanes_g.iter().map(|&l| f64::from(l)).sum::<f64>();
    total_centered += lanes_centered.iter().map(|&l| f64::from(l)).sum::<f64>();
    (total_g, total_centered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Values uniform in `mean ± spread` from a seeded generator (burn's global one is shared by
    /// the tests running in parallel).
    fn uniform(rng: &mut ChaCha8Rng, shape: &[usize], mean: f32, spread: f32) -> FlexTensor {
        let len = shape.iter().product();
        let values: Vec<f32> = (0..len)
            .map(|_| mean + spread * rng.random_range(-1.0..1.0f32))
            .collect();
        FlexTensor::from_data(TensorData::new(values, Shape::from(shape.to_vec())))
    }

    /// `a` equals `b` in shape, and in value to 1e-5 of `b`'s largest magnitude (at least 1).
    fn assert_close(what: &str, a: FlexTensor, b: FlexTensor) {
        let (a, b) = (a.into_data(), b.into_data());
        assert_eq!(a.shape, b.shape, "{what}");
        let scale = b.iter::<f32>().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter::<f32>()
            .zip(b.iter::<f32>())
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-5 * scale.max(1.0),
            "{what}: off by {worst} at a scale of {scale}"
        );
    }

    /// Flex's f32 path against the tensor-ops path that wgpu and CUDA take, forward and
    /// backward, to 1e-5 of each output's largest magnitude (an element-wise relative bound is
    /// meaningless where dX cancels to ~0, e.g. two values per channel). (Both against burn's
    /// `BatchNorm`: `tests/ops/batch_norm.rs`.) The offset cases (|mean| = 40x the spread) are where
    /// the mean folded into a shift lost digits (case 5, off by: output 9.1e-6 folded, 0 centred;
    /// dX 1.4e-6 folded, 2.4e-7 centred).
    #[test]
    fn the_flex_path_equals_the_tensor_ops_path() {
        for (seed, [n, c, h, w], offset) in [
            (1, [3, 4, 5, 6], 0.7),
            (2, [4, 3, 1, 1], -0.3),
            (3, [1, 2, 9, 3], 2.0),
            (4, [2, 5, 7, 7], 40.0),
            (5, [8, 2, 3, 17], -40.0),
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let shape = [n, c, h, w];
            let x = uniform(&mut rng, &shape, offset, 1.0);
            let dy = uniform(&mut rng, &shape, 0.0, 1.0);
            let gamma = uniform(&mut rng, &[c], 1.0, 0.5);
            let beta = uniform(&mut rng, &[c], 0.0, 1.0);
            let eps = 1e-5;
            let fast = Flex::batch_norm_train_op(x.clone(), gamma.clone(), beta.clone(), eps);
            let slow =
                batch_norm_forward_with_tensor_ops::<Flex>(x.clone(), gamma.clone(), beta, eps);
            let close = |what: &str, a, b| assert_close(&format!("case {seed} {what}"), a, b);
            close("output", fast.output, slow.output);
            close("mean", fast.mean.clone(), slow.mean);
            close("variance", fast.variance.clone(), slow.variance);
            let fast = Flex::batch_norm_train_backward(
                x.clone(),
                gamma.clone(),
                fast.mean.clone(),
                fast.variance.clone(),
                eps,
                dy.clone(),
            );
            let recomputed = batch_norm_forward_with_tensor_ops::<Flex>(
                x.clone(),
                gamma.clone(),
                gamma.clone(),
                eps,
            );
            let slow = batch_norm_backward_with_tensor_ops::<Flex>(
                x,
                gamma,
                recomputed.mean,
                recomputed.variance,
                eps,
                dy,
            );
            close("dX", fast.x, slow.x);
            close("dgamma", fast.gamma, slow.gamma);
            close("dbeta", fast.beta, slow.beta);
        }
    }

    /// Flex's fused `activation(bn(x) + residual)` against the tensor-ops path (Flex's plain
    /// BatchNorm, then burn's add and activation; the activation's gradient by masks), forward
    /// and backward, for each activation with and without a residual. gamma and beta spread
    /// the normalised values over [-6, 12], so that both of ReLU6's bounds cut.
    #[test]
    fn the_fused_flex_path_equals_the_tensor_ops_path() {
        let close = |what: &str, a, b| assert_close(what, a, b);
        for (seed, [n, c, h, w]) in [(11, [3, 4, 5, 6]), (12, [2, 3, 1, 1]), (13, [4, 2, 9, 11])] {
            for activation in [Activation::Identity, Activation::Relu, Activation::Relu6] {
                for with_residual in [false, true] {
                    let what = format!("case {seed} {activation:?} residual {with_residual}");
                    let mut rng = ChaCha8Rng::seed_from_u64(seed);
                    let shape = [n, c, h, w];
                    let x = uniform(&mut rng, &shape, 0.3, 2.0);
                    let dy = uniform(&mut rng, &shape, 0.0, 1.0);
                    let gamma = uniform(&mut rng, &[c], 3.0, 1.0);
                    let beta = uniform(&mut rng, &[c], 3.0, 2.0);
                    let residual = with_residual.then(|| uniform(&mut rng, &shape, 0.0, 2.0));
                    let eps = 1e-5;
                    let fast = Flex::batch_norm_activation_train_op(
                        x.clone(),
                        gamma.clone(),
                        beta.clone(),
                        eps,
                        residual.clone(),
                        activation,
                    );
                    let slow = batch_norm_activation_forward_with_tensor_ops::<Flex>(
                        x.clone(),
                        gamma.clone(),
                        beta,
                        eps,
                        residual,
                        activation,
                    );
                    let cut = slow
                        .output
                        .clone()
                        .into_data()
                        .iter::<f32>()
                        .filter(|&v| v <= 0.0 || v >= 6.0)
                        .count();
                    if activation == Activation::Relu6 {
                        assert!(cut > 0, "{what}: no value cut");
                    }
                    close(
                        &format!("{what} output"),
                        fast.output.clone(),
                        slow.output.clone(),
                    );
                    let fast = Flex::batch_norm_activation_train_backward(
                        x.clone(),
                        gamma.clone(),
                        fast.mean,
                        fast.variance,
                        eps,
                        fast.output,
                        activation,
                        dy.clone(),
                    );
                    let slow = batch_norm_activation_backward_with_tensor_ops::<Flex>(
                        x,
                        gamma,
                        slow.mean,
                        slow.variance,
                        eps,
                        slow.output,
                        activation,
                        dy,
                    );
                    close(&format!("{what} dX"), fast.norm.x, slow.norm.x);
                    close(&format!("{what} dgamma"), fast.norm.gamma, slow.norm.gamma);
                    close(&format!("{what} dbeta"), fast.norm.beta, slow.norm.beta);
                    close(&format!("{what} residual grad"), fast.sum, slow.sum);
                }
            }
        }
    }
}
