//! 3x3 stride-1 convolutions on Flex as Winograd's minimal filtering F(2x2, 3x3) (Lavin and
//! Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 output tile is
//! `A^T [(G g G^T) ⊙ (B^T d B)] A` of its 4x4 input patch `d`, so that summed over the input
//! channels the products are 16 GEMMs `U_ξ [O, C] x V_ξ [C, tiles]`, 16 multiplies per tile and
//! channel pair where the direct convolution takes 36: 2.25x fewer multiply-adds in the GEMMs,
//! for the cost of transforming the input and the output in passes that stay in cache.
//!
//! The input gradient of such a layer is the same convolution of the output gradient with the
//! kernels flipped and the channels swapped, padded by `2 - padding` ([`input_grad`]); the
//! weight gradient is the transform's own gradient through the kernel, 16 GEMMs over the tiles
//! ([`weight_grad`]).
//!
//! Rounding: each output sums the same products in another order (the transforms add and
//! subtract up to 9 inputs before the multiply), so results differ from the direct convolution's
//! by a few units in the last place of the inputs' magnitude; the tests bound it.

use std::array::from_fn;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use burn::backend::flex::FlexTensor;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Shape, TensorData, TensorMetadata};
use rayon::prelude::*;

use super::{output_shape, par_fill_pieces, sample_chunks, Epilogue, EpilogueTensors, Scratch};
use crate::conv::Activation;
use crate::gemm::{matmul_into_serial, MatRef};
use crate::shape::dims4;

/// Positions of a 4x4 transformed tile: one GEMM each.
const POSITIONS: usize = 16;

/// Channels on both sides below which im2col's GEMM is kept. With fewer, the 16 GEMMs are too
/// shallow to pay for the transforms' passes over memory. Measured on 2 cores, ms (batch, in ->
/// out @ side, forward / input gradient / weight gradient, im2col against Winograd, rounds
/// alternated, `examples/time_conv_parts`): 8, 64 -> 64 @ 56: 10.9-11.0 / 14.5-21.9 / 13.9-14.6
/// against 6.9-7.9 / 7.5-8.3 / 10.6-11.2; 64, 64 -> 128 @ 16: 16.2-17.6 / 14.3-14.6 / 21.6-22.3
/// against 11.4-11.6 / 13.7-16.0 / 16.6-21.1; but 64, 32 -> 64 @ 32: 16.0-22.4 / 15.2-15.5 /
/// 33.4-37.8 against 16.8-18.2 / 18.5-22.4 / 25.6-33.8 (docs/benchmarks.md, the fifth round of
/// issue 31).
const MIN_CHANNELS: usize = 64;

/// Tiles of a chunk of samples (the fewest samples that reach it): enough for each GEMM to be
/// wide, few enough for the transformed input and products to stay in cache (a chunk of 32
/// samples of 8 x 8 maps, 128 -> 128 channels, 6.4 ms against 11.2 ms for the batch of 64 at
/// once; with 128 channels or more a 4 MiB cap on the buffers never chose a smaller chunk).
const MIN_CHUNK_TILES: usize = 512;

/// Whether a convolution of these shapes is computed here: 3x3, stride 1, no dilation,
/// ungrouped, padding at most 2 on each axis (so that the input gradient's `2 - padding` is one
/// too), at least [`MIN_CHANNELS`] channels in and out, and a non-empty output.
pub(super) fn applies(x: &Shape, weight: &Shape, options: &ConvOptions<2>) -> bool {
    let [batch, channels, height, width] = dims4(x);
    let [out_channels, per_group, kernel_h, kernel_w] = dims4(weight);
    [kernel_h, kernel_w] == [3, 3]
        && options.stride == [1, 1]
        && options.dilation == [1, 1]
        && options.groups == 1
        && per_group == channels
        && options.padding.iter().all(|&p| p <= 2)
        && channels >= MIN_CHANNELS
        && out_channels >= MIN_CHANNELS
        && batch > 0
        && height + 2 * options.padding[0] > 2
        && width + 2 * options.padding[1] > 2
}

/// `activation(conv2d(x, W) * scale + bias + residual)` of a layer that [`applies`], f32
/// (checked by the caller with the residual's shape). With `Weights::Kept`, the weight's
/// transform comes from [`TransformCache`] (inference, where the weights do not change between
/// calls); with `Weights::Fresh` it is made for this call (training, where they change at
/// every step).
pub(super) fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    (scale, bias): (Option<&FlexTensor>, Option<&FlexTensor>),
    options: &ConvOptions<2>,
    (residual, activation): (Option<&FlexTensor>, Activation),
    (weights, chunk): (Weights, Option<usize>),
) -> FlexTensor {
    let x = x.to_contiguous();
    let given = weight;
    let weight = weight.to_contiguous();
    let out_shape = output_shape(&x.shape(), &weight.shape(), options);
    let [_, out_channels, out_height, out_width] = dims4(&out_shape);
    let tensors = EpilogueTensors::new(scale, bias, residual);
    let epilogue = tensors.epilogue(activation, out_channels, out_height * out_width);
    let layer = Layer::new(&x.shape(), out_channels, options.padding);
    let make = || transformed_weight(weight.storage(), out_channels, layer.channels, false);
    // A weight copied to be made contiguous is a new buffer at every call: nothing to keep.
    let copied = !std::ptr::eq(given.storage::<f32>(), weight.storage::<f32>());
    let u = match weights {
        Weights::Kept if !copied => TransformCache::get(&weight, make),
        _ => Arc::new(make()),
    };
    let output = layer.convolve(x.storage(), &u, &epilogue, chunk);
    FlexTensor::from_data(TensorData::new(output, out_shape))
}

/// Where [`forward`] takes the weight's transform from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Weights {
    /// From the cache: weights that stay as they are between calls.
    Kept,
    /// Made for this call.
    Fresh,
}

/// The weight transforms of the latest inference calls, each beside a clone of the weight it
/// was made from. Holding that clone is what makes the buffer's address a safe key: burn-flex
/// frees a buffer only when its last clone goes and writes one in place only when it holds the
/// only clone (`Arc::get_mut`, `Arc::make_mut`), so while an entry lives its weight's buffer
/// keeps its address and its values. Inference of ResNet-50 had spent 2 % of its time making
/// these transforms again at every batch.
struct TransformCache {
    entries: VecDeque<(FlexTensor, Arc<Vec<f32>>)>,
    /// Bytes the entries hold, transforms and the weights they keep alive.
    bytes: usize,
}

/// The most a [`TransformCache`] holds: ResNet-50's thirteen 3x3 layers that take Winograd hold
/// 87 MiB with the weights they keep. The oldest entries go first.
const TRANSFORM_CACHE_BYTES: usize = 256 << 20;

static TRANSFORM_CACHE: Mutex<TransformCache> = Mutex::new(TransformCache {
    entries: VecDeque::new(),
    bytes: 0,
});

impl TransformCache {
    /// `U` of `weight` (contiguous f32), from the cache, or made by `make` and kept.
    fn get(weight: &FlexTensor, make: impl FnOnce() -> Vec<f32>) -> Arc<Vec<f32>> {
        let same = |kept: &FlexTensor| {
            let (a, b) = (kept.storage::<f32>(), weight.storage::<f32>());
            std::ptr::eq(a, b) && kept.shape() == weight.shape()
        };
        let mut cache = TRANSFORM_CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache.drop_unheld();
        if let Some((_, u)) = cache.entries.iter().find(|(kept, _)| same(kept)) {
            return Arc::clone(u);
        }
        drop(cache);
        let u = Arc::new(make());
        let bytes = entry_bytes(weight, &u);
        let mut cache = TRANSFORM_CACHE.lock().unwrap_or_else(|e| e.into_inner());
        while cache.bytes + bytes > TRANSFORM_CACHE_BYTES {
            let Some((kept, old)) = cache.entries.pop_front() else {
                break;
            };
            cache.bytes -= entry_bytes(&kept, &old);
        }
        if bytes <= TRANSFORM_CACHE_BYTES {
            cache.bytes += bytes;
            cache.entries.push_back((weight.clone(), Arc::clone(&u)));
        }
        u
    }

    /// Drops the entries whose weight only the cache still holds: no caller can hand that
    /// buffer in again (a training step that changed the weight, a model dropped), so they
    /// would only keep memory until the oldest went first.
    fn drop_unheld(&mut self) {
        let mut freed = 0;
        self.entries.retain(|(kept, u)| {
            let held = !kept.is_unique();
            if !held {
                freed += entry_bytes(kept, u);
            }
            held
        });
        self.bytes -= freed;
    }

    /// The shapes of the weights the cache holds transforms of (tests).
    #[cfg(test)]
    fn kept_shapes() -> Vec<Shape> {
        let mut cache = TRANSFORM_CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache.drop_unheld();
        cache.entries.iter().map(|(kept, _)| kept.shape()).collect()
    }
}

/// Bytes a [`TransformCache`] entry holds: the transform and the weight it keeps alive.
fn entry_bytes(weight: &FlexTensor, u: &[f32]) -> usize {
    std::mem::size_of::<f32>() * (u.len() + weight.storage::<f32>().len())
}

/// `dX` of a layer that [`applies`], f32: the output gradient convolved with `W` flipped in both
/// axes and its channels swapped, padded by `2 - padding`.
pub(super) fn input_grad(
    x_shape: &Shape,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
    chunk: Option<usize>,
) -> FlexTensor {
    let output_grad = output_grad.to_contiguous();
    let weight = weight.to_contiguous();
    let [_, channels, height, width] = dims4(x_shape);
    let padding = options.padding.map(|p| 2 - p);
    let layer = Layer::new(&output_grad.shape(), channels, padding);
    debug_assert_eq!([layer.out_height, layer.out_width], [height, width]);
    let epilogue = Epilogue::identity(channels, height * width);
    let u = transformed_weight(weight.storage(), channels, layer.channels, true);
    let dx = layer.convolve(output_grad.storage(), &u, &epilogue, chunk);
    FlexTensor::from_data(TensorData::new(dx, x_shape.clone()))
}

/// `dW` of a layer that [`applies`], f32 ([`Layer::weight_grad`]).
pub(super) fn weight_grad(
    x: &FlexTensor,
    weight_shape: &Shape,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
    chunk: Option<usize>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let output_grad = output_grad.to_contiguous();
    let [out_channels, _, _, _] = dims4(weight_shape);
    let layer = Layer::new(&x.shape(), out_channels, options.padding);
    debug_assert_eq!(
        [layer.out_height, layer.out_width],
        [output_grad.shape()[2], output_grad.shape()[3]]
    );
    let dw = layer.weight_grad(x.storage(), output_grad.storage(), chunk);
    FlexTensor::from_data(TensorData::new(dw, weight_shape.clone()))
}

/// The sizes of one Winograd convolution `[N, C, H, W] -> [N, O, H', W']`.
struct Layer {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    out_height: usize,
    out_width: usize,
    padding: [usize; 2],
    /// 2x2 tiles per row and per column of the output.
    tiles_h: usize,
    tiles_w: usize,
}

impl Layer {
    fn new(x: &Shape, out_channels: usize, padding: [usize; 2]) -> Self {
        let [batch, channels, height, width] = dims4(x);
        let (out_height, out_width) = (height + 2 * padding[0] - 2, width + 2 * padding[1] - 2);
        Self {
            batch,
            channels,
            height,
            width,
            out_channels,
            out_height,
            out_width,
            padding,
            tiles_h: out_height.div_ceil(2),
            tiles_w: out_width.div_ceil(2),
        }
    }

    fn tiles(&self) -> usize {
        self.tiles_h * self.tiles_w
    }

    /// The whole output `[N, O, H', W']`, chunk of `chunk` samples by chunk (by default sized by
    /// [`MIN_CHUNK_TILES`]): the input transform `V [C, 16, tiles]`, the
    /// 16 GEMMs into `M [16, O, tiles]`, the output transform and the epilogue per output plane;
    /// both buffers kept from chunk to chunk. `u` is the weight's transform
    /// ([`transformed_weight`]).
    fn convolve(
        &self,
        x: &[f32],
        u: &[f32],
        epilogue: &Epilogue,
        chunk: Option<usize>,
    ) -> Vec<f32> {
        let (channels, out_channels) = (self.channels, self.out_channels);
        let tiles = self.tiles();
        let chunk = self.samples_per_chunk(chunk);
        let stride = chunk * tiles;
        let mut v = Scratch::take(channels * POSITIONS * stride);
        let mut m = Scratch::take(POSITIONS * out_channels * stride);
        let out_plane = self.out_height * self.out_width;
        // Every element is written by the output transform.
        let mut output = vec![0.0f32; self.batch * out_channels * out_plane];
        for samples in sample_chunks(self.batch, chunk) {
            let len = samples.len() * tiles;
            self.transform_inputs(x, samples.clone(), &mut v, stride);
            let u_at = |position| {
                let rows = [POSITIONS * channels, 1];
                MatRef::strided(u, [out_channels, channels], rows, position * channels)
            };
            let v_at = |position| {
                let rows = [POSITIONS * stride, 1];
                MatRef::strided(&v, [channels, len], rows, position * stride)
            };
            products(&mut m, stride, u_at, v_at, false);
            let m: &[f32] = &m;
            let first = samples.start * out_channels;
            output[first * out_plane..(first + samples.len() * out_channels) * out_plane]
                .par_chunks_mut(out_plane)
                .enumerate()
                .for_each_init(
                    || vec![0.0f32; 10 * self.tiles_w],
                    |scratch, (index, out)| {
                        let (i, o) = (index / out_channels, index % out_channels);
                        let start = o * stride + i * tiles;
                        self.transform_output(m, out_channels * stride, start, scratch, out);
                        epilogue.apply_to_plane(first + index, out);
                    },
                );
        }
        output
    }

    /// `dW [O, C, 3, 3]` from the input `x` and the output gradient `dy`, chunk of samples by
    /// chunk: `S_ξ [O, C] += Ỹ_ξ [O, tiles] x V_ξ^T [tiles, C]` for the 16 positions (`S` laid
    /// out `[16, O, C]`), where `V`
    /// is the input transform of the forward and `Ỹ = A dY A^T` of each 2x2 output tile, then
    /// `G^T S G` for every kernel: the gradient of `A^T [(G g G^T) ⊙ V] A` through `g`.
    fn weight_grad(&self, x: &[f32], dy: &[f32], chunk: Option<usize>) -> Vec<f32> {
        let (channels, out_channels) = (self.channels, self.out_channels);
        let tiles = self.tiles();
        let chunk = self.samples_per_chunk(chunk);
        let stride = chunk * tiles;
        let mut v = Scratch::take(channels * POSITIONS * stride);
        let mut y = Scratch::take(out_channels * POSITIONS * stride);
        let mut sums = Scratch::take(POSITIONS * out_channels * channels);
        let out_plane = self.out_height * self.out_width;
        for samples in sample_chunks(self.batch, chunk) {
            let accumulate = samples.start > 0;
            let len = samples.len() * tiles;
            self.transform_inputs(x, samples.clone(), &mut v, stride);
            y.par_chunks_mut(POSITIONS * stride)
                .enumerate()
                .for_each_init(
                    || vec![0.0f32; 12 * self.tiles_w],
                    |scratch, (o, y)| {
                        for (i, n) in samples.clone().enumerate() {
                            let plane = &dy[(n * out_channels + o) * out_plane..][..out_plane];
                            self.transform_output_grad(plane, scratch, y, stride, i * tiles);
                        }
                    },
                );
            let rows = [POSITIONS * stride, 1];
            let y_at = |position| MatRef::strided(&y, [out_channels, len], rows, position * stride);
            let v_at = |position| MatRef::strided(&v, [channels, len], rows, position * stride).t();
            products(&mut sums, channels, y_at, v_at, accumulate);
        }
        let (dw, _) = par_fill_pieces(
            out_channels * channels * 9,
            channels * 9,
            || (),
            |_, o, dw| {
                for (c, dw) in dw.chunks_exact_mut(9).enumerate() {
                    let at =
                        |a: usize, b: usize| sums[((a * 4 + b) * out_channels + o) * channels + c];
                    // G^T S, column by column, then G on each of its three rows.
                    let columns: [[f32; 3]; 4] =
                        from_fn(|b| kernel_grad_1d([at(0, b), at(1, b), at(2, b), at(3, b)]));
                    for (r, dw) in dw.chunks_exact_mut(3).enumerate() {
                        dw.copy_from_slice(&kernel_grad_1d(from_fn(|b| columns[b][r])));
                    }
                }
            },
        );
        dw
    }

    /// Samples per chunk: `chunk` if given, else enough for [`MIN_CHUNK_TILES`].
    fn samples_per_chunk(&self, chunk: Option<usize>) -> usize {
        chunk
            .unwrap_or_else(|| MIN_CHUNK_TILES.div_ceil(self.tiles()))
            .clamp(1, self.batch)
    }

    /// `V [C, 16, stride]` of `samples` of `x`, sample `i` of the chunk at columns `i tiles..`,
    /// the channels in parallel.
    fn transform_inputs(&self, x: &[f32], samples: Range<usize>, v: &mut [f32], stride: usize) {
        let (channels, tiles) = (self.channels, self.tiles());
        let plane = self.height * self.width;
        v.par_chunks_mut(POSITIONS * stride)
            .enumerate()
            .for_each_init(
                || vec![0.0f32; 4 * self.padded_width() + 16 * (self.tiles_w + 1)],
                |scratch, (c, v)| {
                    for (i, n) in samples.clone().enumerate() {
                        let image = &x[(n * channels + c) * plane..][..plane];
                        self.transform_input(image, scratch, v, stride, i * tiles);
                    }
                },
            );
    }

    /// `Ỹ [16, stride]` of one output-gradient plane at columns `first..`: `A dY A^T` of every
    /// 2x2 tile, zeros past the plane's edges; a row of tiles at a time, its two rows split into
    /// their even and odd columns (tile `j`'s two), in passes over contiguous tiles as in
    /// [`Self::transform_input`]. `scratch` holds `12 tiles_w` values.
    fn transform_output_grad(
        &self,
        plane: &[f32],
        scratch: &mut [f32],
        y: &mut [f32],
        stride: usize,
        first: usize,
    ) {
        let (height, width, tiles_w) = (self.out_height, self.out_width, self.tiles_w);
        // `halves[(r 2 + p) tiles_w + j]`: row r, column 2 j + p; `columns[(p 4 + a) tiles_w +
        // j]`: row a of A dY for the same columns.
        let (halves, columns) = scratch.split_at_mut(4 * tiles_w);
        for th in 0..self.tiles_h {
            for (r, row_halves) in halves.chunks_exact_mut(2 * tiles_w).enumerate() {
                let (even, odd) = row_halves.split_at_mut(tiles_w);
                let oh = 2 * th + r;
                even.fill(0.0);
                odd.fill(0.0);
                if oh < height {
                    let row = &plane[oh * width..][..width];
                    for ((even, odd), pair) in
                        even.iter_mut().zip(odd.iter_mut()).zip(row.chunks(2))
                    {
                        *even = pair[0];
                        *odd = pair.get(1).copied().unwrap_or(0.0);
                    }
                }
            }
            // A down the rows, for both halves.
            for (p, out) in columns.chunks_exact_mut(4 * tiles_w).enumerate() {
                let y0 = &halves[p * tiles_w..][..tiles_w];
                let y1 = &halves[(2 + p) * tiles_w..][..tiles_w];
                let (t0, rest) = out.split_at_mut(tiles_w);
                let (t1, rest) = rest.split_at_mut(tiles_w);
                let (t2, t3) = rest.split_at_mut(tiles_w);
                for j in 0..tiles_w {
                    [t0[j], t1[j], t2[j], t3[j]] = output_grad_1d([y0[j], y1[j]]);
                }
            }
            // A along each row.
            let column = first + th * tiles_w;
            for a in 0..4 {
                let even = &columns[a * tiles_w..][..tiles_w];
                let odd = &columns[(4 + a) * tiles_w..][..tiles_w];
                for b in 0..4 {
                    let out = &mut y[(a * 4 + b) * stride + column..][..tiles_w];
                    for (j, out) in out.iter_mut().enumerate() {
                        *out = output_grad_1d([even[j], odd[j]])[b];
                    }
                }
            }
        }
    }

    /// Columns of an input row with its padding on both sides, as the tiles read it.
    fn padded_width(&self) -> usize {
        2 * self.tiles_w + 2
    }

    /// `V [16, stride]` of one input plane at columns `first..`: `B^T d B` of every tile's 4x4
    /// patch `d`, a row of tiles at a time. The tiles of a row overlap by two columns, so the
    /// four padded input rows are split into their even and odd columns: tile `j` reads columns
    /// `j` and `j + 1` of each half, and every step below is a pass over contiguous columns (the
    /// compiler vectorises them) instead of a 4x4 gather and 16 scattered stores per tile.
    /// `scratch` holds `4 (2 tiles_w + 2) + 16 (tiles_w + 1)` values.
    fn transform_input(
        &self,
        image: &[f32],
        scratch: &mut [f32],
        v: &mut [f32],
        stride: usize,
        first: usize,
    ) {
        let padded = self.padded_width();
        let (tiles_w, pairs) = (self.tiles_w, self.tiles_w + 1);
        let [pad_h, pad_w] = self.padding;
        let (rows, halves) = scratch.split_at_mut(4 * padded);
        let (halves, transformed) = halves.split_at_mut(8 * pairs);
        // Input columns the padded row holds: [0, width) shifted right by the padding, cut at
        // its end (tiles past the output's last column read zeros).
        let copied = self.width.min(padded - pad_w);
        for th in 0..self.tiles_h {
            for (r, row) in rows.chunks_exact_mut(padded).enumerate() {
                let ih = (2 * th + r) as isize - pad_h as isize;
                row.fill(0.0);
                if (0..self.height as isize).contains(&ih) {
                    let source = &image[ih as usize * self.width..][..copied];
                    row[pad_w..pad_w + copied].copy_from_slice(source);
                }
            }
            // `halves`: the even columns of rows 0-3, then their odd columns.
            let (even, odd) = halves.split_at_mut(4 * pairs);
            for ((row, even), odd) in rows
                .chunks_exact(padded)
                .zip(even.chunks_exact_mut(pairs))
                .zip(odd.chunks_exact_mut(pairs))
            {
                for ((pair, even), odd) in row.chunks_exact(2).zip(even).zip(odd) {
                    (*even, *odd) = (pair[0], pair[1]);
                }
            }
            // B^T down the rows, for both halves: `transformed` is row `a` of B^T d for the even
            // columns (a = 0..3), then for the odd ones.
            for (half, out) in halves
                .chunks_exact(4 * pairs)
                .zip(transformed.chunks_exact_mut(4 * pairs))
            {
                let d: [&[f32]; 4] = from_fn(|r| &half[r * pairs..][..pairs]);
                let (t0, rest) = out.split_at_mut(pairs);
                let (t1, rest) = rest.split_at_mut(pairs);
                let (t2, t3) = rest.split_at_mut(pairs);
                for j in 0..pairs {
                    let [a0, a1, a2, a3] = input_1d([d[0][j], d[1][j], d[2][j], d[3][j]]);
                    (t0[j], t1[j], t2[j], t3[j]) = (a0, a1, a2, a3);
                }
            }
            // B along each row: tile j of row a reads (even j, odd j, even j + 1, odd j + 1).
            let column = first + th * tiles_w;
            let (even, odd) = transformed.split_at(4 * pairs);
            for a in 0..4 {
                let (e, o) = (&even[a * pairs..][..pairs], &odd[a * pairs..][..pairs]);
                let (e0, e1, o0, o1) = (&e[..tiles_w], &e[1..], &o[..tiles_w], &o[1..]);
                for b in 0..4 {
                    let out = &mut v[(a * 4 + b) * stride + column..][..tiles_w];
                    for (j, out) in out.iter_mut().enumerate() {
                        *out = input_1d([e0[j], o0[j], e1[j], o1[j]])[b];
                    }
                }
            }
        }
    }

    /// One output plane from its products: `M_ξ` of its tiles at `m[ξ block + start..]`,
    /// `A^T M A` of every tile, cut at the plane's edges; a row of tiles at a time, in passes
    /// over contiguous tiles as in [`Self::transform_input`]. `scratch` holds `10 tiles_w`
    /// values.
    fn transform_output(
        &self,
        m: &[f32],
        block: usize,
        start: usize,
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        let (tiles_w, width) = (self.tiles_w, self.out_width);
        let (columns, rows) = scratch.split_at_mut(8 * tiles_w);
        for th in 0..self.tiles_h {
            let at = |position: usize| &m[position * block + start + th * tiles_w..][..tiles_w];
            // A^T down the columns: `columns[2 k + r]` is element (r, k) of A^T M.
            for (k, column) in columns.chunks_exact_mut(2 * tiles_w).enumerate() {
                let (top, bottom) = column.split_at_mut(tiles_w);
                let m: [&[f32]; 4] = from_fn(|i| at(4 * i + k));
                for j in 0..tiles_w {
                    [top[j], bottom[j]] = output_1d([m[0][j], m[1][j], m[2][j], m[3][j]]);
                }
            }
            // A along each of its two rows, then into the output row, interleaved.
            let (oh, (left, right)) = (2 * th, rows.split_at_mut(tiles_w));
            for r in 0..2.min(self.out_height - oh) {
                let c: [&[f32]; 4] = from_fn(|k| &columns[(2 * k + r) * tiles_w..][..tiles_w]);
                for j in 0..tiles_w {
                    [left[j], right[j]] = output_1d([c[0][j], c[1][j], c[2][j], c[3][j]]);
                }
                let row = &mut out[(oh + r) * width..][..width];
                for ((pair, &l), &r) in row.chunks_exact_mut(2).zip(&*left).zip(&*right) {
                    (pair[0], pair[1]) = (l, r);
                }
                if width % 2 == 1 {
                    row[width - 1] = left[tiles_w - 1];
                }
            }
        }
    }
}

/// The 16 products `dst_ξ = lhs(ξ) x rhs(ξ)` (or `+=` when `accumulate`) into `dst`, laid out
/// `[16, rows, row_stride]`: `dst_ξ` is `[rows, cols]` with rows `row_stride` apart from
/// `ξ rows row_stride`. The products run side by side on rayon's threads, each whole on one:
/// one fork and join for the 16 (letting each GEMM spread itself was 16, and a tenth of a
/// layer's time went to threads waiting), and each element's sum is made by one thread in an
/// order that does not depend on the number of threads.
fn products<'a>(
    dst: &mut [f32],
    row_stride: usize,
    lhs: impl Fn(usize) -> MatRef<'a> + Sync,
    rhs: impl Fn(usize) -> MatRef<'a> + Sync,
    accumulate: bool,
) {
    let [rows, _] = lhs(0).shape();
    let block = rows * row_stride;
    dst[..POSITIONS * block]
        .par_chunks_mut(block)
        .enumerate()
        .for_each(|(position, dst)| {
            matmul_into_serial(dst, row_stride, lhs(position), rhs(position), accumulate);
        });
}

/// `B^T` on a column of four: the input transform along one axis.
fn input_1d([d0, d1, d2, d3]: [f32; 4]) -> [f32; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// `A^T` on a column of four: the output transform along one axis.
fn output_1d([m0, m1, m2, m3]: [f32; 4]) -> [f32; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// `A` on a column of two: the output gradient's transform along one axis.
fn output_grad_1d([y0, y1]: [f32; 2]) -> [f32; 4] {
    [y0, y0 + y1, y0 - y1, -y1]
}

/// `G^T` on a column of four: the kernel gradient's transform along one axis.
fn kernel_grad_1d([s0, s1, s2, s3]: [f32; 4]) -> [f32; 3] {
    [s0 + 0.5 * (s1 + s2), 0.5 * (s1 - s2), 0.5 * (s1 + s2) + s3]
}

/// `G` on a column of three: the kernel transform along one axis.
fn kernel_1d([g0, g1, g2]: [f32; 3]) -> [f32; 4] {
    [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2]
}

/// `U [O, 16, C]`: `G g G^T` of every kernel `g` (3x3) from output channel `o` to input channel
/// `c`. `weight` is `[O, C, 3, 3]`, or `[C, O, 3, 3]` read flipped in both axes when `flipped`.
///
/// Training transforms the weights at every step (inference keeps them, [`TransformCache`]), so
/// this is a pass per output channel over contiguous input channels: its 9 taps gathered into
/// rows of `C`, `G` down the kernel's columns into 12 rows, `G^T` along them into `U`'s 16.
fn transformed_weight(
    weight: &[f32],
    out_channels: usize,
    channels: usize,
    flipped: bool,
) -> Vec<f32> {
    // Zeroed piece by piece by the threads that fill them: 16 MiB for 512 channels each way.
    let (u, _) = par_fill_pieces(
        out_channels * POSITIONS * channels,
        POSITIONS * channels,
        || vec![0.0f32; 21 * channels],
        |scratch, o, u| {
            let (taps, columns) = scratch.split_at_mut(9 * channels);
            for (tap, row) in taps.chunks_exact_mut(channels).enumerate() {
                let (r, s) = (tap / 3, tap % 3);
                for (c, value) in row.iter_mut().enumerate() {
                    *value = match flipped {
                        false => weight[(o * channels + c) * 9 + tap],
                        true => weight[(c * out_channels + o) * 9 + (2 - r) * 3 + (2 - s)],
                    };
                }
            }
            // G g, column by column: `columns[s][a]` is element (a, s).
            for s in 0..3 {
                let g: [&[f32]; 3] = from_fn(|r| &taps[(r * 3 + s) * channels..][..channels]);
                let out = &mut columns[s * 4 * channels..][..4 * channels];
                for (a, out) in out.chunks_exact_mut(channels).enumerate() {
                    for (c, out) in out.iter_mut().enumerate() {
                        *out = kernel_1d([g[0][c], g[1][c], g[2][c]])[a];
                    }
                }
            }
            // G^T on each of its rows.
            for a in 0..4 {
                let g: [&[f32]; 3] = from_fn(|s| &columns[(s * 4 + a) * channels..][..channels]);
                for b in 0..4 {
                    let out = &mut u[(a * 4 + b) * channels..][..channels];
                    for (c, out) in out.iter_mut().enumerate() {
                        *out = kernel_1d([g[0][c], g[1][c], g[2][c]])[b];
                    }
                }
            }
        },
    );
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::ops::ModuleOps;
    use burn::tensor::{Distribution, Tensor, Tolerance};

    fn random(shape: [usize; 4]) -> Tensor<Flex, 4> {
        Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    /// Input shape, output channels, padding, samples per chunk.
    type Case = ([usize; 4], usize, [usize; 2], Option<usize>);

    /// Shapes with odd and even sides, a map smaller than a tile, paddings 0, 1 and 2 and
    /// unequal ones; chunks of one sample, of several with a shorter last one, and the whole
    /// batch by default; small products and (the last) wide ones.
    const CASES: [Case; 7] = [
        ([3, 16, 9, 7], 17, [1, 1], Some(2)),
        ([2, 20, 8, 8], 16, [0, 0], Some(1)),
        ([2, 16, 5, 6], 18, [2, 1], None),
        ([1, 16, 1, 2], 16, [1, 2], None),
        ([7, 16, 4, 3], 16, [1, 0], Some(3)),
        ([1, 32, 33, 31], 40, [1, 1], None),
        ([2, 128, 40, 40], 128, [1, 1], None),
    ];

    /// The fused forward (scale, bias, residual, activation) is burn's direct convolution (of the
    /// scaled weight), add and activation.
    #[test]
    fn forward_is_burns_convolution() {
        for (case, (x_shape, out_channels, padding, chunk)) in CASES.into_iter().enumerate() {
            let options = ConvOptions::new([1, 1], padding, [1, 1], 1);
            let (x, weight) = (random(x_shape), random([out_channels, x_shape[1], 3, 3]));
            let bias = Tensor::<Flex, 1>::random(
                [out_channels],
                Distribution::Normal(0.0, 1.0),
                &Default::default(),
            );
            // A per-output-channel scale in the odd cases, against the weight scaled by it.
            let scale = (case % 2 == 1).then(|| {
                Tensor::<Flex, 1>::random(
                    [out_channels],
                    Distribution::Normal(1.0, 0.5),
                    &Default::default(),
                )
            });
            let scaled = match &scale {
                Some(scale) => weight.clone() * scale.clone().reshape([out_channels, 1, 1, 1]),
                None => weight.clone(),
            };
            let reference = burn::tensor::module::conv2d(
                x.clone(),
                scaled,
                Some(bias.clone()),
                options.clone(),
            );
            let residual = random(reference.dims());
            let reference = (reference + residual.clone()).clamp(0.0, 6.0);
            let scale = scale.map(|scale| scale.into_primitive().tensor());
            let ours = forward(
                &x.into_primitive().tensor(),
                &weight.into_primitive().tensor(),
                (scale.as_ref(), Some(&bias.into_primitive().tensor())),
                &options,
                (Some(&residual.into_primitive().tensor()), Activation::Relu6),
                (weights(case), chunk),
            );
            assert_eq!(ours.shape(), reference.shape(), "case {case}");
            ours.into_data()
                .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(2e-4));
        }
    }

    /// The weight transform from the cache in a third of the cases.
    fn weights(case: usize) -> Weights {
        match case % 3 {
            0 => Weights::Kept,
            _ => Weights::Fresh,
        }
    }

    /// A cached transform serves only the weight it was made from: the same tensor again, but
    /// not a weight changed in place (as an optimizer step changes one) nor a new weight.
    #[test]
    fn the_transform_cache_follows_the_weights() {
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let x = random([2, 64, 6, 5]).into_primitive().tensor();
        let conv = |weight: &FlexTensor| {
            let epilogue = (None, Activation::Identity);
            let ours = forward(
                &x,
                weight,
                (None, None),
                &options,
                epilogue,
                (Weights::Kept, None),
            );
            let reference = Flex::conv2d(x.clone(), weight.clone(), None, options.clone());
            ours.into_data()
                .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(2e-4));
        };
        let weight = random([64, 64, 3, 3]).into_primitive().tensor();
        conv(&weight);
        conv(&weight);
        let mut changed = weight.clone();
        for value in changed.storage_mut::<f32>().iter_mut().step_by(7) {
            *value = -2.0 * *value + 0.5;
        }
        conv(&changed);
        drop((weight, changed));
        conv(&random([64, 64, 3, 3]).into_primitive().tensor());
    }

    /// A transform is let go once its weight is dropped by everyone else, so that the weights of
    /// earlier training steps are not kept alive.
    #[test]
    fn the_transform_cache_lets_go_of_dropped_weights() {
        // A shape no other test uses: the cache is shared by the tests running beside this one.
        let shape = Shape::new([65, 66, 3, 3]);
        let x = random([1, 66, 4, 4]).into_primitive().tensor();
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let weight = random([65, 66, 3, 3]).into_primitive().tensor();
        let epilogue = (None, Activation::Identity);
        forward(
            &x,
            &weight,
            (None, None),
            &options,
            epilogue,
            (Weights::Kept, None),
        );
        assert!(TransformCache::kept_shapes().contains(&shape));
        drop(weight);
        assert!(!TransformCache::kept_shapes().contains(&shape));
    }

    /// The input and weight gradients are burn's.
    #[test]
    fn gradients_are_burns() {
        for (case, (x_shape, out_channels, padding, chunk)) in CASES.into_iter().enumerate() {
            let options = ConvOptions::new([1, 1], padding, [1, 1], 1);
            let (x, weight) = (random(x_shape), random([out_channels, x_shape[1], 3, 3]));
            let y = burn::tensor::module::conv2d(x.clone(), weight.clone(), None, options.clone());
            let (x, weight, dy) = (
                x.into_primitive().tensor(),
                weight.into_primitive().tensor(),
                random(y.dims()).into_primitive().tensor(),
            );
            let ours = input_grad(&x.shape(), &weight, &dy, &options, chunk);
            let reference =
                Flex::conv2d_x_backward(x.clone(), weight.clone(), dy.clone(), options.clone());
            assert_eq!(ours.shape(), reference.shape(), "case {case}: dX");
            ours.into_data()
                .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(2e-4));
            let ours = weight_grad(&x, &weight.shape(), &dy, &options, chunk);
            let reference = Flex::conv2d_weight_backward(x, weight, dy, options);
            assert_eq!(ours.shape(), reference.shape(), "case {case}: dW");
            ours.into_data()
                .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-3));
        }
    }

    /// Layers outside the transform's reach (strided, dilated, 5x5, narrow, padding 3) are left
    /// to im2col.
    #[test]
    fn only_wide_3x3_stride_1_layers_apply() {
        let x = Shape::new([2, 128, 8, 8]);
        let weight = Shape::new([128, 128, 3, 3]);
        let options = |stride, padding, dilation| ConvOptions::new(stride, padding, dilation, 1);
        let plain = options([1, 1], [1, 1], [1, 1]);
        assert!(applies(&x, &weight, &plain));
        assert!(applies(&x, &weight, &options([1, 1], [2, 0], [1, 1])));
        assert!(!applies(&x, &weight, &options([2, 1], [1, 1], [1, 1])));
        assert!(!applies(&x, &weight, &options([1, 1], [1, 1], [1, 2])));
        assert!(!applies(&x, &weight, &options([1, 1], [3, 1], [1, 1])));
        assert!(!applies(&x, &Shape::new([128, 128, 5, 5]), &plain));
        assert!(!applies(&x, &Shape::new([32, 128, 3, 3]), &plain));
        let narrow = Shape::new([2, 32, 8, 8]);
        assert!(!applies(&narrow, &Shape::new([128, 32, 3, 3]), &plain));
    }

    /// Through `ConvBackend`, a layer wide enough to take the transform gives burn's value and
    /// gradients.
    #[test]
    fn a_wide_layer_through_conv_backend_is_burns() {
        use crate::conv::ConvBackend;
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let (x, weight) = (random([2, 128, 6, 5]), random([130, 128, 3, 3]));
        assert!(applies(&x.shape(), &weight.shape(), &options));
        let reference =
            burn::tensor::module::conv2d(x.clone(), weight.clone(), None, options.clone());
        let dy = random(reference.dims());
        let (x, weight, dy) = (
            x.into_primitive().tensor(),
            weight.into_primitive().tensor(),
            dy.into_primitive().tensor(),
        );
        let ours = Flex::conv2d_tracked(x.clone(), weight.clone(), None, options.clone());
        ours.into_data()
            .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-3));
        let ours = Flex::conv2d_input_grad(x.clone(), weight.clone(), dy.clone(), options.clone());
        let reference =
            Flex::conv2d_x_backward(x.clone(), weight.clone(), dy.clone(), options.clone());
        ours.into_data()
            .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-3));
        let ours = Flex::conv2d_weight_grad(x.clone(), weight.clone(), dy.clone(), options.clone());
        let reference = Flex::conv2d_weight_backward(x, weight, dy, options);
        ours.into_data()
            .assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-3));
    }
}
