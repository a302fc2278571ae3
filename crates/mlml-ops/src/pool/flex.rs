//! [`PoolBackend`] on burn's Flex (f32): each `(sample, channel)` plane in parallel.

use std::ops::Range;

use crate::buffer::par_fill_pieces;
use crate::shape::{dims4, for_each_strided, valid_range};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::ops::ModuleOps;
use burn::tensor::{DType, Shape, TensorData, TensorMetadata};
use rayon::prelude::*;

use super::{burns_argmax, burns_argmax_backward, MaxPoolOptions, PoolBackend};
impl PoolBackend for Flex {
    fn max_pool2d_tracked(x: FlexTensor, options: MaxPoolOptions) -> FlexTensor {
        if x.dtype() != DType::F32 {
            let o = options;
            return Flex::max_pool2d(x, o.kernel, o.stride, o.padding, o.dilation, o.ceil_mode);
        }
        max_pool_f32(&x, &options, false).0
    }

    fn max_pool2d_argmax(x: FlexTensor, options: MaxPoolOptions) -> (FlexTensor, FlexTensor) {
        if x.dtype() != DType::F32 {
            return burns_argmax::<Flex>(x, options);
        }
        let (output, indices) = max_pool_f32(&x, &options, true);
        (output, indices.expect("indices were asked for"))
    }

    fn max_pool2d_argmax_backward(
        x: FlexTensor,
        options: MaxPoolOptions,
        output_grad: FlexTensor,
        indices: FlexTensor,
    ) -> FlexTensor {
        if output_grad.dtype() != DType::F32 || indices.dtype() != DType::I64 {
            return burns_argmax_backward::<Flex>(x, options, output_grad, indices);
        }
        max_pool_backward_f32(&x.shape(), &output_grad, &indices)
    }
}

/// burn's pooled length of one axis (its `pool_output_size`).
fn pooled_len(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    ceil: bool,
) -> usize {
    let span = dilation * (kernel - 1) + 1;
    let padded = size + 2 * padding;
    if padded < span {
        return usize::from(ceil);
    }
    if ceil {
        (padded - span).div_ceil(stride) + 1
    } else {
        (padded - span) / stride + 1
    }
}

/// The sizes of one pooling.
#[derive(Clone, Copy, Debug)]
struct PoolGeometry {
    height: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
    options: MaxPoolOptions,
}

impl PoolGeometry {
    /// The small CNN's pooling, whose windows tile the image.
    fn is_plain_2x2(&self) -> bool {
        let o = &self.options;
        o.kernel == [2, 2]
            && o.stride == [2, 2]
            && o.padding == [0, 0]
            && o.dilation == [1, 1]
            && 2 * self.out_height <= self.height
            && 2 * self.out_width <= self.width
    }
}

/// Max pooling of contiguous f32 `x` `[N, C, H, W]`, with burn's argmax indices if asked.
fn max_pool_f32(
    x: &FlexTensor,
    options: &MaxPoolOptions,
    with_indices: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let x = x.to_contiguous();
    let [batch, channels, height, width] = dims4(&x.shape());
    let o = options;
    assert!(
        o.kernel
            .iter()
            .chain(&o.stride)
            .chain(&o.dilation)
            .all(|&v| v > 0),
        "max pooling: kernel, stride and dilation must be positive, got {o:?}"
    );
    let g = PoolGeometry {
        height,
        width,
        out_height: pooled_len(
            height,
            o.kernel[0],
            o.stride[0],
            o.padding[0],
            o.dilation[0],
            o.ceil_mode,
        ),
        out_width: pooled_len(
            width,
            o.kernel[1],
            o.stride[1],
            o.padding[1],
            o.dilation[1],
            o.ceil_mode,
        ),
        options: *o,
    };
    let plane = height * width;
    let out_plane = g.out_height * g.out_width;
    let shape = Shape::new([batch, channels, g.out_height, g.out_width]);
    let src: &[f32] = x.storage();
    let len = batch * channels * out_plane;
    let mut output = vec![f32::NEG_INFINITY; len];
    if out_plane == 0 || plane == 0 {
        let indices = with_indices.then(|| int_tensor(vec![-1; len], shape.clone()));
        return (
            FlexTensor::from_data(TensorData::new(output, shape)),
            indices,
        );
    }
    let planes = output.par_chunks_mut(out_plane).enumerate();
    let indices = if with_indices {
        let mut indices = vec![-1i64; len];
        planes
            .zip(indices.par_chunks_mut(out_plane))
            .for_each(|((p, out), best)| pool_plane(&g, &src[p * plane..][..plane], out, best));
        Some(int_tensor(indices, shape.clone()))
    } else {
        planes.for_each(|(p, out)| pool_plane_maxima(&g, &src[p * plane..][..plane], out));
        None
    };
    (
        FlexTensor::from_data(TensorData::new(output, shape)),
        indices,
    )
}

fn int_tensor(values: Vec<i64>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// One plane: `out` the maxima (filled with `-inf`), `best` their positions in `src` (filled
/// with -1 on entry, left -1 where a window holds no input).
fn pool_plane(g: &PoolGeometry, src: &[f32], out: &mut [f32], best: &mut [i64]) {
    let w = g.width;
    if g.is_plain_2x2() {
        // Selects rather than branches: which of the four wins is data-dependent, and the
        // mispredicted branches made this loop about 10 ns an output.
        for oh in 0..g.out_height {
            let start = 2 * oh * w;
            let (top, bottom) = (&src[start..][..w], &src[start + w..][..w]);
            let row = oh * g.out_width..(oh + 1) * g.out_width;
            for (ow, (out, best)) in out[row.clone()].iter_mut().zip(&mut best[row]).enumerate() {
                let c = 2 * ow;
                let (mut value, mut offset) = (top[c], 0);
                for (candidate, candidate_offset) in
                    [(top[c + 1], 1), (bottom[c], w), (bottom[c + 1], w + 1)]
                {
                    let wins = candidate > value;
                    value = if wins { candidate } else { value };
                    offset = if wins { candidate_offset } else { offset };
                }
                *out = value;
                *best = (start + c + offset) as i64;
            }
        }
        return;
    }
    let stride = g.options.stride[1];
    for_each_tap_run(g, |outputs, first| {
        for (k, index) in outputs.enumerate() {
            let position = first + k * stride;
            let value = src[position];
            if best[index] < 0 || value > out[index] {
                out[index] = value;
                best[index] = position as i64;
            }
        }
    });
}

/// For each kernel tap, in kernel order, and each output row where the tap reads inside the
/// image: `visit(outputs, first)`, the run's output positions in the plane and the input
/// position the first of them reads (the next ones a horizontal stride further each).
fn for_each_tap_run(g: &PoolGeometry, mut visit: impl FnMut(Range<usize>, usize)) {
    let (w, o) = (g.width, &g.options);
    for kh in 0..o.kernel[0] {
        let (oh_start, oh_end) = valid_range(
            g.out_height,
            g.height,
            kh,
            o.stride[0],
            o.padding[0],
            o.dilation[0],
        );
        for kw in 0..o.kernel[1] {
            let (ow_start, ow_end) =
                valid_range(g.out_width, w, kw, o.stride[1], o.padding[1], o.dilation[1]);
            if ow_start >= ow_end {
                continue;
            }
            for oh in oh_start..oh_end {
                let ih = oh * o.stride[0] + kh * o.dilation[0] - o.padding[0];
                let first = ih * w + ow_start * o.stride[1] + kw * o.dilation[1] - o.padding[1];
                let row = oh * g.out_width;
                visit(row + ow_start..row + ow_end, first);
            }
        }
    }
}

/// One plane's maxima without their positions (inference): `out` filled with `-inf` on entry.
/// A select per tap where [`pool_plane`] branches on where the maximum is, which is
/// data-dependent (ResNet-50's 3x3 / 2 pooling took 2.5 % of its inference that way). A NaN
/// in a window makes its maximum NaN, as in PyTorch (`pool_plane` keeps a NaN only when it is
/// the window's first value).
///
/// The plain 2x2 pooling reads its two input rows in pairs: the strided walk of each tap took
/// a fifth of the small CNN's inference.
fn pool_plane_maxima(g: &PoolGeometry, src: &[f32], out: &mut [f32]) {
    if g.is_plain_2x2() {
        let w = g.width;
        for (oh, out) in out.chunks_exact_mut(g.out_width).enumerate() {
            let start = 2 * oh * w;
            let (top, bottom) = (&src[start..][..w], &src[start + w..][..w]);
            for ((out, top), bottom) in out
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                *out = later_max(later_max(top[0], top[1]), later_max(bottom[0], bottom[1]));
            }
        }
        return;
    }
    let stride = g.options.stride[1];
    for_each_tap_run(g, |outputs, first| {
        for_each_strided(&mut out[outputs], &src[first..], stride, |out, value| {
            *out = later_max(*out, value);
        });
    });
}

/// The maximum so far, `kept`, against a later `value`: the later wins where it is greater or
/// NaN, so a NaN, once in, stays.
fn later_max(kept: f32, value: f32) -> f32 {
    if value > kept || value.is_nan() {
        value
    } else {
        kept
    }
}

/// `dX` of a max pooling: each output gradient added at its argmax, one plane per task, each
/// plane zeroed by the thread that scatters into it ([`par_fill_pieces`]; zeroed whole on one
/// thread first, the small CNN's 33 MB gradient of its first stage took twice as long).
fn max_pool_backward_f32(
    x_shape: &Shape,
    output_grad: &FlexTensor,
    indices: &FlexTensor,
) -> FlexTensor {
    let output_grad = output_grad.to_contiguous();
    let indices = indices.to_contiguous();
    let [batch, channels, height, width] = dims4(x_shape);
    let [_, _, out_height, out_width] = dims4(&output_grad.shape());
    let plane = height * width;
    let out_plane = out_height * out_width;
    let dy: &[f32] = output_grad.storage();
    let best: &[i64] = indices.storage();
    let (dx, _) = par_fill_pieces(
        batch * channels * plane,
        plane,
        || (),
        |_, p, dx| {
            let dy = &dy[p * out_plane..][..out_plane];
            let best = &best[p * out_plane..][..out_plane];
            for (&index, &grad) in best.iter().zip(dy) {
                if let Ok(index) = usize::try_from(index) {
                    dx[index] += grad;
                }
            }
        },
    );
    FlexTensor::from_data(TensorData::new(dx, x_shape.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::max_pool2d_forward;
    use burn::backend::Autodiff;
    use burn::tensor::Tensor;
    use burn::tensor::{Distribution, Tolerance};

    type AD = Autodiff<Flex>;

    /// Value, indices and input gradient equal burn's op, over kernels, strides, paddings,
    /// dilations, ceil mode and shapes whose windows do not tile the image.
    #[test]
    fn max_pooling_is_burns_in_value_and_gradient() {
        let device = Default::default();
        let cases = [
            ([2, 3, 8, 8], MaxPoolOptions::new(2, 2)),
            ([1, 2, 7, 9], MaxPoolOptions::new(2, 2)),
            (
                [2, 4, 11, 10],
                MaxPoolOptions {
                    padding: [1, 1],
                    ..MaxPoolOptions::new(3, 2)
                },
            ),
            (
                [1, 3, 9, 6],
                MaxPoolOptions {
                    kernel: [3, 2],
                    stride: [1, 2],
                    padding: [1, 0],
                    dilation: [2, 1],
                    ceil_mode: true,
                },
            ),
            (
                [2, 2, 5, 5],
                MaxPoolOptions {
                    ceil_mode: true,
                    ..MaxPoolOptions::new(2, 2)
                },
            ),
        ];
        for (shape, o) in cases {
            let values = Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            // Ties, which must resolve to the first tap as burn's do.
            let values = values.mul_scalar(2.0).round();
            let ours_x = Tensor::<AD, 4>::from_inner(values.clone()).require_grad();
            let burn_x = Tensor::<AD, 4>::from_inner(values.clone()).require_grad();
            let ours = max_pool2d_forward(ours_x.clone(), o);
            let theirs = burn::tensor::module::max_pool2d(
                burn_x.clone(),
                o.kernel,
                o.stride,
                o.padding,
                o.dilation,
                o.ceil_mode,
            );
            assert_eq!(ours.dims(), theirs.dims(), "{shape:?} {o:?}");
            ours.clone()
                .into_data()
                .assert_eq(&theirs.clone().into_data(), true);
            let weights =
                Tensor::<AD, 4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
            let ours_grad = (ours * weights.clone()).sum().backward();
            let theirs_grad = (theirs * weights).sum().backward();
            ours_x
                .grad(&ours_grad)
                .expect("a gradient")
                .into_data()
                .assert_approx_eq::<f32>(
                    &burn_x.grad(&theirs_grad).expect("a gradient").into_data(),
                    Tolerance::absolute(1e-6),
                );

            let plain = max_pool2d_forward(values.clone(), o);
            let pooled = Flex::max_pool2d_with_indices(
                values.clone().into_primitive().tensor(),
                o.kernel,
                o.stride,
                o.padding,
                o.dilation,
                o.ceil_mode,
            );
            plain
                .into_data()
                .assert_eq(&pooled.output.into_data(), true);
            let (_, indices) = Flex::max_pool2d_argmax(values.into_primitive().tensor(), o);
            assert_eq!(
                indices.into_data().to_vec::<i64>().unwrap(),
                pooled.indices.into_data().to_vec::<i64>().unwrap(),
                "{shape:?} {o:?}"
            );
        }
    }

    /// Inference's maxima carry a NaN in any tap of a window, and only into that window's output.
    #[test]
    fn a_nan_in_a_window_makes_its_maximum_nan() {
        let device = Default::default();
        // One plane of 4 x 4 with a NaN at (1, 2); 3x3 windows, stride 2, padding 1: outputs
        // (0, 1) and (1, 1) cover it, (0, 0) and (1, 0) do not.
        let mut values: Vec<f32> = (0..16).map(|v| v as f32).collect();
        values[6] = f32::NAN;
        let x = Tensor::<Flex, 4>::from_data(TensorData::new(values, [1, 1, 4, 4]), &device);
        let options = MaxPoolOptions {
            padding: [1, 1],
            ..MaxPoolOptions::new(3, 2)
        };
        let pooled = max_pool2d_forward(x, options)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(pooled.len(), 4);
        assert_eq!([pooled[0], pooled[2]], [5.0, 13.0]);
        assert!(pooled[1].is_nan() && pooled[3].is_nan(), "{pooled:?}");

        // The plain 2x2 pooling's own path: NaN in each tap position of a window in turn.
        for position in [0, 1, 4, 5] {
            let mut values: Vec<f32> = (0..16).map(|v| v as f32).collect();
            values[position] = f32::NAN;
            let x = Tensor::<Flex, 4>::from_data(TensorData::new(values, [1, 1, 4, 4]), &device);
            let pooled = max_pool2d_forward(x, MaxPoolOptions::new(2, 2))
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            assert!(pooled[0].is_nan(), "NaN at {position}: {pooled:?}");
            assert_eq!(pooled[1..], [7.0, 13.0, 15.0], "NaN at {position}");
        }
    }
}
