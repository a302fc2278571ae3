//! 3x3 stride-1 convolutions on Flex as Winograd's minimal filtering F(M x M, 3x3) (Lavin and
//! Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each `M x M` output tile is
//! `A^T [(G g G^T) ⊙ (B^T d B)] A` of its `N x N` input patch `d` (`N = M + 2`), so that summed
//! over the input channels the products are `N N` GEMMs `U_ξ [O, C] x V_ξ [C, tiles]`. The
//! forward takes F(4x4): 36 multiplies per tile and channel pair for 16 outputs where the direct
//! convolution takes 144, 4x fewer multiply-adds in the GEMMs (F(2x2): 2.25x), for the cost of
//! transforming the input and the output in passes that stay in cache.
//!
//! The input gradient of such a layer is the same convolution of the output gradient with the
//! kernels flipped and the channels swapped, padded by `2 - padding` ([`input_grad`]); the
//! weight gradient is the transform's own gradient through the kernel, `N N` GEMMs over the
//! tiles ([`weight_grad`]), in F(4x4) over many tiles and F(2x2) over few
//! ([`MIN_F4_WEIGHT_GRAD_TILES`]).
//!
//! The transforms run on [`Lanes`] of 16 values over rows as long as a chunk's tiles, compiled
//! for AVX-512 where the CPU has it ([`lanes_pass`]).
//!
//! Rounding: each output sums the same products in another order, through transforms that add
//! up to 6 inputs scaled by up to 8 before the multiply, so results differ from the direct
//! convolution's by about 1e-5 of the sums' scale (F(2x2): a few units in the last place); the
//! tests bound it.

use std::array::from_fn;
use std::collections::VecDeque;
use std::ops::{Add, Mul, Range, Sub};
use std::sync::{Arc, Mutex};

use burn::backend::flex::FlexTensor;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Shape, TensorData, TensorMetadata};
use rayon::prelude::*;

use super::{output_shape, par_fill_pieces, sample_chunks, Epilogue, EpilogueTensors, Scratch};
use crate::conv::Activation;
use crate::gemm::{matmul_into_serial, MatRef};
use crate::shape::{dims4, for_each_strided};

/// Channels on both sides below which im2col's GEMM is kept. With fewer, the GEMMs are too
/// shallow to pay for the transforms' passes over memory. In F(2x2) 64 was the least that paid
/// (the fifth round of issue 31 in docs/benchmarks.md); F(4x4)'s transforms are fewer values
/// per output, and the small CNN's 32 -> 64 @ 32 layer at batch 64 (ms, forward / input
/// gradient / weight gradient, im2col against F(4x4), `examples/time_conv_parts`, rounds
/// alternated) took 14.6-16.6 / 16.8-18.2 / 20.8-22.5 against 12.2-12.8 / 12.3-13.6 /
/// 15.0-16.1.
const MIN_CHANNELS: usize = 32;

/// Tiles of a chunk of samples (the fewest samples that reach it): enough for each GEMM to be
/// wide, few enough for the transformed input and products to stay in cache (a chunk of 32
/// samples of 8 x 8 maps, 128 -> 128 channels, 6.4 ms against 11.2 ms for the batch of 64 at
/// once; with 128 channels or more a 4 MiB cap on the buffers never chose a smaller chunk).
const MIN_CHUNK_TILES: usize = 512;

/// F(4x4) tiles over the batch from which the weight gradient takes F(4x4), not F(2x2). Its
/// sums `S [N N, O, C]` are 36 per channel pair against 16, written at every chunk and read
/// once more, and their GEMMs are as deep as the tiles are many, so F(4x4)'s fewer multiplies
/// pay only over many tiles. Weight gradients, ms, F(2x2) against F(4x4) (rounds alternated,
/// `examples/time_resnet50_convs` at batch 8 and `examples/time_conv_parts` at 64): ResNet-50's
/// 64 @ 56 (1,568 tiles) 9.0-9.5 against 7.4-9.4, 128 @ 28 (392) 6.9-7.3 against 7.1-7.9,
/// 256 @ 14 (128) 7.4-8.3 against 10.7-12.1, 512 @ 7 (32) 14.4-14.6 against 21.4-22.4; the
/// small CNN's 128 @ 8 (256) 9.1-10.3 against 7.9-8.3.
const MIN_F4_WEIGHT_GRAD_TILES: usize = 256;

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
    let layer = Layer::new(&x.shape(), out_channels, options.padding, 4);
    let make =
        || transformed_weight::<4, 6, F4>(weight.storage(), out_channels, layer.channels, false);
    // A weight copied to be made contiguous is a new buffer at every call: nothing to keep.
    let copied = !std::ptr::eq(given.storage::<f32>(), weight.storage::<f32>());
    let u = match weights {
        Weights::Kept if !copied => TransformCache::get(&weight, make),
        _ => Arc::new(make()),
    };
    let output = layer.convolve::<4, 6, F4>(x.storage(), &u, &epilogue, chunk);
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
    let layer = Layer::new(&output_grad.shape(), channels, padding, 4);
    debug_assert_eq!([layer.out_height, layer.out_width], [height, width]);
    let epilogue = Epilogue::identity(channels, height * width);
    let u = transformed_weight::<4, 6, F4>(weight.storage(), channels, layer.channels, true);
    let dx = layer.convolve::<4, 6, F4>(output_grad.storage(), &u, &epilogue, chunk);
    FlexTensor::from_data(TensorData::new(dx, x_shape.clone()))
}

/// `dW` of a layer that [`applies`], f32 ([`Layer::weight_grad`]): in F(4x4) tiles from
/// [`MIN_F4_WEIGHT_GRAD_TILES`] of them over the batch on, in F(2x2) tiles below.
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
    let (x_values, dy) = (x.storage(), output_grad.storage());
    let layer = Layer::new(&x.shape(), out_channels, options.padding, 4);
    debug_assert_eq!(
        [layer.out_height, layer.out_width],
        [output_grad.shape()[2], output_grad.shape()[3]]
    );
    let dw = if layer.batch * layer.tiles() >= MIN_F4_WEIGHT_GRAD_TILES {
        layer.weight_grad::<4, 6, F4>(x_values, dy, chunk)
    } else {
        let layer = Layer::new(&x.shape(), out_channels, options.padding, 2);
        layer.weight_grad::<2, 4, F2>(x_values, dy, chunk)
    };
    FlexTensor::from_data(TensorData::new(dw, weight_shape.clone()))
}

/// The planes a transform of [`Layer::transform_planes`] reads: `channels` per sample of
/// `height x width`, padded by `padding` on both sides.
#[derive(Clone, Copy)]
struct Plane {
    channels: usize,
    height: usize,
    width: usize,
    padding: [usize; 2],
}

/// The sizes of one Winograd convolution `[N, C, H, W] -> [N, O, H', W']` in tiles of side
/// `tile`.
struct Layer {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    out_height: usize,
    out_width: usize,
    padding: [usize; 2],
    /// The side of an output tile: `M` of the tiling the layer is computed with.
    tile: usize,
    /// Tiles per row and per column of the output.
    tiles_h: usize,
    tiles_w: usize,
}

impl Layer {
    fn new(x: &Shape, out_channels: usize, padding: [usize; 2], tile: usize) -> Self {
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
            tile,
            tiles_h: out_height.div_ceil(tile),
            tiles_w: out_width.div_ceil(tile),
        }
    }

    fn tiles(&self) -> usize {
        self.tiles_h * self.tiles_w
    }

    /// The whole output `[N, O, H', W']`, chunk of `chunk` samples by chunk (by default sized by
    /// [`MIN_CHUNK_TILES`]): the input transform `V [C, N N, tiles]`, the `N N` GEMMs into
    /// `M [N N, O, tiles]`, the output transform into `Y [O, M M, tiles]`, then per output plane
    /// its tiles laid out and the epilogue; the three buffers kept from chunk to chunk. `u` is the weight's transform ([`transformed_weight`]
    /// with the same tiling).
    fn convolve<const M: usize, const N: usize, T: ForwardTiling<M, N>>(
        &self,
        x: &[f32],
        u: &[f32],
        epilogue: &Epilogue,
        chunk: Option<usize>,
    ) -> Vec<f32> {
        debug_assert_eq!(self.tile, M);
        let (channels, out_channels, positions) = (self.channels, self.out_channels, N * N);
        let tiles = self.tiles();
        let chunk = self.samples_per_chunk(chunk);
        let stride = chunk * tiles;
        let mut v = Scratch::take(channels * positions * stride);
        let mut m = Scratch::take(positions * out_channels * stride);
        let mut ys = Scratch::take(out_channels * M * M * stride);
        let out_plane = self.out_height * self.out_width;
        // Every element is written by the output transform.
        let mut output = vec![0.0f32; self.batch * out_channels * out_plane];
        for samples in sample_chunks(self.batch, chunk) {
            let len = samples.len() * tiles;
            self.transform_inputs::<M, N, T>(x, samples.clone(), &mut v, stride);
            let u_at = |position| {
                let rows = [positions * channels, 1];
                MatRef::strided(u, [out_channels, channels], rows, position * channels)
            };
            let v_at = |position| {
                let rows = [positions * stride, 1];
                MatRef::strided(&v, [channels, len], rows, position * stride)
            };
            products(&mut m, (positions, stride), u_at, v_at, false);
            self.transform_outputs::<M, N, T>(&m, len, stride, &mut ys);
            let ys: &[f32] = &ys;
            let first = samples.start * out_channels;
            output[first * out_plane..(first + samples.len() * out_channels) * out_plane]
                .par_chunks_mut(out_plane)
                .enumerate()
                .for_each(|(index, out)| {
                    let (i, o) = (index / out_channels, index % out_channels);
                    let ys = &ys[o * M * M * stride..][..M * M * stride];
                    self.untile::<M>(ys, stride, i * tiles, out);
                    epilogue.apply_to_plane(first + index, out);
                });
        }
        output
    }

    /// `dW [O, C, 3, 3]` from the input `x` and the output gradient `dy`, chunk of samples by
    /// chunk: `S_ξ [O, C] += Ỹ_ξ [O, tiles] x V_ξ^T [tiles, C]` for the `N N` positions (`S`
    /// laid out `[N N, O, C]`), where `V` is the input transform of the forward and `Ỹ = A dY
    /// A^T` of each `M x M` output tile, then `G^T S G` for every kernel: the gradient of
    /// `A^T [(G g G^T) ⊙ V] A` through `g`.
    fn weight_grad<const M: usize, const N: usize, T: Tiling<M, N>>(
        &self,
        x: &[f32],
        dy: &[f32],
        chunk: Option<usize>,
    ) -> Vec<f32> {
        debug_assert_eq!(self.tile, M);
        let (channels, out_channels, positions) = (self.channels, self.out_channels, N * N);
        let tiles = self.tiles();
        let chunk = self.samples_per_chunk(chunk);
        let stride = chunk * tiles;
        let mut v = Scratch::take(channels * positions * stride);
        let mut y = Scratch::take(out_channels * positions * stride);
        let mut sums = Scratch::take(positions * out_channels * channels);
        for samples in sample_chunks(self.batch, chunk) {
            let accumulate = samples.start > 0;
            let len = samples.len() * tiles;
            self.transform_inputs::<M, N, T>(x, samples.clone(), &mut v, stride);
            self.transform_output_grads::<M, N, T>(dy, samples, &mut y, stride);
            let rows = [positions * stride, 1];
            let y_at = |position| MatRef::strided(&y, [out_channels, len], rows, position * stride);
            let v_at = |position| MatRef::strided(&v, [channels, len], rows, position * stride).t();
            products(&mut sums, (positions, channels), y_at, v_at, accumulate);
        }
        let (dw, _) = par_fill_pieces(
            out_channels * channels * 9,
            channels * 9,
            || (),
            |_, o, dw| {
                for (c, dw) in dw.chunks_exact_mut(9).enumerate() {
                    let at =
                        |a: usize, b: usize| sums[((a * N + b) * out_channels + o) * channels + c];
                    // G^T S, column by column, then G on each of its three rows.
                    let columns: [[f32; 3]; N] = from_fn(|b| T::kernel_grad(from_fn(|a| at(a, b))));
                    for (r, dw) in dw.chunks_exact_mut(3).enumerate() {
                        dw.copy_from_slice(&T::kernel_grad(from_fn(|b| columns[b][r])));
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

    /// `V [C, N N, stride]` of `samples` of `x`, sample `i` of the chunk at columns `i tiles..`:
    /// `B^T d B` of every tile's `N x N` patch `d` ([`Self::transform_planes`]).
    fn transform_inputs<const M: usize, const N: usize, T: Tiling<M, N>>(
        &self,
        x: &[f32],
        samples: Range<usize>,
        v: &mut [f32],
        stride: usize,
    ) {
        let plane = Plane {
            channels: self.channels,
            height: self.height,
            width: self.width,
            padding: self.padding,
        };
        self.transform_planes::<M, N, N>(x, plane, samples, (v, stride), T::input);
    }

    /// `Ỹ [O, N N, stride]` of `samples` of the output gradient `dy`, sample `i` of the chunk at
    /// columns `i tiles..`: `A dY A^T` of every `M x M` tile of `dY`, zeros past the plane's
    /// edges ([`Self::transform_planes`]).
    fn transform_output_grads<const M: usize, const N: usize, T: Tiling<M, N>>(
        &self,
        dy: &[f32],
        samples: Range<usize>,
        y: &mut [f32],
        stride: usize,
    ) {
        let plane = Plane {
            channels: self.out_channels,
            height: self.out_height,
            width: self.out_width,
            padding: [0, 0],
        };
        self.transform_planes::<M, M, N>(dy, plane, samples, (y, stride), T::output_grad);
    }

    /// `out [channels, N N, stride]` of `samples` of `planes`, sample `i` of the chunk at
    /// columns `i tiles..`, the channels in parallel: `f` along both axes of every tile's
    /// `P x P` patch (`P = N`, the patches overlapping, for the input transform; `P = M` for the
    /// output gradient's), one patch every `M` rows and columns of the padded plane, zeros past
    /// its edges. `f` runs down each row of tiles in passes over the padded rows, the patches'
    /// columns are gathered into rows of the chunk's tiles, and `f` runs along the patches' rows
    /// in passes over all the chunk's tiles at once: both in [`lanes_pass`], long enough to fill
    /// the vector registers even where a row holds two tiles.
    fn transform_planes<const M: usize, const P: usize, const N: usize>(
        &self,
        planes: &[f32],
        plane: Plane,
        samples: Range<usize>,
        (out, stride): (&mut [f32], usize),
        f: impl Fn([Lanes; P]) -> [Lanes; N] + Copy + Sync,
    ) {
        let (tiles, tiles_w) = (self.tiles(), self.tiles_w);
        let Plane {
            channels,
            height,
            width,
            padding: [pad_h, pad_w],
        } = plane;
        // A padded row: whole tiles, and the columns the last patch reads past them.
        let padded = M * tiles_w + P - M;
        let len = samples.len() * tiles;
        // Plane columns the padded row holds: [0, width) shifted right by the padding, cut at
        // its end (tiles past the output's last column read zeros).
        let copied = width.min(padded - pad_w);
        out.par_chunks_mut(N * N * stride)
            .enumerate()
            .for_each_init(
                // Kept by the thread between calls: zeroing a fresh one for every piece of
                // rayon's split took longer than the transform at 56 x 56.
                || Scratch::take((P + N) * padded + N * P * stride),
                |scratch, (c, out)| {
                    let (rows, rest) = scratch.split_at_mut(P * padded);
                    let (vertical, columns) = rest.split_at_mut(N * padded);
                    for (i, n) in samples.clone().enumerate() {
                        let image =
                            &planes[(n * channels + c) * height * width..][..height * width];
                        for th in 0..self.tiles_h {
                            for (r, row) in rows.chunks_exact_mut(padded).enumerate() {
                                let ih = (M * th + r) as isize - pad_h as isize;
                                row.fill(0.0);
                                if (0..height as isize).contains(&ih) {
                                    let source = &image[ih as usize * width..][..copied];
                                    row[pad_w..pad_w + copied].copy_from_slice(source);
                                }
                            }
                            let d = from_fn(|r| &rows[r * padded..][..padded]);
                            lanes_pass(padded, d, rows_of(vertical, padded, 0), f);
                            // Row `a` of the patch of tile `j` is `vertical[a]` at `M j..M j + P`:
                            // its column `t` goes to `columns[a P + t]`.
                            let column = i * tiles + th * tiles_w;
                            for (a, row) in vertical.chunks_exact(padded).enumerate() {
                                for t in 0..P {
                                    let out = &mut columns[(a * P + t) * stride + column..];
                                    let out = &mut out[..tiles_w];
                                    for_each_strided(out, &row[t..], M, |out, v| *out = v);
                                }
                            }
                        }
                    }
                    for a in 0..N {
                        let d = from_fn(|t| &columns[(a * P + t) * stride..][..len]);
                        let outs = rows_of(out, stride, a * N).map(|row| &mut row[..len]);
                        lanes_pass(len, d, outs, f);
                    }
                },
            );
    }

    /// `Y [O, M M, stride]`: `A^T M_o A` of every tile of the chunk (its first `len` columns)
    /// from the products `m [N N, O, stride]`, the output channels in parallel, in passes over
    /// all the chunk's tiles ([`lanes_pass`]): `A^T` down the columns, then `A` along the rows.
    fn transform_outputs<const M: usize, const N: usize, T: ForwardTiling<M, N>>(
        &self,
        m: &[f32],
        len: usize,
        stride: usize,
        ys: &mut [f32],
    ) {
        let block = self.out_channels * stride;
        ys.par_chunks_mut(M * M * stride).enumerate().for_each_init(
            || Scratch::take(N * M * stride),
            |columns, (o, ys)| {
                // `columns[k M + r]`: element (r, k) of A^T M.
                for k in 0..N {
                    let products = from_fn(|i| &m[(i * N + k) * block + o * stride..][..len]);
                    let outs = rows_of(columns, stride, k * M).map(|row| &mut row[..len]);
                    lanes_pass(len, products, outs, T::output);
                }
                for r in 0..M {
                    let c = from_fn(|k| &columns[(k * M + r) * stride..][..len]);
                    let outs = rows_of(ys, stride, r * M).map(|row| &mut row[..len]);
                    lanes_pass(len, c, outs, T::output);
                }
            },
        );
    }

    /// One output plane from its tiles: element (r, q) of tile `j` of tile row `th` is
    /// `ys[(r M + q) stride + first + th tiles_w + j]`, cut at the plane's edges.
    fn untile<const M: usize>(&self, ys: &[f32], stride: usize, first: usize, out: &mut [f32]) {
        let (tiles_w, width) = (self.tiles_w, self.out_width);
        for th in 0..self.tiles_h {
            let oh = M * th;
            for r in 0..M.min(self.out_height - oh) {
                let tiles: [&[f32]; M] =
                    from_fn(|q| &ys[(r * M + q) * stride + first + th * tiles_w..][..tiles_w]);
                let row = &mut out[(oh + r) * width..][..width];
                let mut groups = row.chunks_exact_mut(M);
                for (j, group) in groups.by_ref().enumerate() {
                    for (out, tile) in group.iter_mut().zip(tiles) {
                        *out = tile[j];
                    }
                }
                // The last tile, cut at the plane's edge.
                for (out, tile) in groups.into_remainder().iter_mut().zip(tiles) {
                    *out = tile[tiles_w - 1];
                }
            }
        }
    }
}

/// `COUNT` rows of `len` values of `values` from row `first` on: disjoint mutable rows of a
/// row-major matrix, for a pass that writes several at once.
fn rows_of<const COUNT: usize>(
    values: &mut [f32],
    len: usize,
    first: usize,
) -> [&mut [f32]; COUNT] {
    let mut rows = values[first * len..].chunks_mut(len);
    from_fn(|_| rows.next().expect("rows within the matrix"))
}

/// Values of one row of a transform's pass: an AVX-512 register's worth.
const LANES: usize = 16;

/// [`LANES`] values of one row of a pass, on which a tiling's transform runs element-wise, so
/// that each of its rows stays in a vector register.
#[derive(Clone, Copy)]
struct Lanes([f32; LANES]);

impl Add for Lanes {
    type Output = Self;
    #[inline(always)]
    fn add(mut self, other: Self) -> Self {
        for (value, other) in self.0.iter_mut().zip(other.0) {
            *value += other;
        }
        self
    }
}

impl Sub for Lanes {
    type Output = Self;
    #[inline(always)]
    fn sub(mut self, other: Self) -> Self {
        for (value, other) in self.0.iter_mut().zip(other.0) {
            *value -= other;
        }
        self
    }
}

impl Mul<f32> for Lanes {
    type Output = Self;
    #[inline(always)]
    fn mul(mut self, factor: f32) -> Self {
        for value in &mut self.0 {
            *value *= factor;
        }
        self
    }
}

/// What a tiling's transforms compute with: single values or [`Lanes`].
trait Value: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<f32, Output = Self> {}

impl Value for f32 {}
impl Value for Lanes {}

/// `outs = f(sources)` element by element over the first `len` values of each, [`LANES`] at
/// a time (the last block padded with zeros and cut on the way out): compiled for AVX-512 where
/// the CPU has it, for the crate's baseline (SSE2) elsewhere. Both give the same values, bit for
/// bit: the same operations in the same order, only wider.
#[inline(always)]
fn lanes_pass<const K: usize, const R: usize>(
    len: usize,
    sources: [&[f32]; K],
    outs: [&mut [f32]; R],
    f: impl Fn([Lanes; K]) -> [Lanes; R],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { lanes_pass_avx512(len, sources, outs, f) };
    }
    lanes_pass_baseline(len, sources, outs, f)
}

/// [`lanes_pass_baseline`] compiled for AVX-512F: one instruction per operation on [`Lanes`]
/// where SSE2 takes four.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn lanes_pass_avx512<const K: usize, const R: usize>(
    len: usize,
    sources: [&[f32]; K],
    outs: [&mut [f32]; R],
    f: impl Fn([Lanes; K]) -> [Lanes; R],
) {
    lanes_pass_baseline(len, sources, outs, f)
}

/// [`lanes_pass`] as the crate's target compiles it.
#[inline(always)]
fn lanes_pass_baseline<const K: usize, const R: usize>(
    len: usize,
    sources: [&[f32]; K],
    mut outs: [&mut [f32]; R],
    f: impl Fn([Lanes; K]) -> [Lanes; R],
) {
    let whole = len - len % LANES;
    let mut block = [Lanes([0.0; LANES]); K];
    for start in (0..whole).step_by(LANES) {
        for (lanes, source) in block.iter_mut().zip(sources) {
            lanes.0.copy_from_slice(&source[start..start + LANES]);
        }
        for (out, values) in outs.iter_mut().zip(f(block)) {
            out[start..start + LANES].copy_from_slice(&values.0);
        }
    }
    if whole < len {
        let rest = len - whole;
        block = [Lanes([0.0; LANES]); K];
        for (lanes, source) in block.iter_mut().zip(sources) {
            lanes.0[..rest].copy_from_slice(&source[whole..len]);
        }
        for (out, values) in outs.iter_mut().zip(f(block)) {
            out[whole..len].copy_from_slice(&values.0[..rest]);
        }
    }
}

/// The `positions` products `dst_ξ = lhs(ξ) x rhs(ξ)` (or `+=` when `accumulate`) into `dst`,
/// laid out `[positions, rows, row_stride]`: `dst_ξ` is `[rows, cols]` with rows `row_stride`
/// apart from `ξ rows row_stride`. The products run side by side on rayon's threads, each whole
/// on one: one fork and join for them all (letting each GEMM spread itself was one per GEMM, and
/// a tenth of a layer's time went to threads waiting), and each element's sum is made by one
/// thread in an order that does not depend on the number of threads.
fn products<'a>(
    dst: &mut [f32],
    (positions, row_stride): (usize, usize),
    lhs: impl Fn(usize) -> MatRef<'a> + Sync,
    rhs: impl Fn(usize) -> MatRef<'a> + Sync,
    accumulate: bool,
) {
    let [rows, _] = lhs(0).shape();
    let block = rows * row_stride;
    dst[..positions * block]
        .par_chunks_mut(block)
        .enumerate()
        .for_each(|(position, dst)| {
            matmul_into_serial(dst, row_stride, lhs(position), rhs(position), accumulate);
        });
}

/// A Winograd tiling F(M x M, 3x3): output tiles of side `M` from input patches of side
/// `N = M + 2`, each 2-D transform being its 1-D one along both axes. These are the transforms
/// of the weight gradient; [`ForwardTiling`] adds the forward's.
trait Tiling<const M: usize, const N: usize> {
    /// `B^T d`: the input transform of a column of `N`.
    fn input<V: Value>(d: [V; N]) -> [V; N];
    /// `A y`: the output gradient's transform of a column of `M`.
    fn output_grad<V: Value>(y: [V; M]) -> [V; N];
    /// `G^T s`: the kernel gradient's transform of a column of `N`.
    fn kernel_grad(s: [f32; N]) -> [f32; 3];
}

/// A tiling the forward (and the input gradient, a forward) runs in.
trait ForwardTiling<const M: usize, const N: usize>: Tiling<M, N> {
    /// `A^T m`: the output transform of a column of `N` products.
    fn output<V: Value>(m: [V; N]) -> [V; M];
    /// `G g`: the kernel transform of a column of three taps.
    fn kernel(g: [f32; 3]) -> [f32; N];
}

/// F(2x2, 3x3), Lavin and Gray's matrices (interpolation points 0, 1, -1 and infinity): the
/// weight gradient's tiling over few tiles ([`MIN_F4_WEIGHT_GRAD_TILES`]).
struct F2;

impl Tiling<2, 4> for F2 {
    #[inline(always)]
    fn input<V: Value>([d0, d1, d2, d3]: [V; 4]) -> [V; 4] {
        [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
    }

    #[inline(always)]
    fn output_grad<V: Value>([y0, y1]: [V; 2]) -> [V; 4] {
        [y0, y0 + y1, y0 - y1, y1 * -1.0]
    }

    fn kernel_grad([s0, s1, s2, s3]: [f32; 4]) -> [f32; 3] {
        [s0 + 0.5 * (s1 + s2), 0.5 * (s1 - s2), 0.5 * (s1 + s2) + s3]
    }
}

/// F(4x4, 3x3) at the points 0, 1, -1, 1/2, -2 and infinity: 36 multiplies per tile and channel
/// pair for 16 outputs (the direct convolution's 144, F(2x2)'s 64). Those points rather than
/// Lavin and Gray's 0, ±1, ±2 keep the rounding error lower (Barabasz et al., "Error Analysis
/// and Improving the Accuracy of Winograd Convolution for Deep Neural Networks", 2020): in f32
/// over 128 channels of unit normals, the largest error of 4,800 outputs was 3.4e-4 against
/// 1.2e-3 (`benches/winograd_points.py`, which also solves for these matrices exactly).
struct F4;

impl Tiling<4, 6> for F4 {
    #[inline(always)]
    fn input<V: Value>([d0, d1, d2, d3, d4, d5]: [V; 6]) -> [V; 6] {
        [
            d0 - d1 * 1.5 - d2 * 2.0 + d3 * 1.5 + d4,
            d2 * 0.5 + d3 * 2.5 + d4 - d1,
            d1 - d2 * 2.5 + d3 * 0.5 + d4,
            d3 * 2.0 + d4 - d1 * 2.0 - d2,
            d1 * 0.5 - d2 - d3 * 0.5 + d4,
            d1 - d2 * 1.5 - d3 * 2.0 + d4 * 1.5 + d5,
        ]
    }

    #[inline(always)]
    fn output_grad<V: Value>([y0, y1, y2, y3]: [V; 4]) -> [V; 6] {
        [
            y0,
            y0 + y1 + y2 + y3,
            y0 - y1 + y2 - y3,
            y0 + y1 * 0.5 + y2 * 0.25 + y3 * 0.125,
            y0 - y1 * 2.0 + y2 * 4.0 - y3 * 8.0,
            y3,
        ]
    }

    fn kernel_grad([s0, s1, s2, s3, s4, s5]: [f32; 6]) -> [f32; 3] {
        [
            s0 + (s1 - s2) / 3.0 - (16.0 * s3 - s4) / 15.0,
            (s1 + s2) / 3.0 - (8.0 * s3 + 2.0 * s4) / 15.0,
            (s1 - s2) / 3.0 - (4.0 * s3 - 4.0 * s4) / 15.0 + s5,
        ]
    }
}

impl ForwardTiling<4, 6> for F4 {
    #[inline(always)]
    fn output<V: Value>([m0, m1, m2, m3, m4, m5]: [V; 6]) -> [V; 4] {
        [
            m0 + m1 + m2 + m3 + m4,
            m1 - m2 + m3 * 0.5 - m4 * 2.0,
            m1 + m2 + m3 * 0.25 + m4 * 4.0,
            m1 - m2 + m3 * 0.125 - m4 * 8.0 + m5,
        ]
    }

    fn kernel([g0, g1, g2]: [f32; 3]) -> [f32; 6] {
        [
            g0,
            (g0 + g1 + g2) / 3.0,
            (g1 - g0 - g2) / 3.0,
            -(16.0 * g0 + 8.0 * g1 + 4.0 * g2) / 15.0,
            (g0 - 2.0 * g1 + 4.0 * g2) / 15.0,
            g2,
        ]
    }
}

/// `U [O, N N, C]`: `G g G^T` of every kernel `g` (3x3) from output channel `o` to input
/// channel `c`. `weight` is `[O, C, 3, 3]`, or `[C, O, 3, 3]` read flipped in both axes when
/// `flipped`.
///
/// Training transforms the weights at every step (inference keeps them, [`TransformCache`]), so
/// this is a pass per output channel over contiguous input channels: its 9 taps gathered into
/// rows of `C`, `G` down the kernel's columns into `3 N` rows, `G^T` along them into `U`'s
/// `N N`.
fn transformed_weight<const M: usize, const N: usize, T: ForwardTiling<M, N>>(
    weight: &[f32],
    out_channels: usize,
    channels: usize,
    flipped: bool,
) -> Vec<f32> {
    // Zeroed piece by piece by the threads that fill them: 36 MiB for 512 channels each way.
    let (u, _) = par_fill_pieces(
        out_channels * N * N * channels,
        N * N * channels,
        || vec![0.0f32; (9 + 3 * N) * channels],
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
            // G g, column by column: `columns[s N + a]` is element (a, s).
            for s in 0..3 {
                let g: [&[f32]; 3] = from_fn(|r| &taps[(r * 3 + s) * channels..][..channels]);
                let out = &mut columns[s * N * channels..][..N * channels];
                for (a, out) in out.chunks_exact_mut(channels).enumerate() {
                    for (c, out) in out.iter_mut().enumerate() {
                        *out = T::kernel([g[0][c], g[1][c], g[2][c]])[a];
                    }
                }
            }
            // G^T on each of its rows.
            for a in 0..N {
                let g: [&[f32]; 3] = from_fn(|s| &columns[(s * N + a) * channels..][..channels]);
                for b in 0..N {
                    let out = &mut u[(a * N + b) * channels..][..channels];
                    for (c, out) in out.iter_mut().enumerate() {
                        *out = T::kernel([g[0][c], g[1][c], g[2][c]])[b];
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
    use burn::tensor::{Distribution, Tensor};

    fn random(shape: [usize; 4]) -> Tensor<Flex, 4> {
        Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    /// `ours` is `reference` up to F(4x4)'s rounding: every element within 1e-4 of `scale`, the
    /// root mean square of the sums the layer makes. The transforms round sums of up to 36
    /// products scaled by up to 8, so the error follows the sums' scale, not each output's size
    /// (in these tests the largest was 1.7e-5 of it; `benches/winograd_points.py` measures it
    /// too); a wrong coefficient or tile is off by the scale itself.
    fn assert_rounded(ours: TensorData, reference: TensorData, scale: f64, what: &str) {
        let ours = ours.to_vec::<f32>().expect("f32 values");
        let reference = reference.to_vec::<f32>().expect("f32 values");
        assert_eq!(ours.len(), reference.len(), "{what}");
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(&a, &b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-4 * scale,
            "{what}: off by {worst:e}, scale {scale:e}"
        );
    }

    /// The root mean square of `values`.
    fn root_mean_square(values: &TensorData) -> f64 {
        let values = values.to_vec::<f32>().expect("f32 values");
        let squares: f64 = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        (squares / values.len() as f64).sqrt()
    }

    /// Input shape, output channels, padding, samples per chunk.
    type Case = ([usize; 4], usize, [usize; 2], Option<usize>);

    /// Shapes with odd and even sides, a map smaller than a tile, paddings 0, 1 and 2 and
    /// unequal ones; chunks of one sample, of several with a shorter last one, and the whole
    /// batch by default; small products and wide ones; the last with enough tiles for the
    /// weight gradient's F(4x4) ([`MIN_F4_WEIGHT_GRAD_TILES`]), the others take F(2x2).
    const CASES: [Case; 8] = [
        ([3, 16, 9, 7], 17, [1, 1], Some(2)),
        ([2, 20, 8, 8], 16, [0, 0], Some(1)),
        ([2, 16, 5, 6], 18, [2, 1], None),
        ([1, 16, 1, 2], 16, [1, 2], None),
        ([7, 16, 4, 3], 16, [1, 0], Some(3)),
        ([1, 32, 33, 31], 40, [1, 1], None),
        ([2, 128, 40, 40], 128, [1, 1], None),
        ([2, 16, 62, 64], 17, [1, 1], Some(1)),
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
            let reference = reference + residual.clone();
            // The rounding follows the sums' scale, which the clamp would hide.
            let sums = root_mean_square(&reference.to_data());
            let reference = reference.clamp(0.0, 6.0);
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
            let what = format!("case {case}");
            assert_rounded(ours.into_data(), reference.into_data(), sums, &what);
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
            let reference = reference.into_data();
            let scale = root_mean_square(&reference);
            assert_rounded(ours.into_data(), reference, scale, "cached");
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
            let what = format!("case {case}: dX");
            let reference = reference.into_data();
            let scale = root_mean_square(&reference);
            assert_rounded(ours.into_data(), reference, scale, &what);
            let ours = weight_grad(&x, &weight.shape(), &dy, &options, chunk);
            let reference = Flex::conv2d_weight_backward(x, weight, dy, options);
            assert_eq!(ours.shape(), reference.shape(), "case {case}: dW");
            let what = format!("case {case}: dW");
            let reference = reference.into_data();
            let scale = root_mean_square(&reference);
            assert_rounded(ours.into_data(), reference, scale, &what);
        }
    }

    /// A pass over lanes computes each element as the transform on single values does, bit for
    /// bit, on both compilations (AVX-512 where the CPU has it, the baseline), the last block
    /// short.
    #[test]
    fn lanes_passes_are_the_transforms_element_by_element() {
        let len = 3 * LANES + 5;
        let values = random([6, len, 1, 1])
            .into_data()
            .to_vec::<f32>()
            .expect("f32 values");
        let sources: [&[f32]; 6] = from_fn(|k| &values[k * len..][..len]);
        let column = |j: usize| from_fn(|k| sources[k][j]);
        let mut dispatched = vec![f32::NAN; 6 * len];
        lanes_pass(len, sources, rows_of(&mut dispatched, len, 0), F4::input);
        let mut baseline = vec![f32::NAN; 4 * len];
        lanes_pass_baseline(len, sources, rows_of(&mut baseline, len, 0), F4::output);
        for j in 0..len {
            let (input, output) = (F4::input(column(j)), F4::output(column(j)));
            for (a, value) in input.into_iter().enumerate() {
                assert_eq!(
                    dispatched[a * len + j].to_bits(),
                    value.to_bits(),
                    "B^T {a}, {j}"
                );
            }
            for (a, value) in output.into_iter().enumerate() {
                assert_eq!(
                    baseline[a * len + j].to_bits(),
                    value.to_bits(),
                    "A^T {a}, {j}"
                );
            }
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
        assert!(!applies(&x, &Shape::new([16, 128, 3, 3]), &plain));
        let narrow = Shape::new([2, 16, 8, 8]);
        assert!(!applies(&narrow, &Shape::new([128, 16, 3, 3]), &plain));
        let small_cnn_conv2 = Shape::new([64, 32, 32, 32]);
        assert!(applies(
            &small_cnn_conv2,
            &Shape::new([64, 32, 3, 3]),
            &plain
        ));
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
        let reference = reference.into_data();
        let scale = root_mean_square(&reference);
        assert_rounded(ours.into_data(), reference, scale, "forward");
        let ours = Flex::conv2d_input_grad(x.clone(), weight.clone(), dy.clone(), options.clone());
        let reference =
            Flex::conv2d_x_backward(x.clone(), weight.clone(), dy.clone(), options.clone());
        let reference = reference.into_data();
        let scale = root_mean_square(&reference);
        assert_rounded(ours.into_data(), reference, scale, "dX");
        let ours = Flex::conv2d_weight_grad(x.clone(), weight.clone(), dy.clone(), options.clone());
        let reference = Flex::conv2d_weight_backward(x, weight, dy, options).into_data();
        let scale = root_mean_square(&reference);
        assert_rounded(ours.into_data(), reference, scale, "dW");
    }
}
