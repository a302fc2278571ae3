//! [`ConvBackend`] on burn's Flex (CPU, f32): the forward as im2col and one GEMM per chunk of
//! samples (1x1 stride-1 layers straight into the output; a depthwise layer directly, tap by
//! tap, per output plane; a wide 3x3 stride-1 layer as Winograd's F(4x4, 3x3), [`winograd`]),
//! the weight gradient accumulated in place per chunk (a depthwise layer's as per-tap dot
//! products; Winograd's for a wide 3x3 stride-1 layer), the input gradient as `W^T dY` and a parallel col2im (a direct scatter through
//! the taps of a depthwise layer; Winograd's transform for a wide 3x3 stride-1 layer), the
//! inference epilogue in the output pass. Every GEMM writes into buffers of ours
//! ([`matmul_into`]). Other dtypes fall back to burn's ops.

use std::ops::Range;

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::ops::conv::calculate_conv_output_size;
use burn::tensor::ops::{ConvOptions, ModuleOps};
use burn::tensor::{DType, Shape, TensorData, TensorMetadata};
use rayon::prelude::*;

use super::{scaled_weight, unfused_conv2d, Activation, ConvBackend};
use crate::buffer::{par_fill_pieces, Piece, Scratch, Unwritten};
use crate::gemm::{self, matmul_into, MatRef};
use crate::shape::{dims4, for_each_strided, valid_range};

mod winograd;

/// The im2col matrix is built for a chunk of samples at a time, of about this many floats (4
/// MiB, so that it stays in cache between its writing and the GEMM's reading: measured 2-3x
/// faster than one matrix for the whole batch), but with at least [`MIN_GEMM_DEPTH`] columns so
/// that each GEMM stays deep enough to be efficient on small feature maps. The bound holds for
/// the chunk's other matrix too, as wide as the im2col matrix and one row per output channel
/// (the forward's product, the gathered output gradient): with more outputs than kernel rows,
/// that one is the larger (the weight gradients of Lite0's 1x1 16 -> 96 layer and of the small
/// CNN's 1 -> 32 layer took half the time with chunks sized by it).
const CHUNK_COLUMNS: usize = 1 << 20;

/// The least GEMM depth `n L` of a chunk (output positions times samples).
const MIN_GEMM_DEPTH: usize = 4096;

/// [`MIN_GEMM_DEPTH`] of the forward's GEMM, whose other side (the output channels) is already
/// wide: a sample at a time of a 56 x 56 map was 1.5x faster than two (`time_conv_parts`).
const MIN_FORWARD_GEMM_DEPTH: usize = 1024;

/// [`weight_grad_im2col`] runs its chunks side by side ([`weight_grad_side_by_side`]) from this
/// many on: balanced enough over a few threads, and a few partial products to sum.
const MIN_SIDE_BY_SIDE_CHUNKS: usize = 4;

/// Elements summed per rayon job when partial products are added up.
const SUM_PIECE: usize = 4096;

impl ConvBackend for Flex {
    fn conv2d_tracked(
        x: FlexTensor,
        weight: FlexTensor,
        bias: Option<FlexTensor>,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let affine = (None, bias.as_ref());
        let epilogue = (None, Activation::Identity);
        if depthwise_forward_applies(&x, &weight, bias.as_ref(), None, &options) {
            return depthwise_forward(&x, &weight, affine, &options, epilogue);
        }
        if !im2col_forward_applies(&x, &weight, bias.as_ref(), None, &options) {
            return Flex::conv2d(x, weight, bias, options);
        }
        if winograd::applies(&x.shape(), &weight.shape(), &options) {
            let weights = (winograd::Weights::Fresh, None);
            return winograd::forward(&x, &weight, affine, &options, epilogue, weights);
        }
        forward_im2col(&x, &weight, affine, &options, epilogue, None)
    }

    fn conv2d_fused(
        x: FlexTensor,
        weight: FlexTensor,
        (scale, bias): (Option<FlexTensor>, Option<FlexTensor>),
        options: ConvOptions<2>,
        residual: Option<FlexTensor>,
        activation: Activation,
    ) -> FlexTensor {
        // The scale joins the output pass; where that pass is not ours, it folds into the weight.
        let (weight, scale) = match scale {
            Some(scale) if !all_f32(&[&scale]) => {
                (scaled_weight::<Flex>(weight, Some(scale)), None)
            }
            scale => (weight, scale),
        };
        let affine = (scale.as_ref(), bias.as_ref());
        if depthwise_forward_applies(&x, &weight, bias.as_ref(), residual.as_ref(), &options) {
            let epilogue = (residual.as_ref(), activation);
            return depthwise_forward(&x, &weight, affine, &options, epilogue);
        }
        if !im2col_forward_applies(&x, &weight, bias.as_ref(), residual.as_ref(), &options) {
            let weight = scaled_weight::<Flex>(weight, scale);
            return unfused_conv2d::<Flex>(x, weight, bias, options, residual, activation);
        }
        if winograd::applies(&x.shape(), &weight.shape(), &options) {
            // Inference: the weights are the same at every call.
            let epilogue = (residual.as_ref(), activation);
            let weights = (winograd::Weights::Kept, None);
            return winograd::forward(&x, &weight, affine, &options, epilogue, weights);
        }
        forward_im2col(
            &x,
            &weight,
            affine,
            &options,
            (residual.as_ref(), activation),
            None,
        )
    }

    fn conv2d_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !all_f32(&[&x, &weight, &output_grad]) {
            return Flex::conv2d_x_backward(x, weight, output_grad, options);
        }
        if is_depthwise(&x.shape(), &weight.shape(), &options) {
            return depthwise_input_grad(&x.shape(), &weight, &output_grad, &options);
        }
        if options.groups != 1 {
            return Flex::conv2d_x_backward(x, weight, output_grad, options);
        }
        let [_, _, kernel_h, kernel_w] = dims4(&weight.shape());
        let pointwise =
            [kernel_h, kernel_w] == [1, 1] && options.stride == [1, 1] && options.padding == [0, 0];
        if pointwise {
            return pointwise_input_grad(&x.shape(), weight, output_grad);
        }
        if winograd::applies(&x.shape(), &weight.shape(), &options) {
            return winograd::input_grad(&x.shape(), &weight, &output_grad, &options, None);
        }
        input_grad_col2im(&x.shape(), &weight, &output_grad, &options, None)
    }

    fn conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if !all_f32(&[&x, &weight, &output_grad]) {
            return Flex::conv2d_weight_backward(x, weight, output_grad, options);
        }
        if is_depthwise(&x.shape(), &weight.shape(), &options) {
            return depthwise_weight_grad(&x, &weight.shape(), &output_grad, &options);
        }
        if winograd::applies(&x.shape(), &weight.shape(), &options) {
            return winograd::weight_grad(&x, &weight.shape(), &output_grad, &options, None);
        }
        weight_grad_im2col(&x, &weight.shape(), &output_grad, &options, None)
    }
}

/// `len` zeros, written by the calling thread: a fresh allocation's pages are first touched
/// here, not by several threads at once in the pass that fills it (faulting in pages from two
/// threads took ten times the depthwise scatter itself, 85 ms against 27 ms, on a 2-core machine).
fn zeroed(len: usize) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    buffer.resize(len, 0.0);
    buffer
}

/// The samples `0..batch` in consecutive chunks of `chunk` (at least 1; the last may be
/// shorter).
fn sample_chunks(batch: usize, chunk: usize) -> impl Iterator<Item = Range<usize>> {
    (0..batch)
        .step_by(chunk)
        .map(move |start| start..(start + chunk).min(batch))
}

/// Whether the convolution is depthwise: one filter per input channel, which takes its own
/// gradient kernels.
fn is_depthwise(x: &Shape, weight: &Shape, options: &ConvOptions<2>) -> bool {
    let [_, channels, _, _] = dims4(x);
    let [out_channels, per_group, _, _] = dims4(weight);
    options.groups == channels && out_channels == channels && per_group == 1
}

/// Whether the fast paths apply: they are written for f32 storage.
fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

/// The sizes of one convolution, read once from its tensors.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    out_height: usize,
    out_width: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

impl Geometry {
    fn new(x: &Shape, weight: &Shape, output_grad: &Shape, options: &ConvOptions<2>) -> Self {
        let [_, channels, height, width] = dims4(x);
        let [_, out_channels, out_height, out_width] = dims4(output_grad);
        let [_, _, kernel_h, kernel_w] = dims4(weight);
        Self {
            channels,
            height,
            width,
            out_channels,
            out_height,
            out_width,
            kernel: [kernel_h, kernel_w],
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
            groups: options.groups,
        }
    }

    /// Samples per im2col chunk of a batch: `chunk` if given, else sized by [`CHUNK_COLUMNS`]
    /// (the larger of the im2col matrix and the output channels' one) and `min_depth`
    /// ([`MIN_GEMM_DEPTH`] unless the caller knows better).
    fn samples_per_chunk(&self, batch: usize, chunk: Option<usize>, min_depth: usize) -> usize {
        let rows = (self.channels * self.kernel_len()).max(self.out_channels);
        let out_len = self.out_len();
        let chunk = chunk.unwrap_or_else(|| {
            let by_size = CHUNK_COLUMNS / (rows * out_len).max(1);
            let by_depth = min_depth.div_ceil(out_len.max(1));
            by_size.max(by_depth)
        });
        chunk.clamp(1, batch.max(1))
    }

    /// The output rows `[start, end)` where kernel row `kh` reads inside the image.
    fn tap_rows(&self, kh: usize) -> (usize, usize) {
        valid_range(
            self.out_height,
            self.height,
            kh,
            self.stride[0],
            self.padding[0],
            self.dilation[0],
        )
    }

    /// The output columns `[start, end)` where kernel column `kw` reads inside the image.
    fn tap_columns(&self, kw: usize) -> (usize, usize) {
        valid_range(
            self.out_width,
            self.width,
            kw,
            self.stride[1],
            self.padding[1],
            self.dilation[1],
        )
    }

    /// Where kernel tap `(kh, kw)` reads inside the image; `None` where it reads nothing.
    fn tap(&self, [kh, kw]: [usize; 2]) -> Option<Tap> {
        let (row_start, row_end) = self.tap_rows(kh);
        let (column_start, column_end) = self.tap_columns(kw);
        (row_start < row_end && column_start < column_end).then(|| Tap {
            kh,
            rows: row_start..row_end,
            columns: column_start..column_end,
            first_column: column_start * self.stride[1] + kw * self.dilation[1] - self.padding[1],
        })
    }

    fn out_len(&self) -> usize {
        self.out_height * self.out_width
    }

    fn kernel_len(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
}

/// The output positions where one kernel tap reads inside the image ([`Geometry::tap`]): the
/// same columns of every row in `rows`, the first of them reading input column `first_column`
/// (the next ones a horizontal stride further each).
struct Tap {
    kh: usize,
    rows: Range<usize>,
    columns: Range<usize>,
    first_column: usize,
}

impl Tap {
    /// Each output row the tap covers, with the input row it reads there: `(oh, ih)`.
    fn row_pairs<'a>(&'a self, g: &'a Geometry) -> impl Iterator<Item = (usize, usize)> + 'a {
        self.rows.clone().map(move |oh| {
            (
                oh,
                oh * g.stride[0] + self.kh * g.dilation[0] - g.padding[0],
            )
        })
    }

    /// The tap's positions in output row `oh`, as indices into an output plane.
    fn output_run(&self, g: &Geometry, oh: usize) -> Range<usize> {
        oh * g.out_width + self.columns.start..oh * g.out_width + self.columns.end
    }
}

/// `dst += factor * src`, element by element over `dst`'s length.
fn add_scaled(dst: &mut [f32], src: &[f32], factor: f32) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += factor * s;
    }
}

/// Whether [`forward_im2col`] computes this convolution: ungrouped (burn-flex's depthwise path is
/// already direct), f32, and a residual, if any, of the output's shape.
fn im2col_forward_applies(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    residual: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> bool {
    let optional = [bias, residual];
    if options.groups != 1
        || !all_f32(&[x, weight])
        || !all_f32(&optional.iter().flatten().copied().collect::<Vec<_>>())
    {
        return false;
    }
    residual.is_none_or(|residual| {
        residual.shape() == output_shape(&x.shape(), &weight.shape(), options)
    })
}

/// Whether [`depthwise_forward`] computes this convolution: depthwise, f32, and a residual, if
/// any, of the output's shape.
fn depthwise_forward_applies(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    residual: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> bool {
    let optional = [bias, residual];
    is_depthwise(&x.shape(), &weight.shape(), options)
        && all_f32(&[x, weight])
        && all_f32(&optional.iter().flatten().copied().collect::<Vec<_>>())
        && residual.is_none_or(|residual| {
            residual.shape() == output_shape(&x.shape(), &weight.shape(), options)
        })
}

/// `[N, O, H', W']` of a convolution.
fn output_shape(x: &Shape, weight: &Shape, options: &ConvOptions<2>) -> Shape {
    let [batch, _, height, width] = dims4(x);
    let [out_channels, _, kernel_h, kernel_w] = dims4(weight);
    let size = |axis: usize, kernel: usize, size: usize| {
        calculate_conv_output_size(
            kernel,
            options.stride[axis],
            options.padding[axis],
            options.dilation[axis],
            size,
        )
    };
    Shape::new([
        batch,
        out_channels,
        size(0, kernel_h, height),
        size(1, kernel_w, width),
    ])
}

/// `activation(conv2d(x, W, bias) + residual)` of an ungrouped f32 convolution on Flex, the bias,
/// residual and activation in one pass over each output plane while it is in cache.
///
/// A 1x1 stride-1 layer is a GEMM per sample straight into the output, `W [O, C] x x_n [C, L]`,
/// and the pass after it, in place. Any other layer, per chunk of `chunk` samples (by default
/// sized as in [`weight_grad_im2col`]): the im2col matrix `cols [C K, n L]`, one GEMM
/// `W [O, C K] x cols` spread over the threads ([`matmul_into`]) into the output when the chunk
/// is one sample, else into a product buffer that the pass lays out as `[n, O, L]`; both
/// buffers are kept from chunk to chunk. burn-flex's general convolution instead transposes
/// the whole input to NHWC and the weight on one thread, writes each tile's GEMM result
/// transposed and adds the bias in a pass of its own; its ReLU and residual add are two more
/// passes, each into a new tensor. (Not one batched GEMM over the chunk's samples: burn-flex
/// runs a batch of four or more as one single-threaded GEMM per sample, measured 3x slower than
/// a threaded GEMM per sample on a 1x1 64 -> 256 layer at 56 x 56, batch 8.)
fn forward_im2col(
    x: &FlexTensor,
    weight: &FlexTensor,
    (scale, bias): (Option<&FlexTensor>, Option<&FlexTensor>),
    options: &ConvOptions<2>,
    (residual, activation): (Option<&FlexTensor>, Activation),
    chunk: Option<usize>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let out_shape = output_shape(&x.shape(), &weight.shape(), options);
    let g = Geometry::new(&x.shape(), &weight.shape(), &out_shape, options);
    let (batch, channels, out_channels) = (out_shape[0], g.channels, g.out_channels);
    let rows = channels * g.kernel_len();
    let out_len = g.out_len();
    let sample_len = out_channels * out_len;
    let pointwise = g.kernel == [1, 1] && g.stride == [1, 1] && g.padding == [0, 0];
    if batch * sample_len == 0 || rows == 0 {
        let weight = scaled_weight::<Flex>(weight.clone(), scale.cloned());
        return Flex::conv2d(x, weight, bias.cloned(), options.clone());
    }
    let tensors = EpilogueTensors::new(scale, bias, residual);
    let epilogue = tensors.epilogue(activation, out_channels, out_len);
    let weight = weight.to_contiguous();
    let weight = MatRef::row_major(weight.storage(), out_channels, rows);
    let x_data: &[f32] = x.storage();
    if pointwise {
        // out_n [O, L] = W [O, C] x x_n [C, L], straight into the output.
        let mut output = Unwritten::new(batch, sample_len);
        let work = out_channels * rows * out_len;
        for_each_sample(&mut output, batch, work, |n, out| {
            let x_n = MatRef::row_major(&x_data[n * channels * out_len..], channels, out_len);
            out.product(weight, x_n);
        });
        let mut output = output.finish();
        epilogue.apply(0, &mut output);
        return FlexTensor::from_data(TensorData::new(output, out_shape));
    }
    let chunk = g.samples_per_chunk(batch, chunk, MIN_FORWARD_GEMM_DEPTH);
    let stride = chunk * out_len;
    let mut columns = Scratch::take(rows * stride);
    // A chunk of one sample multiplies straight into the output, a piece per sample; a longer
    // one into `product`, which the epilogue lays out as `[n, O, L]`, a piece per plane.
    let mut product = Scratch::take(if chunk > 1 { out_channels * stride } else { 0 });
    let mut output = match chunk {
        1 => Unwritten::new(batch, sample_len),
        _ => Unwritten::new(batch * out_channels, out_len),
    };
    for samples in sample_chunks(batch, chunk) {
        let len = samples.len() * out_len;
        columns
            .par_chunks_mut(stride)
            .enumerate()
            .for_each(|(row, out)| im2col_row(&g, x_data, samples.clone(), row, &mut out[..len]));
        let columns = MatRef::strided(&columns, [rows, len], [stride, 1], 0);
        if chunk == 1 {
            let [piece] = <[Piece; 1]>::try_from(output.pieces(samples.clone()))
                .unwrap_or_else(|_| unreachable!("a chunk of one sample is one piece"));
            let out = piece.product(weight, columns);
            epilogue.apply(samples.start, out);
        } else {
            matmul_into(&mut product, stride, weight, columns, false);
            let planes = samples.start * out_channels..samples.end * out_channels;
            let pieces = output.pieces(planes.clone());
            epilogue.lay_out(planes, pieces, (&product, stride));
        }
    }
    FlexTensor::from_data(TensorData::new(output.finish(), out_shape))
}

/// What [`forward_im2col`] applies to every output plane: `activation(value * scale + bias +
/// residual)`.
struct Epilogue<'a> {
    /// `[O]` (none: 1).
    scale: Option<&'a [f32]>,
    /// `[O]`.
    bias: Option<&'a [f32]>,
    /// The whole `[N, O, L]` residual.
    residual: Option<&'a [f32]>,
    activation: Activation,
    out_channels: usize,
    out_len: usize,
}

/// The scale, bias and residual of an [`Epilogue`], made contiguous and kept while it borrows
/// them.
struct EpilogueTensors {
    scale: Option<FlexTensor>,
    bias: Option<FlexTensor>,
    residual: Option<FlexTensor>,
}

impl EpilogueTensors {
    fn new(
        scale: Option<&FlexTensor>,
        bias: Option<&FlexTensor>,
        residual: Option<&FlexTensor>,
    ) -> Self {
        Self {
            scale: scale.map(|scale| scale.to_contiguous()),
            bias: bias.map(|bias| bias.to_contiguous()),
            residual: residual.map(|residual| residual.to_contiguous()),
        }
    }

    /// The epilogue of an output of `out_channels` planes of `out_len` values per sample.
    fn epilogue(
        &self,
        activation: Activation,
        out_channels: usize,
        out_len: usize,
    ) -> Epilogue<'_> {
        Epilogue {
            scale: self.scale.as_ref().map(|scale| scale.storage()),
            bias: self.bias.as_ref().map(|bias| bias.storage()),
            residual: self.residual.as_ref().map(|residual| residual.storage()),
            activation,
            out_channels,
            out_len,
        }
    }
}

impl Epilogue<'_> {
    /// No bias, no residual, no activation: the output as the GEMM left it.
    fn identity(out_channels: usize, out_len: usize) -> Self {
        Epilogue {
            scale: None,
            bias: None,
            residual: None,
            activation: Activation::Identity,
            out_channels,
            out_len,
        }
    }

    fn is_identity(&self) -> bool {
        self.scale.is_none()
            && self.bias.is_none()
            && self.residual.is_none()
            && self.activation == Activation::Identity
    }

    /// In place on `out`, the planes of the samples from `first` on, plane by plane in parallel;
    /// no pass when the epilogue is the identity.
    fn apply(&self, first: usize, out: &mut [f32]) {
        if self.is_identity() {
            return;
        }
        let out_channels = self.out_channels;
        out.par_chunks_mut(self.out_len)
            .enumerate()
            .for_each(|(plane, out)| self.apply_to_plane(first * out_channels + plane, out));
    }

    /// Output planes `planes` (counted over the whole `[N, O]`), one piece each, copied from
    /// `product` (`[O, n L]` with rows `stride` apart, the first plane's sample at columns
    /// `0..L`), then the epilogue on each, plane by plane in parallel.
    fn lay_out(
        &self,
        planes: Range<usize>,
        pieces: Vec<Piece<'_>>,
        (product, stride): (&[f32], usize),
    ) {
        let (out_len, out_channels) = (self.out_len, self.out_channels);
        let first_sample = planes.start / out_channels;
        pieces
            .into_par_iter()
            .zip(planes)
            .for_each(|(piece, plane)| {
                let (i, o) = (plane / out_channels - first_sample, plane % out_channels);
                let out = piece.copy_of(&product[o * stride + i * out_len..][..out_len]);
                self.apply_to_plane(plane, out);
            });
    }

    /// In place on one output plane, `plane` counted over the whole `[N, O]`; no pass when the
    /// epilogue is the identity.
    fn apply_to_plane(&self, plane: usize, out: &mut [f32]) {
        if self.is_identity() {
            return;
        }
        let channel = plane % self.out_channels;
        let shift = self.bias.map_or(0.0, |bias| bias[channel]);
        let activation = self.activation;
        let residual = self
            .residual
            .map(|residual| &residual[plane * self.out_len..][..self.out_len]);
        // One loop per case, so that each is a plain vectorisable map.
        match (self.scale, residual) {
            (Some(scale), Some(residual)) => {
                let scale = scale[channel];
                for (value, &r) in out.iter_mut().zip(residual) {
                    *value = activation.of(*value * scale + shift + r);
                }
            }
            (Some(scale), None) => {
                let scale = scale[channel];
                for value in out.iter_mut() {
                    *value = activation.of(*value * scale + shift);
                }
            }
            (None, Some(residual)) => {
                for (value, &r) in out.iter_mut().zip(residual) {
                    *value = activation.of(*value + shift + r);
                }
            }
            (None, None) => {
                for value in out.iter_mut() {
                    *value = activation.of(*value + shift);
                }
            }
        }
    }
}

/// `dW` of a convolution on Flex: for each chunk of samples, the im2col matrix `cols [C K, n L]`
/// of the input and the output gradient laid out as `[O, n L]` (a chunk of one sample reads
/// it where it is), then `dW += dY x cols^T` in place (per group, the groups in parallel), over
/// the chunks of `chunk` samples (by default sized by [`CHUNK_COLUMNS`] and [`MIN_GEMM_DEPTH`]).
/// The two buffers are allocated once and refilled for every chunk.
fn weight_grad_im2col(
    x: &FlexTensor,
    weight_shape: &Shape,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
    chunk: Option<usize>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let output_grad = output_grad.to_contiguous();
    let g = Geometry::new(&x.shape(), weight_shape, &output_grad.shape(), options);
    let (batch, out_channels) = (x.shape()[0], g.out_channels);
    let x_data: &[f32] = x.storage();
    let dy_data: &[f32] = output_grad.storage();
    let rows = g.channels * g.kernel_len();
    let out_len = g.out_len();
    let groups = g.groups.max(1);
    let (group_rows, group_outputs) = (rows / groups, out_channels / groups);
    let chunk = g.samples_per_chunk(batch, chunk, MIN_GEMM_DEPTH);
    let stride = chunk * out_len;

    // gemm packs the operand that spans the output's columns on its calling thread, transposing
    // it: the output gradient when the product is dW^T `[C K, O]` (per group), the im2col matrix
    // when it is dW `[O, C K]`. The smaller is packed, and dW^T transposed at the end.
    let transposed = group_outputs < group_rows;
    let chunks = sample_chunks(batch, chunk).count();
    if groups == 1 && chunks >= MIN_SIDE_BY_SIDE_CHUNKS && rows * out_len * out_channels > 0 {
        let product = weight_grad_side_by_side(&g, x_data, dy_data, batch, chunks, transposed);
        return weight_grad_tensor(product, weight_shape, transposed, group_outputs, group_rows);
    }
    let mut product = vec![0.0f32; out_channels * group_rows];
    let mut columns = Scratch::take(rows * stride);
    let mut gathered = Scratch::take(if chunk > 1 { out_channels * stride } else { 0 });
    for samples in sample_chunks(batch, chunk) {
        let accumulate = samples.start > 0;
        let len = samples.len() * out_len;
        // The last chunk may be shorter: its matrices are the leading `len` columns.
        columns
            .par_chunks_mut(stride)
            .enumerate()
            .for_each(|(row, out)| im2col_row(&g, x_data, samples.clone(), row, &mut out[..len]));
        let dy_t = chunk_output_grad(&g, dy_data, samples.clone(), stride, &mut gathered).t();
        let columns = MatRef::strided(&columns, [rows, len], [stride, 1], 0);
        product
            .par_chunks_mut(group_outputs * group_rows)
            .enumerate()
            .for_each(|(group, product)| {
                let columns = columns.rows(group * group_rows, group_rows);
                let dy_t = dy_t.cols(group * group_outputs, group_outputs);
                if transposed {
                    matmul_into(product, group_outputs, columns, dy_t, accumulate);
                } else {
                    matmul_into(product, group_rows, dy_t.t(), columns.t(), accumulate);
                }
            });
    }
    weight_grad_tensor(product, weight_shape, transposed, group_outputs, group_rows)
}

/// The weight gradient's tensor from the product of [`weight_grad_im2col`]: as it is, or
/// transposed back group by group from dW^T.
fn weight_grad_tensor(
    product: Vec<f32>,
    weight_shape: &Shape,
    transposed: bool,
    group_outputs: usize,
    group_rows: usize,
) -> FlexTensor {
    if !transposed {
        return FlexTensor::from_data(TensorData::new(product, weight_shape.clone()));
    }
    let mut dw = vec![0.0f32; product.len()];
    dw.par_chunks_mut(group_outputs * group_rows)
        .zip(product.par_chunks(group_outputs * group_rows))
        .for_each(|(dw, dw_t)| {
            for (o, dw) in dw.chunks_mut(group_rows).enumerate() {
                for (r, value) in dw.iter_mut().enumerate() {
                    *value = dw_t[r * group_outputs + o];
                }
            }
        });
    FlexTensor::from_data(TensorData::new(dw, weight_shape.clone()))
}

/// [`weight_grad_im2col`]'s product (one group) with its chunks side by side: `chunks`
/// near-equal chunks of the batch, each whole on one of rayon's threads (its im2col matrix, its
/// gathered output gradient and its GEMM), into a partial product of its own; the partials are
/// then summed in chunk order, so the sum does not depend on the thread count. The product of
/// one chunk is small beside its depth (64 x 288 from 4,096 positions in the small CNN), so
/// one GEMM spread over the threads kept them waiting: 2.5x slower on 32 -> 64 @ 32, batch 64.
fn weight_grad_side_by_side(
    g: &Geometry,
    x: &[f32],
    dy: &[f32],
    batch: usize,
    chunks: usize,
    transposed: bool,
) -> Vec<f32> {
    let rows = g.channels * g.kernel_len();
    let out_len = g.out_len();
    let partial_len = g.out_channels * rows;
    let mut partials = vec![0.0f32; chunks * partial_len];
    partials
        .par_chunks_mut(partial_len)
        .enumerate()
        .for_each(|(i, partial)| {
            let samples = (batch * i / chunks)..(batch * (i + 1) / chunks);
            let len = samples.len() * out_len;
            let mut columns = Scratch::take(rows * len);
            for (row, out) in columns.chunks_mut(len).enumerate() {
                im2col_row(g, x, samples.clone(), row, out);
            }
            let mut gathered = Scratch::take(g.out_channels * len);
            for (o, out) in gathered.chunks_mut(len).enumerate() {
                gather_channel(g, dy, samples.clone(), o, out);
            }
            let columns = MatRef::row_major(&columns, rows, len);
            let dy_t = MatRef::row_major(&gathered, g.out_channels, len).t();
            if transposed {
                gemm::matmul_into_serial(partial, g.out_channels, columns, dy_t, false);
            } else {
                gemm::matmul_into_serial(partial, rows, dy_t.t(), columns.t(), false);
            }
        });
    let (first, rest) = partials.split_at_mut(partial_len);
    first
        .par_chunks_mut(SUM_PIECE)
        .enumerate()
        .for_each(|(piece, sum)| {
            for partial in rest.chunks(partial_len) {
                add_scaled(sum, &partial[piece * SUM_PIECE..][..sum.len()], 1.0);
            }
        });
    partials.truncate(partial_len);
    partials
}

/// The output gradient of `samples` as an `[O, n L]` matrix: where it lies for a single sample,
/// else gathered into the leading columns of `gathered` (`[O, stride]`, empty when chunks are
/// single samples).
fn chunk_output_grad<'a>(
    g: &Geometry,
    dy: &'a [f32],
    samples: std::ops::Range<usize>,
    stride: usize,
    gathered: &'a mut [f32],
) -> MatRef<'a> {
    let out_len = g.out_len();
    if samples.len() == 1 && gathered.is_empty() {
        let sample = &dy[samples.start * g.out_channels * out_len..];
        return MatRef::row_major(sample, g.out_channels, out_len);
    }
    let len = samples.len() * out_len;
    gather_output_grad(g, dy, samples, stride, gathered);
    MatRef::strided(gathered, [g.out_channels, len], [stride, 1], 0)
}

/// The output gradient of `samples` laid out as `[O, n L]` in the leading columns of
/// `gathered` (`[O, stride]`).
fn gather_output_grad(
    g: &Geometry,
    dy: &[f32],
    samples: std::ops::Range<usize>,
    stride: usize,
    gathered: &mut [f32],
) {
    gathered
        .par_chunks_mut(stride)
        .enumerate()
        .for_each(|(o, out)| gather_channel(g, dy, samples.clone(), o, out));
}

/// Output channel `o` of `dY` for `samples`, their planes one after another at the start of
/// `out`.
fn gather_channel(g: &Geometry, dy: &[f32], samples: Range<usize>, o: usize, out: &mut [f32]) {
    let out_len = g.out_len();
    for (i, n) in samples.enumerate() {
        let from = (n * g.out_channels + o) * out_len;
        out[i * out_len..][..out_len].copy_from_slice(&dy[from..][..out_len]);
    }
}

/// `f(n, piece)` for every sample's piece of `output` (one piece per sample): the samples on
/// rayon's threads when there are as many as threads or a sample's GEMM of `work`
/// multiply-adds runs on one thread anyway ([`matmul_into`]'s threshold), else one sample after
/// another, each GEMM spread over the threads. (Whole GEMMs per thread were 1.5x faster on a 1x1
/// layer of 16 input channels at 112 x 112, batch 8, `time_conv_parts`.)
fn for_each_sample(
    output: &mut Unwritten,
    samples: usize,
    work: usize,
    f: impl Fn(usize, Piece<'_>) + Sync,
) {
    let pieces = output.pieces(0..samples);
    if work < gemm::PARALLEL_WORK || samples >= rayon::current_num_threads() {
        pieces
            .into_par_iter()
            .enumerate()
            .for_each(|(n, piece)| f(n, piece));
    } else {
        for (n, piece) in pieces.into_iter().enumerate() {
            f(n, piece);
        }
    }
}

/// Row `row = (c, kh, kw)` of the im2col matrix over `samples`, every element written: for every
/// sample and output position, the input value the kernel tap `(kh, kw)` of channel `c` reads
/// there, zero in the padding.
fn im2col_row(
    g: &Geometry,
    x: &[f32],
    samples: std::ops::Range<usize>,
    row: usize,
    out: &mut [f32],
) {
    let channel = row / g.kernel_len();
    let tap = row % g.kernel_len();
    let (kh, kw) = (tap / g.kernel[1], tap % g.kernel[1]);
    let (ow_start, ow_end) = g.tap_columns(kw);
    let [stride_h, stride_w] = g.stride;
    let plane = g.height * g.width;
    for (i, n) in samples.enumerate() {
        let image = &x[(n * g.channels + channel) * plane..][..plane];
        for oh in 0..g.out_height {
            let dst = &mut out[(i * g.out_height + oh) * g.out_width..][..g.out_width];
            let ih = (oh * stride_h + kh * g.dilation[0]) as isize - g.padding[0] as isize;
            if ih < 0 || ih >= g.height as isize || ow_start >= ow_end {
                dst.fill(0.0);
                continue;
            }
            dst[..ow_start].fill(0.0);
            dst[ow_end..].fill(0.0);
            let src = &image[ih as usize * g.width..][..g.width];
            let first = ow_start * stride_w + kw * g.dilation[1] - g.padding[1];
            let inside = &mut dst[ow_start..ow_end];
            if stride_w == 1 {
                inside.copy_from_slice(&src[first..first + inside.len()]);
            } else {
                for_each_strided(inside, &src[first..], stride_w, |value, x| *value = x);
            }
        }
    }
}

/// `dX` of a 1x1, stride-1, unpadded convolution: `dX_n [C, H W] = W^T [C, O] x dY_n [O, H W]`
/// for every sample, straight into `dX` (no im2col, no col2im).
fn pointwise_input_grad(
    x_shape: &Shape,
    weight: FlexTensor,
    output_grad: FlexTensor,
) -> FlexTensor {
    let [batch, channels, height, width] = dims4(x_shape);
    let out_channels = weight.shape()[0];
    let plane = height * width;
    let weight = weight.to_contiguous();
    let output_grad = output_grad.to_contiguous();
    let weight_t = MatRef::row_major(weight.storage(), out_channels, channels).t();
    let dy: &[f32] = output_grad.storage();
    let mut dx = Unwritten::new(batch, channels * plane);
    let work = channels * out_channels * plane;
    for_each_sample(&mut dx, batch, work, |n, dx| {
        let dy_n = MatRef::row_major(&dy[n * out_channels * plane..], out_channels, plane);
        dx.product(weight_t, dy_n);
    });
    FlexTensor::from_data(TensorData::new(dx.finish(), x_shape.clone()))
}

/// `dX` of an ungrouped convolution on Flex: for each chunk of samples (sized as in
/// [`weight_grad_im2col`]), the output gradient laid out as `[O, n L]` (a chunk of one sample
/// reads it where it is), one GEMM `cols [C K, n L] = W^T [C K, O] x dY [O, n L]`, then col2im:
/// every `(sample, channel)` plane of `dX` gathers its kernel taps' rows of `cols`, one plane
/// per task. burn-flex's transposed convolution does the same per sample with a
/// single-threaded, bounds-checked col2im.
fn input_grad_col2im(
    x_shape: &Shape,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
    chunk: Option<usize>,
) -> FlexTensor {
    let output_grad = output_grad.to_contiguous();
    let g = Geometry::new(x_shape, &weight.shape(), &output_grad.shape(), options);
    let (batch, channels, out_channels) = (x_shape[0], g.channels, g.out_channels);
    let rows = channels * g.kernel_len();
    let out_len = g.out_len();
    let plane = g.height * g.width;
    let mut dx = zeroed(batch * channels * plane);
    if out_len == 0 || plane == 0 || rows == 0 {
        return FlexTensor::from_data(TensorData::new(dx, x_shape.clone()));
    }
    let chunk = g.samples_per_chunk(batch, chunk, MIN_GEMM_DEPTH);
    let stride = chunk * out_len;
    let weight = weight.to_contiguous();
    let weight_t = MatRef::row_major(weight.storage(), out_channels, rows).t();
    let dy_data: &[f32] = output_grad.storage();
    let mut gathered = Scratch::take(if chunk > 1 { out_channels * stride } else { 0 });
    let mut columns = Scratch::take(rows * stride);
    for samples in sample_chunks(batch, chunk) {
        let dy = chunk_output_grad(&g, dy_data, samples.clone(), stride, &mut gathered);
        matmul_into(&mut columns, stride, weight_t, dy, false);
        let columns: &[f32] = &columns;
        let first = samples.start * channels * plane;
        dx[first..first + samples.len() * channels * plane]
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(index, dx)| {
                let (i, channel) = (index / channels, index % channels);
                col2im_plane(&g, columns, stride, i, channel, dx);
            });
    }
    FlexTensor::from_data(TensorData::new(dx, x_shape.clone()))
}

/// Adds into `dx`, the plane of `channel` of the chunk's sample `i`, every kernel tap's row of
/// `columns` (`[C K, n L]`, rows `stride` apart, sample `i` at columns `i L..(i + 1) L`).
fn col2im_plane(
    g: &Geometry,
    columns: &[f32],
    stride: usize,
    i: usize,
    channel: usize,
    dx: &mut [f32],
) {
    let out_len = g.out_len();
    for kh in 0..g.kernel[0] {
        for kw in 0..g.kernel[1] {
            let row = (channel * g.kernel[0] + kh) * g.kernel[1] + kw;
            let src = &columns[row * stride + i * out_len..][..out_len];
            scatter_tap(g, [kh, kw], 1.0, src, dx);
        }
    }
}

/// `dx[input position] += factor * src[output position]` over the output positions where
/// kernel tap `(kh, kw)` reads inside the image: `src` one output plane, `dx` one input plane.
fn scatter_tap(g: &Geometry, [kh, kw]: [usize; 2], factor: f32, src: &[f32], dx: &mut [f32]) {
    let Some(tap) = g.tap([kh, kw]) else {
        return;
    };
    let stride_w = g.stride[1];
    for (oh, ih) in tap.row_pairs(g) {
        let src = &src[tap.output_run(g, oh)];
        let dst = &mut dx[ih * g.width..][..g.width];
        if stride_w == 1 {
            add_scaled(&mut dst[tap.first_column..][..src.len()], src, factor);
        } else {
            for (k, s) in src.iter().enumerate() {
                dst[tap.first_column + k * stride_w] += factor * s;
            }
        }
    }
}

/// `activation(conv2d(x, W, bias) + residual)` of a depthwise convolution on Flex: each output
/// plane (in parallel, zeroed by its thread) sums its channel's kernel taps, each tap one
/// multiply-add over a padded copy of the input plane when the output rows are shorter than
/// [`SHORT_ROWS`] ([`padded_plane_taps`]), else a contiguous multiply-add of input rows into
/// output rows, through [`Phases`] of the input plane when the horizontal stride is above 1;
/// then the bias, residual and activation while the plane is in cache. burn-flex's depthwise
/// kernel walks a strided layer's rows element by element (the largest part of
/// EfficientNet-Lite0's inference in `perf`), and adds the bias, residual and activation in
/// passes of their own.
fn depthwise_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    (scale, bias): (Option<&FlexTensor>, Option<&FlexTensor>),
    options: &ConvOptions<2>,
    (residual, activation): (Option<&FlexTensor>, Activation),
) -> FlexTensor {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let out_shape = output_shape(&x.shape(), &weight.shape(), options);
    let g = Geometry::new(&x.shape(), &weight.shape(), &out_shape, options);
    let tensors = EpilogueTensors::new(scale, bias, residual);
    let epilogue = tensors.epilogue(activation, g.out_channels, g.out_len());
    let (x_data, weights): (&[f32], &[f32]) = (x.storage(), weight.storage());
    let plane = g.height * g.width;
    let taps_per_channel = g.kernel_len();
    let strided = g.stride[1] > 1;
    let short_rows = g.out_width < SHORT_ROWS;
    let (output, _) = par_fill_pieces(
        out_shape.num_elements(),
        g.out_len(),
        || {
            let phases = match strided && !short_rows {
                true => Phases::new(&g),
                false => Phases::default(),
            };
            (phases, Vec::new(), Vec::new())
        },
        |(phases, padded, sums), index, out| {
            let channel = index % g.channels;
            let image = &x_data[index * plane..][..plane];
            let taps = &weights[channel * taps_per_channel..][..taps_per_channel];
            if short_rows {
                padded_plane_taps(&g, taps, image, (padded, sums), out);
                epilogue.apply_to_plane(index, out);
                return;
            }
            if strided {
                phases.gather(&g, image);
            }
            for kh in 0..g.kernel[0] {
                for kw in 0..g.kernel[1] {
                    let factor = taps[kh * g.kernel[1] + kw];
                    if strided {
                        phases.gather_tap(&g, [kh, kw], factor, out);
                    } else {
                        gather_tap(&g, [kh, kw], factor, image, out);
                    }
                }
            }
            epilogue.apply_to_plane(index, out);
        },
    );
    FlexTensor::from_data(TensorData::new(output, out_shape))
}

/// Output rows shorter than this take [`padded_plane_taps`]: all of EfficientNet-Lite0's
/// depthwise layers (7 to 112 columns).
const SHORT_ROWS: usize = 128;

/// One output plane of a depthwise layer with short rows (`out`, every value written): the
/// input plane copied with its padding into `padded`, split into the stride's phases (phase
/// `(a, b)`, entry `(i, j)`: padded row `i sh + a`, column `j sw + b`), so that each kernel tap
/// reads one phase shifted by one offset; then each tap one multiply-add over the flattened
/// phase into `sums`, which holds every output row at the phase's width (the columns past the
/// output's width are computed and dropped), and the rows copied out. Tap by tap and row by
/// row, a 7 x 7 map with a 5 x 5 kernel was 175 loops of 7 values (EfficientNet-Lite0's last
/// stage: 5.3 ms a layer, burn-flex's kernel 2.8 ms, this 1.2 ms).
fn padded_plane_taps(
    g: &Geometry,
    taps: &[f32],
    image: &[f32],
    (padded, sums): (&mut Vec<f32>, &mut Vec<f32>),
    out: &mut [f32],
) {
    let ([pad_h, pad_w], [stride_h, stride_w]) = (g.padding, g.stride);
    let rows = (g.height + 2 * pad_h).div_ceil(stride_h);
    let columns = (g.width + 2 * pad_w).div_ceil(stride_w);
    let phase_len = rows * columns;
    padded.clear();
    padded.resize(stride_h * stride_w * phase_len, 0.0);
    for (ih, row) in image.chunks_exact(g.width).enumerate() {
        let (a, i) = ((ih + pad_h) % stride_h, (ih + pad_h) / stride_h);
        for b in 0..stride_w {
            // The first input column whose padded column falls in phase column `b`.
            let first = (b + stride_w - pad_w % stride_w) % stride_w;
            if first >= g.width {
                continue;
            }
            let at = (a * stride_w + b) * phase_len + i * columns + (pad_w + first) / stride_w;
            let dst = &mut padded[at..][..(g.width - first).div_ceil(stride_w)];
            for_each_strided(dst, &row[first..], stride_w, |value, x| *value = x);
        }
    }
    let len = (g.out_height - 1) * columns + g.out_width;
    sums.clear();
    sums.resize(len, 0.0);
    for kh in 0..g.kernel[0] {
        for kw in 0..g.kernel[1] {
            let (r, c) = (kh * g.dilation[0], kw * g.dilation[1]);
            let phase = (r % stride_h) * stride_w + c % stride_w;
            let start = phase * phase_len + (r / stride_h) * columns + c / stride_w;
            add_scaled(sums, &padded[start..][..len], taps[kh * g.kernel[1] + kw]);
        }
    }
    for (oh, row) in out.chunks_exact_mut(g.out_width).enumerate() {
        row.copy_from_slice(&sums[oh * columns..][..g.out_width]);
    }
}

/// Adds `factor` times the input rows that kernel tap `(kh, kw)` reads into the output plane
/// `out` (horizontal stride 1): `image` one input plane.
fn gather_tap(g: &Geometry, [kh, kw]: [usize; 2], factor: f32, image: &[f32], out: &mut [f32]) {
    let Some(tap) = g.tap([kh, kw]) else {
        return;
    };
    for (oh, ih) in tap.row_pairs(g) {
        let dst = &mut out[tap.output_run(g, oh)];
        let src = &image[ih * g.width + tap.first_column..][..dst.len()];
        add_scaled(dst, src, factor);
    }
}

/// `dX` of a depthwise convolution (one filter per channel) on Flex: each output gradient
/// value scattered back through its channel's kernel taps, one channel plane at a time (in
/// parallel), instead of burn-flex's general transposed convolution, which took four times the
/// forward pass on EfficientNet's depthwise layers. Each plane is zeroed by the thread that
/// scatters into it ([`par_fill_pieces`]): zeroed whole on one thread first, a 3x3 layer's 38 MB
/// gradient at 112 px took most of the layer's time.
/// A horizontal stride above 1 scatters into [`Phases`] first, so that every tap's pass is
/// contiguous.
fn depthwise_input_grad(
    x_shape: &Shape,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let output_grad = output_grad.to_contiguous();
    let g = Geometry::new(x_shape, &weight.shape(), &output_grad.shape(), options);
    let (batch, channels) = (x_shape[0], g.channels);
    let weights: &[f32] = weight.storage();
    let dy: &[f32] = output_grad.storage();
    let plane = g.height * g.width;
    let out_plane = g.out_len();
    let taps_per_channel = g.kernel_len();
    let strided = g.stride[1] > 1;
    let (dx, _) = par_fill_pieces(
        batch * channels * plane,
        plane,
        || {
            if strided {
                Phases::new(&g)
            } else {
                Phases::default()
            }
        },
        |phases, index, dx| {
            let channel = index % channels;
            let dy = &dy[index * out_plane..][..out_plane];
            let taps = &weights[channel * taps_per_channel..][..taps_per_channel];
            if strided {
                phases.clear();
            }
            for kh in 0..g.kernel[0] {
                for kw in 0..g.kernel[1] {
                    let factor = taps[kh * g.kernel[1] + kw];
                    if strided {
                        phases.scatter_tap(&g, [kh, kw], factor, dy);
                    } else {
                        scatter_tap(&g, [kh, kw], factor, dy, dx);
                    }
                }
            }
            if strided {
                phases.interleave_into(&g, dx);
            }
        },
    );
    FlexTensor::from_data(TensorData::new(dx, x_shape.clone()))
}

/// `dW` of a depthwise convolution on Flex: each channel's taps are sums over the batch of the
/// output gradient's rows dotted with the input rows the tap reads, channels in parallel, instead
/// of a grouped im2col with one-row GEMMs per channel (slower than burn's own on 5x5 and stride-1
/// depthwise layers).
fn depthwise_weight_grad(
    x: &FlexTensor,
    weight_shape: &Shape,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let output_grad = output_grad.to_contiguous();
    let g = Geometry::new(&x.shape(), weight_shape, &output_grad.shape(), options);
    let (batch, channels) = (x.shape()[0], g.channels);
    let xs: &[f32] = x.storage();
    let dy: &[f32] = output_grad.storage();
    let (plane, out_plane, taps) = (g.height * g.width, g.out_len(), g.kernel_len());
    let mut dw = vec![0.0f32; channels * taps];
    dw.par_chunks_mut(taps.max(1))
        .enumerate()
        .for_each(|(channel, dw)| {
            for kh in 0..g.kernel[0] {
                for kw in 0..g.kernel[1] {
                    let Some(tap) = g.tap([kh, kw]) else {
                        continue;
                    };
                    let mut sum = 0.0f32;
                    for n in 0..batch {
                        let index = n * channels + channel;
                        let x_plane = &xs[index * plane..][..plane];
                        let dy_plane = &dy[index * out_plane..][..out_plane];
                        for (oh, ih) in tap.row_pairs(&g) {
                            let dy_row = &dy_plane[tap.output_run(&g, oh)];
                            let x_row =
                                &x_plane[ih * g.width + tap.first_column..(ih + 1) * g.width];
                            sum += if g.stride[1] == 1 {
                                dot(dy_row, x_row)
                            } else {
                                dy_row
                                    .iter()
                                    .zip(x_row.iter().step_by(g.stride[1]))
                                    .map(|(a, b)| a * b)
                                    .sum::<f32>()
                            };
                        }
                    }
                    dw[kh * g.kernel[1] + kw] = sum;
                }
            }
        });
    FlexTensor::from_data(TensorData::new(dw, weight_shape.clone()))
}

/// `a . b` over `a`'s length, in eight lanes so that the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (a8, b8) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += a8[lane] * b8[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// An input plane with its columns split by their remainder modulo the horizontal stride:
/// phase `p`, row `ih`, entry `j` is column `j * stride + p`. A tap of a strided convolution
/// reads every `stride`-th column, all of one phase, so its scatter is a contiguous pass here
/// where it is a strided one in the plane (which does not vectorise).
#[derive(Default)]
struct Phases {
    values: Vec<f32>,
    /// Entries per phase row: the plane's width divided by the stride, rounded up.
    row: usize,
}

impl Phases {
    fn new(g: &Geometry) -> Self {
        let row = g.width.div_ceil(g.stride[1]);
        Self {
            values: vec![0.0; g.stride[1] * g.height * row],
            row,
        }
    }

    fn clear(&mut self) {
        self.values.fill(0.0);
    }

    /// Where the run of `tap` in input row `ih` starts in the phases: every column a tap
    /// reads has the remainder of its first one, so the run lies in one phase, contiguous.
    fn run_start(&self, g: &Geometry, tap: &Tap, ih: usize) -> usize {
        let stride = g.stride[1];
        let (phase, first) = (tap.first_column % stride, tap.first_column / stride);
        (phase * g.height + ih) * self.row + first
    }

    /// [`scatter_tap`] into the phases: `src` one output plane.
    fn scatter_tap(&mut self, g: &Geometry, [kh, kw]: [usize; 2], factor: f32, src: &[f32]) {
        let Some(tap) = g.tap([kh, kw]) else {
            return;
        };
        for (oh, ih) in tap.row_pairs(g) {
            let src = &src[tap.output_run(g, oh)];
            let start = self.run_start(g, &tap, ih);
            add_scaled(&mut self.values[start..][..src.len()], src, factor);
        }
    }

    /// Splits the input plane `image` into the phases (the forward's inverse of
    /// [`Self::interleave_into`]).
    fn gather(&mut self, g: &Geometry, image: &[f32]) {
        let stride = g.stride[1];
        let phase_plane = g.height * self.row;
        for (ih, src) in image.chunks_exact(g.width).enumerate() {
            for (phase, values) in self.values.chunks_exact_mut(phase_plane).enumerate() {
                let values = &mut values[ih * self.row..][..self.row];
                for (v, s) in values
                    .iter_mut()
                    .zip(src.iter().skip(phase).step_by(stride))
                {
                    *v = *s;
                }
            }
        }
    }

    /// [`gather_tap`] from the phases: every column a strided tap reads is of one phase, so the
    /// pass is contiguous.
    fn gather_tap(&self, g: &Geometry, [kh, kw]: [usize; 2], factor: f32, out: &mut [f32]) {
        let Some(tap) = g.tap([kh, kw]) else {
            return;
        };
        for (oh, ih) in tap.row_pairs(g) {
            let dst = &mut out[tap.output_run(g, oh)];
            let start = self.run_start(g, &tap, ih);
            add_scaled(dst, &self.values[start..][..dst.len()], factor);
        }
    }

    /// Writes the phases into `dx`, one input plane.
    fn interleave_into(&self, g: &Geometry, dx: &mut [f32]) {
        let stride = g.stride[1];
        let phase_plane = g.height * self.row;
        for (ih, dst) in dx.chunks_exact_mut(g.width).enumerate() {
            for (phase, values) in self.values.chunks_exact(phase_plane).enumerate() {
                let values = &values[ih * self.row..][..self.row];
                for (d, v) in dst.iter_mut().skip(phase).step_by(stride).zip(values) {
                    *d = *v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;
    use burn::tensor::{Distribution, Tolerance};

    /// The chunked path (chunks of one sample, read in place, and of several, gathered), with
    /// and without groups, as dW^T (more kernel rows than outputs) and as dW, gives the
    /// gradient of burn's op.
    #[test]
    fn chunks_of_samples_sum_to_the_whole_gradient() {
        let device = Default::default();
        let random = |shape: [usize; 4]| {
            Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
        };
        // Four chunks or more of an ungrouped layer run side by side, as near-equal chunks (9
        // samples by 2 are chunks of 1, 2, 2, 2, 2), into dW^T (4 outputs < 54 rows) or dW.
        for (batch, chunk, groups, out_channels, kernel) in [
            (5, 1, 1, 4, 3),
            (5, 2, 1, 4, 3),
            (9, 2, 1, 4, 3),
            (5, 1, 2, 4, 3),
            (5, 3, 2, 4, 3),
            (5, 2, 1, 16, 1),
            (9, 2, 1, 16, 1),
            (5, 1, 2, 16, 1),
        ] {
            let x = random([batch, 6, 9, 7]);
            let weight = random([out_channels, 6 / groups, kernel, kernel]);
            let options = ConvOptions::new([2, 2], [kernel / 2; 2], [1, 1], groups);
            let y = burn::tensor::module::conv2d(x.clone(), weight.clone(), None, options.clone());
            let dy = random(y.dims());
            let chunked = weight_grad_im2col(
                &x.clone().into_primitive().tensor(),
                &weight.shape(),
                &dy.clone().into_primitive().tensor(),
                &options,
                Some(chunk),
            );
            let reference = Flex::conv2d_weight_backward(
                x.into_primitive().tensor(),
                weight.into_primitive().tensor(),
                dy.into_primitive().tensor(),
                options,
            );
            chunked
                .into_data()
                .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-4));
        }
    }

    /// The chunked col2im input gradient (several chunks, strides, dilation) is burn's.
    #[test]
    fn chunked_input_gradient_is_burns() {
        let device = Default::default();
        for (chunk, options) in [
            (1, ConvOptions::new([2, 2], [1, 1], [1, 1], 1)),
            (2, ConvOptions::new([2, 2], [1, 1], [1, 1], 1)),
            (3, ConvOptions::new([1, 2], [2, 0], [2, 1], 1)),
            (5, ConvOptions::new([1, 1], [0, 0], [1, 1], 1)),
        ] {
            let x =
                Tensor::<Flex, 4>::random([5, 3, 9, 7], Distribution::Normal(0.0, 1.0), &device);
            let weight =
                Tensor::<Flex, 4>::random([4, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
            let y = burn::tensor::module::conv2d(x.clone(), weight.clone(), None, options.clone());
            let dy = Tensor::<Flex, 4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
            let weight = weight.into_primitive().tensor();
            let dy = dy.into_primitive().tensor();
            let ours = input_grad_col2im(
                &Shape::new([5, 3, 9, 7]),
                &weight,
                &dy,
                &options,
                Some(chunk),
            );
            let reference =
                Flex::conv2d_x_backward(x.into_primitive().tensor(), weight, dy, options);
            ours.into_data()
                .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-4));
        }
    }

    /// A 1x1 convolution's input gradient (a GEMM per sample into `dX`) is burn's.
    #[test]
    fn pointwise_input_gradient_is_burns() {
        let device = Default::default();
        let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        let x = Tensor::<Flex, 4>::random([3, 5, 6, 7], Distribution::Normal(0.0, 1.0), &device);
        let weight =
            Tensor::<Flex, 4>::random([4, 5, 1, 1], Distribution::Normal(0.0, 1.0), &device);
        let dy = Tensor::<Flex, 4>::random([3, 4, 6, 7], Distribution::Normal(0.0, 1.0), &device);
        let (x, weight, dy) = (
            x.into_primitive().tensor(),
            weight.into_primitive().tensor(),
            dy.into_primitive().tensor(),
        );
        let ours = Flex::conv2d_input_grad(x.clone(), weight.clone(), dy.clone(), options.clone());
        let reference = Flex::conv2d_x_backward(x, weight, dy, options);
        ours.into_data()
            .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-4));
    }

    /// The fused forward (chunks of samples, strides, padding, dilation, 1x1; bias, residual,
    /// activation) is burn's `conv2d`, add and activation.
    /// A random per-channel scale about 1 and bias, each where asked for.
    fn random_affine(
        channels: usize,
        with_scale: bool,
        with_bias: bool,
    ) -> (Option<Tensor<Flex, 1>>, Option<Tensor<Flex, 1>>) {
        let random =
            |distribution| Tensor::<Flex, 1>::random([channels], distribution, &Default::default());
        (
            with_scale.then(|| random(Distribution::Normal(1.0, 0.5))),
            with_bias.then(|| random(Distribution::Default)),
        )
    }

    /// burn's `activation(conv2d(x, weight * scale, bias) + residual)`, with the random residual
    /// (of the output's shape) it added when `with_residual`.
    fn burns_fused(
        x: &Tensor<Flex, 4>,
        weight: &Tensor<Flex, 4>,
        (scale, bias): (&Option<Tensor<Flex, 1>>, &Option<Tensor<Flex, 1>>),
        options: &ConvOptions<2>,
        with_residual: bool,
        activation: Activation,
    ) -> (Tensor<Flex, 4>, Option<Tensor<Flex, 4>>) {
        let weight = match scale {
            Some(scale) => weight.clone() * scale.clone().reshape([weight.dims()[0], 1, 1, 1]),
            None => weight.clone(),
        };
        let output = burn::tensor::module::conv2d(x.clone(), weight, bias.clone(), options.clone());
        let residual = with_residual.then(|| {
            Tensor::<Flex, 4>::random(output.dims(), Distribution::Normal(0.0, 1.0), &x.device())
        });
        let output = match &residual {
            Some(residual) => output + residual.clone(),
            None => output,
        };
        (activation.apply(output), residual)
    }

    #[test]
    fn fused_forward_is_burns_conv_add_and_activation() {
        let device = Default::default();
        let random = |shape: [usize; 4]| {
            Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
        };
        for (case, (chunk, kernel, options, with_bias, with_residual, activation)) in [
            (
                Some(2),
                3,
                ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
                true,
                true,
                Activation::Relu,
            ),
            (
                Some(1),
                3,
                ConvOptions::new([1, 2], [2, 0], [2, 1], 1),
                false,
                true,
                Activation::Relu6,
            ),
            (
                None,
                3,
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                true,
                false,
                Activation::Identity,
            ),
            (
                Some(3),
                1,
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
                true,
                true,
                Activation::Relu,
            ),
            (
                None,
                1,
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
                false,
                false,
                Activation::Relu6,
            ),
            (
                None,
                1,
                ConvOptions::new([2, 2], [0, 0], [1, 1], 1),
                true,
                false,
                Activation::Relu,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let x = random([5, 3, 9, 7]);
            let weight = random([4, 3, kernel, kernel]);
            // A BatchNorm's scale in the odd cases.
            let (scale, bias) = random_affine(4, case % 2 == 1, with_bias);
            let (reference, residual) = burns_fused(
                &x,
                &weight,
                (&scale, &bias),
                &options,
                with_residual,
                activation,
            );
            let residual = residual.map(|r| r.into_primitive().tensor());
            let scale = scale.map(|s| s.into_primitive().tensor());
            let ours = forward_im2col(
                &x.into_primitive().tensor(),
                &weight.into_primitive().tensor(),
                (
                    scale.as_ref(),
                    bias.map(|b| b.into_primitive().tensor()).as_ref(),
                ),
                &options,
                (residual.as_ref(), activation),
                chunk,
            );
            ours.into_data()
                .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-4));
        }
    }

    /// The depthwise forward with its bias, residual and activation against burn's depthwise
    /// convolution, add and activation: strides 1 and 2 (the phases), a horizontal stride alone,
    /// dilation, padding on one axis.
    #[test]
    fn depthwise_fused_forward_is_burns_conv_add_and_activation() {
        let device = Default::default();
        let random = |shape: [usize; 4]| {
            Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 2.0), &device)
        };
        let channels = 5;
        for (case, (kernel, options, with_bias, with_residual, activation)) in [
            (
                3,
                ConvOptions::new([2, 2], [1, 1], [1, 1], channels),
                true,
                true,
                Activation::Relu6,
            ),
            (
                5,
                ConvOptions::new([1, 3], [2, 0], [1, 1], channels),
                false,
                true,
                Activation::Relu,
            ),
            (
                3,
                ConvOptions::new([1, 1], [2, 2], [2, 2], channels),
                true,
                false,
                Activation::Identity,
            ),
            (
                3,
                ConvOptions::new([2, 1], [0, 1], [1, 2], channels),
                false,
                false,
                Activation::Relu6,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let x = random([3, channels, 11, 12]);
            let weight = random([channels, 1, kernel, kernel]);
            let (scale, bias) = random_affine(channels, case % 2 == 0, with_bias);
            let (reference, residual) = burns_fused(
                &x,
                &weight,
                (&scale, &bias),
                &options,
                with_residual,
                activation,
            );
            let ours = Flex::conv2d_fused(
                x.into_primitive().tensor(),
                weight.into_primitive().tensor(),
                (
                    scale.map(|s| s.into_primitive().tensor()),
                    bias.map(|b| b.into_primitive().tensor()),
                ),
                options,
                residual.map(|r| r.into_primitive().tensor()),
                activation,
            );
            ours.into_data()
                .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-4));
        }
    }
}
