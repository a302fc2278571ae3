//! New activation-sized buffers filled in parallel, each piece zeroed by the thread that fills
//! it.
//!
//! A kernel that writes a fresh output plane by plane on rayon's threads needs the buffer
//! initialised first. `vec![0.0; len]` (or a `resize`) zeroes all of it on the calling thread:
//! one more pass over the whole activation, serial, before the parallel one (4-5 % of a
//! ResNet-50 training step on 2 cores in `perf`, and most of a depthwise input gradient at
//! 112 px). Here each piece is zeroed by the thread that then writes it, while it is in cache.
//! (With [`crate::allocator::keep_freed_memory`] a training step reuses the previous step's
//! pages, so the threads do not fault fresh pages in concurrently; without it, a first touch
//! from two threads is slower than from one.)
//!
//! [`contiguous`] copies a strided view (a padding's gradient) into a new activation that way,
//! row by row. [`Unwritten`] is an output that is not zeroed at all, because a GEMM or a copy
//! writes each of its pieces whole; it checks that every piece was written before it hands the
//! vector on.
//!
//! Initialising through `MaybeUninit` and handing the piece on as `&mut [f32]` takes `unsafe`:
//! with `gemm.rs`, `allocator.rs` and one call in `conv/flex/winograd.rs` one of the
//! workspace's four places of `unsafe`.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData, TensorMetadata};
use rayon::prelude::*;

use crate::gemm::{matmul_into_unwritten, MatRef};
use crate::shape::dims4;

/// A new `len`-long vector written in `piece`-long pieces in parallel: piece `i` is zeroed,
/// then handed to `fill(state, i, piece)` on the same thread (the last piece may be shorter);
/// `init` makes each rayon job's `state` (scratch buffers). Returns the vector and what `fill`
/// returned for each piece, in order.
pub(crate) fn par_fill_pieces<S, T: Send>(
    len: usize,
    piece: usize,
    init: impl Fn() -> S + Sync + Send,
    fill: impl Fn(&mut S, usize, &mut [f32]) -> T + Sync + Send,
) -> (Vec<f32>, Vec<T>) {
    if len == 0 || piece == 0 {
        return (vec![0.0; len], Vec::new());
    }
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let returned = out.spare_capacity_mut()[..len]
        .par_chunks_mut(piece)
        .enumerate()
        .map_init(init, |state, (i, chunk)| {
            chunk.fill(MaybeUninit::new(0.0));
            // SAFETY: every element of `chunk` was initialised on the line above, and
            // `MaybeUninit<f32>` has the layout of `f32`.
            let chunk = unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) };
            fill(state, i, chunk)
        })
        .collect();
    // SAFETY: the chunks cover the first `len` elements of the spare capacity, and each was
    // initialised before `fill` saw it; had a `fill` panicked, the panic would have left this
    // function with the length still 0.
    unsafe { out.set_len(len) };
    (out, returned)
}

/// `t` as a contiguous tensor. An f32 4-D view whose rows lie contiguous in a larger buffer (a
/// slice: the gradient of a padding is one) is copied row by row, in parallel; burn-flex's
/// `to_contiguous` walks such a view element by element through its strides, which was 8 % of
/// EfficientNet-Lite0's training step (the gradients of its four "same"-padded stride-2
/// layers, on their way into BatchNorm's backward). Anything else is `to_contiguous`'s.
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    let layout = t.layout();
    let strides = layout.strides();
    let rows_contiguous = t.dtype() == DType::F32
        && strides.len() == 4
        && strides[3] == 1
        && strides.iter().all(|&s| s >= 0);
    if t.is_contiguous() || !rows_contiguous {
        return t.to_contiguous();
    }
    let shape = t.shape();
    let [_, channels, height, width] = dims4(&shape);
    let strides: Vec<usize> = strides.iter().map(|&s| s as usize).collect();
    let offset = layout.start_offset();
    let source: &[f32] = t.storage();
    let (values, _) = par_fill_pieces(
        shape.num_elements(),
        width,
        || (),
        |_, row, out| {
            let (plane, r) = (row / height, row % height);
            let (n, c) = (plane / channels, plane % channels);
            let start = offset + n * strides[0] + c * strides[1] + r * strides[2];
            out.copy_from_slice(&source[start..start + width]);
        },
    );
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A new vector of `pieces x piece` values, each piece written whole, by a GEMM or a copy
/// ([`Piece`]), before anything reads it: a convolution's output. `vec![0.0; len]` zeroed it
/// first for nothing, a pass over every output (2 % of ResNet-50's inference in `perf`).
pub(crate) struct Unwritten {
    values: Vec<f32>,
    piece: usize,
    /// Whether each piece has been written.
    written: Vec<AtomicBool>,
}

impl Unwritten {
    pub(crate) fn new(pieces: usize, piece: usize) -> Self {
        let len = pieces
            .checked_mul(piece)
            .expect("a buffer's length overflows");
        Self {
            values: Vec::with_capacity(len),
            piece,
            written: (0..pieces).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Pieces `range` (counted in pieces), each to be written by the [`Piece`] method that
    /// consumes it.
    pub(crate) fn pieces(&mut self, range: std::ops::Range<usize>) -> Vec<Piece<'_>> {
        let Self {
            values,
            piece,
            written,
        } = self;
        let len = written.len() * *piece;
        let flags = &written[range.clone()];
        if *piece == 0 {
            return flags
                .iter()
                .map(|written| Piece {
                    values: &mut [],
                    written,
                })
                .collect();
        }
        values.spare_capacity_mut()[..len][range.start * *piece..range.end * *piece]
            .chunks_mut(*piece)
            .zip(flags)
            .map(|(values, written)| Piece { values, written })
            .collect()
    }

    /// The vector, once every piece has been written.
    ///
    /// # Panics
    /// If a piece was not written (a bug of the caller's, caught before anything reads it).
    pub(crate) fn finish(mut self) -> Vec<f32> {
        let unwritten = self
            .written
            .iter()
            .filter(|w| !w.load(Ordering::Acquire))
            .count();
        assert_eq!(unwritten, 0, "pieces of an output left unwritten");
        // SAFETY: piece `i` is the values `i piece..(i + 1) piece` of the capacity, and its
        // flag is set only by a `Piece` method after it has written all of them; every flag
        // is set, so the first `pieces x piece` values are initialised.
        unsafe { self.values.set_len(self.written.len() * self.piece) };
        self.values
    }
}

/// One piece of an [`Unwritten`] vector, written whole by the method that consumes it, which
/// hands it back initialised.
pub(crate) struct Piece<'a> {
    values: &'a mut [MaybeUninit<f32>],
    written: &'a AtomicBool,
}

impl<'a> Piece<'a> {
    /// `lhs x rhs`, `[m, n]` with `m n` the piece's length.
    pub(crate) fn product(self, lhs: MatRef<'_>, rhs: MatRef<'_>) -> &'a mut [f32] {
        let [m, _] = lhs.shape();
        let [_, n] = rhs.shape();
        assert_eq!(m * n, self.values.len(), "a product the size of its piece");
        let values = matmul_into_unwritten(self.values, lhs, rhs);
        self.written.store(true, Ordering::Release);
        values
    }

    /// A copy of `source`, as long as the piece.
    pub(crate) fn copy_of(self, source: &[f32]) -> &'a mut [f32] {
        assert_eq!(
            source.len(),
            self.values.len(),
            "a copy the size of its piece"
        );
        for (value, &s) in self.values.iter_mut().zip(source) {
            value.write(s);
        }
        self.written.store(true, Ordering::Release);
        // SAFETY: every element was written above; `MaybeUninit<f32>` has the layout of `f32`.
        unsafe { &mut *(self.values as *mut [MaybeUninit<f32>] as *mut [f32]) }
    }
}

/// Scratch buffers a thread keeps between calls: at most this many.
const KEPT_SCRATCH: usize = 4;

/// The largest scratch buffer a thread keeps (values; 8 MiB). Larger ones go back to the
/// allocator, which serves the next call's from the memory it keeps: several threads each
/// keeping four buffers of a 448 px layer's size (the weight gradient's chunks run side by
/// side) had ResNet-50's 448 px training step peak 12 % higher.
const KEPT_SCRATCH_LEN: usize = 1 << 21;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A scratch buffer of the calling thread, returned to it when dropped: an im2col matrix, a
/// Winograd transform. Its values are left from earlier calls (zeros only past the longest
/// length the buffer has had), so the caller writes every element before it reads it. A
/// convolution takes two or three of these per call; fresh ones were zeroed in full every time
/// (3 % of ResNet-50's inference in `perf`), and a large fresh one faults its pages in again.
pub(crate) struct Scratch {
    /// Every value the buffer has held; the first `len` are this scratch's.
    values: Vec<f32>,
    len: usize,
}

impl Scratch {
    /// `len` values (see the type's docs on what they hold), in the smallest kept buffer that
    /// holds them, else in the longest grown: kept buffers of several sizes (a convolution's
    /// transform and its threads' rows) then stop zeroing again what they had before.
    pub(crate) fn take(len: usize) -> Self {
        let mut values = SCRATCH
            .with(|kept| {
                let mut kept = kept.borrow_mut();
                let fits = (kept.iter().enumerate())
                    .filter(|(_, values)| values.len() >= len)
                    .min_by_key(|(_, values)| values.len());
                let chosen = fits
                    .or_else(|| (kept.iter().enumerate()).max_by_key(|(_, values)| values.len()));
                chosen
                    .map(|(index, _)| index)
                    .map(|index| kept.swap_remove(index))
            })
            .unwrap_or_default();
        if values.len() < len {
            values.resize(len, 0.0);
        }
        Self { values, len }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.values[..self.len]
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.values[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let values = std::mem::take(&mut self.values);
        SCRATCH.with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.len() < KEPT_SCRATCH && values.capacity() <= KEPT_SCRATCH_LEN {
                kept.push(values);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_is_reused_and_cut_or_grown_to_the_length_asked() {
        {
            let mut first = Scratch::take(6);
            assert_eq!(&first[..], [0.0; 6]);
            first.fill(7.0);
        }
        // The same buffer again: shorter, then longer (zeros only past its first six).
        {
            let mut shorter = Scratch::take(4);
            assert_eq!(&shorter[..], [7.0; 4]);
            shorter.fill(3.0);
        }
        let longer = Scratch::take(8);
        assert_eq!(&longer[..], [3.0, 3.0, 3.0, 3.0, 7.0, 7.0, 0.0, 0.0]);
        // Two at once are two buffers.
        let mut other = Scratch::take(8);
        other.fill(1.0);
        assert_eq!(longer[0], 3.0);
        drop((longer, other));
        // The smallest buffer that holds the length asked: one of the eights, not the ten grown
        // from the other.
        let mut longest = Scratch::take(10);
        longest.fill(5.0);
        drop(longest);
        assert_ne!(Scratch::take(5)[0], 5.0);
    }

    #[test]
    fn unwritten_pieces_end_as_their_products_and_copies() {
        // Three pieces of 2 x 2: a product, a copy, a product; the middle one handed out alone.
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 2.0, 0.0]);
        let (lhs, rhs) = (MatRef::row_major(&a, 2, 2), MatRef::row_major(&b, 2, 2));
        let mut out = Unwritten::new(3, 4);
        let [first, _, third] = <[Piece; 3]>::try_from(out.pieces(0..3)).ok().unwrap();
        assert_eq!(first.product(lhs, rhs), [4.5, -1.0, 9.5, -3.0]);
        third.product(rhs, lhs);
        let [second] = <[Piece; 1]>::try_from(out.pieces(1..2)).ok().unwrap();
        second.copy_of(&[7.0, 8.0, 9.0, 10.0]);
        assert_eq!(
            out.finish(),
            [4.5, -1.0, 9.5, -3.0, 7.0, 8.0, 9.0, 10.0, -2.5, -3.0, 2.0, 4.0]
        );
    }

    #[test]
    #[should_panic(expected = "pieces of an output left unwritten")]
    fn an_output_with_a_piece_left_unwritten_is_never_read() {
        let mut out = Unwritten::new(2, 3);
        let [first, _] = <[Piece; 2]>::try_from(out.pieces(0..2)).ok().unwrap();
        first.copy_of(&[1.0, 2.0, 3.0]);
        out.finish();
    }

    #[test]
    fn every_piece_is_zeroed_then_filled_in_order() {
        // 10 in pieces of 4: 4, 4, 2. Each piece writes its index to its first half only, so
        // the rest shows the zeroing.
        let (out, returned) = par_fill_pieces(
            10,
            4,
            || (),
            |_, i, piece| {
                let half = piece.len() / 2;
                piece[..half].fill(i as f32 + 1.0);
                piece.len()
            },
        );
        assert_eq!(out, [1., 1., 0., 0., 2., 2., 0., 0., 3., 0.]);
        assert_eq!(returned, [4, 4, 2]);
    }

    #[test]
    fn an_empty_buffer_or_piece_gives_zeros() {
        assert_eq!(
            par_fill_pieces(0, 4, || (), |_, _, _| 1).0,
            Vec::<f32>::new()
        );
        let (out, returned) = par_fill_pieces(3, 0, || (), |_, _, _| 1);
        assert_eq!((out, returned), (vec![0.0; 3], vec![]));
    }

    #[test]
    fn a_sliced_view_is_copied_as_burn_copies_it() {
        use burn::backend::Flex;
        use burn::tensor::ops::FloatTensorOps;
        use burn::tensor::Shape;
        let values: Vec<f32> = (0..2 * 3 * 5 * 6).map(|v| v as f32).collect();
        let whole = FlexTensor::from_data(TensorData::new(values, Shape::new([2, 3, 5, 6])));
        // Channels 1..3, rows 1..4, columns 2..6: a view with the whole tensor's strides.
        let view = Flex::float_slice(
            whole,
            &[
                burn::tensor::Slice::from(0..2),
                burn::tensor::Slice::from(1..3),
                burn::tensor::Slice::from(1..4),
                burn::tensor::Slice::from(2..6),
            ],
        );
        assert!(!view.is_contiguous(), "the test needs a strided view");
        let copied = contiguous(&view);
        assert!(copied.is_contiguous());
        assert_eq!(copied.shape(), view.shape());
        assert_eq!(
            copied.into_data().to_vec::<f32>().unwrap(),
            view.to_contiguous().into_data().to_vec::<f32>().unwrap()
        );
    }
}
