//! Shape arithmetic the convolution, pooling and BatchNorm kernels share.

use burn::tensor::Shape;

/// The output positions `[start, end)` along one axis whose input index
/// `o * stride + tap * dilation - padding` lies inside `[0, size)`.
pub(crate) fn valid_range(
    out_size: usize,
    size: usize,
    tap: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> (usize, usize) {
    let offset = tap * dilation;
    // o * stride + offset >= padding
    let start = padding.saturating_sub(offset).div_ceil(stride);
    // o * stride + offset < size + padding
    let end = if size + padding > offset {
        (size + padding - offset).div_ceil(stride)
    } else {
        0
    };
    let end = end.min(out_size);
    (start.min(end), end)
}

/// `f(&mut out[j], src[j stride])` for every `j < out.len()`; `src` holds at least
/// `(out.len() - 1) stride + 1` values. Strides 2 and 4 read the first of each group of values,
/// a loop the compiler vectorises with shuffles, where a general stride's iterator runs element
/// by element (the im2col of ResNet-50's stem: 14.3 -> 11.3 ms).
pub(crate) fn for_each_strided(
    out: &mut [f32],
    src: &[f32],
    stride: usize,
    f: impl Fn(&mut f32, f32),
) {
    let Some(last) = out.len().checked_sub(1) else {
        return;
    };
    let src = &src[..last * stride + 1];
    match stride {
        1 => out
            .iter_mut()
            .zip(src)
            .for_each(|(out, &value)| f(out, value)),
        2 => for_each_first::<2>(out, src, f),
        4 => for_each_first::<4>(out, src, f),
        _ => {
            let values = src.iter().step_by(stride);
            out.iter_mut()
                .zip(values)
                .for_each(|(out, &value)| f(out, value));
        }
    }
}

/// [`for_each_strided`] at a stride known when compiling: the first value of each group of
/// `STRIDE`, and the last one alone (`src` ends there).
fn for_each_first<const STRIDE: usize>(out: &mut [f32], src: &[f32], f: impl Fn(&mut f32, f32)) {
    let last = out.len() - 1;
    let (groups, end) = src.split_at(STRIDE * last);
    for (out, group) in out.iter_mut().zip(groups.chunks_exact(STRIDE)) {
        f(out, group[0]);
    }
    f(&mut out[last], end[0]);
}

pub(crate) fn dims4(shape: &Shape) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}

#[cfg(test)]
mod tests {
    use super::{for_each_strided, valid_range};

    /// Every `j` gets `src[j stride]`, for each stride and length, from a source exactly as
    /// long as the last read needs (the stride-2 pairs end on a lone value).
    #[test]
    fn a_strided_walk_reads_every_stride_th_value() {
        for stride in 1..=4 {
            for len in 0..=9 {
                let src: Vec<f32> = (0..(len.max(1) - 1) * stride + 1)
                    .map(|i| i as f32)
                    .collect();
                let mut out = vec![-1.0; len];
                for_each_strided(&mut out, &src, stride, |out, value| *out = value);
                let expected: Vec<f32> = (0..len).map(|j| (j * stride) as f32).collect();
                assert_eq!(out, expected, "stride {stride}, {len} values");
            }
        }
    }

    #[test]
    fn valid_range_keeps_the_taps_inside_the_image() {
        for (out, size, tap, stride, padding, dilation) in [
            (5, 9, 0, 2, 1, 1),
            (7, 7, 2, 1, 1, 1),
            (3, 4, 1, 2, 2, 2),
            (4, 2, 3, 1, 0, 1),
        ] {
            let (start, end) = valid_range(out, size, tap, stride, padding, dilation);
            for o in 0..out {
                let i = (o * stride + tap * dilation) as isize - padding as isize;
                let inside = i >= 0 && i < size as isize;
                assert_eq!(
                    inside,
                    (start..end).contains(&o),
                    "o {o} in {out} {size} {tap}"
                );
            }
        }
    }
}
