//! f32 matrix products written straight into a caller's buffer, by the `gemm` crate that
//! burn-flex's `float_matmul` calls too.
//!
//! burn-flex 0.21 returns every product in a fresh tensor, which it allocates as zeroed bytes
//! and then copies whole into a second, aligned allocation (`FlexTensor::empty`): in `perf`
//! that `memset` + `memmove` + page clearing was a fifth of the small-CNN training step, more
//! than the convolutions' own im2col and col2im. Here the convolutions keep their scratch
//! buffers between chunks, write the forward's product into the output itself and accumulate
//! the weight gradient in place.
//!
//! `gemm::gemm` takes raw pointers and strides, so this module is the workspace's one place
//! with `unsafe` code. Every view is checked against its slice before the call (every element
//! it addresses lies inside the slice), and the destination is a `&mut` slice whose rows do not
//! overlap, so the call reads and writes only memory the borrows hand it.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

/// Products of at least this many multiply-adds spread over rayon's threads (burn-flex's
/// threshold for its own GEMMs); smaller ones run on the calling thread.
pub(crate) const PARALLEL_WORK: usize = 192 * 192 * 192;

/// A `rows x cols` matrix read from `data`: element `(r, c)` at
/// `offset + r * row_stride + c * col_stride`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
    offset: usize,
}

impl<'a> MatRef<'a> {
    /// The leading `rows x cols` row-major matrix of `data`.
    pub(crate) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, [rows, cols], [cols, 1], 0)
    }

    /// A matrix of shape `[rows, cols]` with strides `[row_stride, col_stride]` from `offset`.
    pub(crate) fn strided(
        data: &'a [f32],
        [rows, cols]: [usize; 2],
        [row_stride, col_stride]: [usize; 2],
        offset: usize,
    ) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
            offset,
        }
    }

    /// `[rows, cols]`.
    pub(crate) fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The same elements read as the transpose.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `start..start + len`.
    pub(crate) fn rows(self, start: usize, len: usize) -> Self {
        assert!(
            start + len <= self.rows,
            "rows {start}..+{len} of {}",
            self.rows
        );
        Self {
            rows: len,
            offset: self.offset + start * self.row_stride,
            ..self
        }
    }

    /// Columns `start..start + len`.
    pub(crate) fn cols(self, start: usize, len: usize) -> Self {
        assert!(
            start + len <= self.cols,
            "cols {start}..+{len} of {}",
            self.cols
        );
        Self {
            cols: len,
            offset: self.offset + start * self.col_stride,
            ..self
        }
    }

    /// Panics unless every element the view addresses lies inside its slice.
    fn check(&self) {
        if self.rows == 0 || self.cols == 0 {
            return;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|r| r.checked_add((self.cols - 1).checked_mul(self.col_stride)?))
            .and_then(|last| last.checked_add(self.offset));
        assert!(
            last.is_some_and(|last| last < self.data.len()),
            "a {}x{} view (strides {}, {}, offset {}) outside a slice of {}",
            self.rows,
            self.cols,
            self.row_stride,
            self.col_stride,
            self.offset,
            self.data.len()
        );
        assert!(
            isize::try_from(self.row_stride.max(self.col_stride)).is_ok(),
            "stride overflow"
        );
    }
}

/// `dst = lhs x rhs`, or `dst += lhs x rhs` when `accumulate`; `dst` is row-major `[m, n]` with
/// rows `row_stride` apart (`row_stride >= n`), from the start of the slice. Spread over
/// rayon's threads from [`PARALLEL_WORK`] multiply-adds on.
pub(crate) fn matmul_into(
    dst: &mut [f32],
    row_stride: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
) {
    product(dst, row_stride, lhs, rhs, accumulate, true);
}

/// [`matmul_into`] on the calling thread whatever its size: for callers that run several
/// products side by side on rayon's threads themselves.
pub(crate) fn matmul_into_serial(
    dst: &mut [f32],
    row_stride: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
) {
    product(dst, row_stride, lhs, rhs, accumulate, false);
}

/// `dst = lhs x rhs` into a destination not yet written, row-major `[m, n]` and contiguous:
/// every element of its first `m n` written and returned, now initialised; the rest of `dst`
/// left as it was. Spread over the threads as [`matmul_into`] is.
pub(crate) fn matmul_into_unwritten<'a>(
    dst: &'a mut [MaybeUninit<f32>],
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
) -> &'a mut [f32] {
    let (m, n) = (lhs.rows, rhs.cols);
    assert_eq!(lhs.cols, rhs.rows, "inner dimensions");
    let dst = &mut dst[..m * n];
    if lhs.cols == 0 || n == 0 {
        dst.fill(MaybeUninit::new(0.0));
    } else {
        // SAFETY: `dst` is borrowed mutably for the call, `m n` long with rows `n` apart; with
        // `accumulate` false gemm stores every element of the matrix before it reads any
        // (its first depth block stores, the later ones add to what it stored).
        unsafe { gemm_into(dst.as_mut_ptr().cast(), dst.len(), n, lhs, rhs, false, true) };
    }
    // SAFETY: every element of `dst` was written above, and `MaybeUninit<f32>` has the layout
    // of `f32`.
    unsafe { &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

fn product(
    dst: &mut [f32],
    row_stride: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    spread: bool,
) {
    if lhs.cols == 0 && lhs.rows > 0 && rhs.cols > 0 {
        assert_eq!(0, rhs.rows, "inner dimensions 0 and {}", rhs.rows);
        if !accumulate {
            let dst_len = (lhs.rows - 1) * row_stride + rhs.cols;
            for row in dst[..dst_len].chunks_mut(row_stride) {
                row[..rhs.cols].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: `dst` is an initialised slice borrowed mutably for the call.
    unsafe {
        gemm_into(
            dst.as_mut_ptr(),
            dst.len(),
            row_stride,
            lhs,
            rhs,
            accumulate,
            spread,
        )
    };
}

/// `dst = lhs x rhs` (or `+=` when `accumulate`) by gemm, `dst` row-major `[m, n]` with rows
/// `row_stride` apart in `dst_len` values from `dst`. Depth 0 writes nothing.
///
/// # Safety
/// `dst` is valid for reads and writes of `dst_len` values and aliases neither input for the
/// call; with `accumulate` its `[m, n]` elements are initialised.
unsafe fn gemm_into(
    dst: *mut f32,
    dst_len: usize,
    row_stride: usize,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    spread: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "inner dimensions {k} and {}", rhs.rows);
    lhs.check();
    rhs.check();
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(
        row_stride >= n,
        "destination rows of {n} are {row_stride} apart"
    );
    assert!(
        (m - 1) * row_stride + n <= dst_len,
        "a {m}x{n} destination (rows {row_stride} apart) in a slice of {dst_len}"
    );
    assert!(isize::try_from(row_stride).is_ok(), "stride overflow");
    let parallelism = if spread && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `check` proved every element `offset + r * row_stride + c * col_stride`
    // (r < rows, c < cols) of `lhs` and `rhs` inside their slices, and the assertions above
    // every `r * row_stride + c` (r < m, c < n) of `dst` inside its `dst_len` values; the
    // strides fit isize. The caller guarantees `dst` aliases neither input, and its rows
    // (`row_stride >= n`) do not overlap. gemm reads `dst` only when `read_dst` is true, and
    // then the caller initialised it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            row_stride as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The product by its definition, in f64, element by element.
    fn reference(lhs: &MatRef<'_>, rhs: &MatRef<'_>, r: usize, c: usize) -> f64 {
        (0..lhs.cols)
            .map(|i| {
                let a = lhs.data[lhs.offset + r * lhs.row_stride + i * lhs.col_stride];
                let b = rhs.data[rhs.offset + i * rhs.row_stride + c * rhs.col_stride];
                f64::from(a) * f64::from(b)
            })
            .sum()
    }

    #[test]
    fn strided_transposed_and_accumulated_products_match_the_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // (m, k, n): small, a parallel one (>= PARALLEL_WORK) and degenerate widths.
        for (case, &(m, k, n)) in [
            (3, 5, 4),
            (1, 1, 1),
            (17, 33, 9),
            (200, 190, 210),
            (4, 1, 6),
        ]
        .iter()
        .enumerate()
        {
            let a: Vec<f32> = (0..(m + 2) * (k + 3))
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let b: Vec<f32> = (0..(n + 1) * (k + 2))
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            // lhs: rows 2.. of a row-major [m + 2, k + 3], columns 1..; rhs: a transposed,
            // row-major [n + 1, k + 2] read as [k, n].
            let lhs = MatRef::row_major(&a, m + 2, k + 3).rows(2, m).cols(1, k);
            let rhs = MatRef::row_major(&b, n + 1, k + 2)
                .t()
                .rows(2, k)
                .cols(0, n);
            let row_stride = n + 3;
            let initial: Vec<f32> = (0..m * row_stride).map(|i| i as f32 * 0.25).collect();
            for accumulate in [false, true] {
                let mut dst = initial.clone();
                matmul_into(&mut dst, row_stride, lhs, rhs, accumulate);
                for r in 0..m {
                    for c in 0..row_stride {
                        let got = dst[r * row_stride + c];
                        let before = initial[r * row_stride + c];
                        if c >= n {
                            assert_eq!(got, before, "case {case}: padding ({r}, {c}) written");
                            continue;
                        }
                        let base = if accumulate { f64::from(before) } else { 0.0 };
                        let want = base + reference(&lhs, &rhs, r, c);
                        let tolerance = 1e-5 * (k as f64).sqrt() * want.abs().max(1.0);
                        assert!(
                            (f64::from(got) - want).abs() <= tolerance,
                            "case {case} accumulate {accumulate} ({r}, {c}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_empty_inner_dimension_zeroes_or_keeps_the_destination() {
        let data = [1.0f32; 4];
        let lhs = MatRef::row_major(&data, 2, 0);
        let rhs = MatRef::row_major(&data, 0, 2);
        let mut dst = vec![5.0f32; 4];
        matmul_into(&mut dst, 2, lhs, rhs, true);
        assert_eq!(dst, [5.0; 4]);
        matmul_into(&mut dst, 2, lhs, rhs, false);
        assert_eq!(dst, [0.0; 4]);
    }

    #[test]
    #[should_panic(expected = "outside a slice")]
    fn a_view_past_its_slice_is_refused() {
        let data = [0.0f32; 6];
        let lhs = MatRef::strided(&data, [2, 3], [4, 1], 0);
        let rhs = MatRef::row_major(&data, 3, 1);
        matmul_into(&mut [0.0; 2], 1, lhs, rhs, false);
    }

    #[test]
    #[should_panic(expected = "destination")]
    fn a_destination_too_small_is_refused() {
        let data = [0.0f32; 6];
        let lhs = MatRef::row_major(&data, 2, 3);
        let rhs = MatRef::row_major(&data, 3, 2);
        matmul_into(&mut [0.0; 3], 2, lhs, rhs, false);
    }
}
