//! The ASL / Hill / SPLC recipe's `RandAugment()` from the PyPI `randaugment` 1.0.2 package,
//! and the PIL operations it calls, written to PIL 9.4's arithmetic.
//!
//! The policy: two (operation, magnitude index) pairs drawn uniformly from 15 operations x
//! indices 1..=9 (135 each; the package lists all 135^2 pairs and picks one uniformly, the
//! same distribution); each applied with probability 0.5, the first before the second.
//! Magnitudes come from the package's `linspace` tables; shear, translate and the four
//! enhancements draw a random sign, rotation does not (its sign is commented out upstream).
//! Shear, translate and rotate fill with (128, 128, 128).
//!
//! Checked against PIL 9.4 on a photo crop for each operation (`tests/data/randaugment_pil.rs`):
//! every one equal value for value, except rotation, where about 0.05 % of the values (pixels
//! on the boundary between image and fill) differ because PIL's nearest affine uses fixed-point
//! coordinates. The random draws come from the sample's generator, not Python's `random`.

use image::{Rgb, RgbImage};
use rand_chacha::ChaCha8Rng;

use crate::rng::{interval, unit_f64};

/// The package's operations, in its list order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `ImageOps.invert`.
    Invert,
    /// The package's own cutout: a square of side `m` filled with (125, 122, 113).
    Cutout,
    /// `ImageEnhance.Sharpness(1 +- m)`.
    Sharpness,
    /// `ImageOps.autocontrast` (cutoff 0).
    AutoContrast,
    /// `ImageOps.posterize(bits)`.
    Posterize,
    /// Affine shear along x, bicubic.
    ShearX,
    /// Affine translation along x by `m` x width, nearest.
    TranslateX,
    /// Affine translation along y by `m` x height, nearest.
    TranslateY,
    /// Affine shear along y, bicubic.
    ShearY,
    /// Rotation by `m` degrees (counter-clockwise), nearest.
    Rotate,
    /// `ImageOps.equalize`.
    Equalize,
    /// `ImageEnhance.Contrast(1 +- m)`.
    Contrast,
    /// `ImageEnhance.Color(1 +- m)`.
    Color,
    /// `ImageOps.solarize(threshold)`.
    Solarize,
    /// `ImageEnhance.Brightness(1 +- m)`.
    Brightness,
}

/// The 15 operations in the package's order.
pub const OPS: [Op; 15] = [
    Op::Invert,
    Op::Cutout,
    Op::Sharpness,
    Op::AutoContrast,
    Op::Posterize,
    Op::ShearX,
    Op::TranslateX,
    Op::TranslateY,
    Op::ShearY,
    Op::Rotate,
    Op::Equalize,
    Op::Contrast,
    Op::Color,
    Op::Solarize,
    Op::Brightness,
];

fn linspace(lo: f64, hi: f64, index: usize) -> f64 {
    lo + (hi - lo) * index as f64 / 9.0
}

/// NumPy's `np.round` (half to even) of a non-negative value.
fn round_half_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc() - 0.5).abs() < 1e-12 && r % 2.0 != 0.0 {
        r - 1.0
    } else {
        r
    }
}

impl Op {
    /// The package's magnitude at `index` (0..=9) of its table.
    pub fn magnitude(self, index: usize) -> f64 {
        match self {
            Op::ShearX | Op::ShearY => linspace(0.0, 0.3, index),
            Op::TranslateX | Op::TranslateY => linspace(0.0, 150.0 / 331.0, index),
            Op::Rotate => linspace(0.0, 30.0, index),
            Op::Color | Op::Contrast | Op::Sharpness | Op::Brightness => linspace(0.0, 0.9, index),
            Op::Posterize => round_half_even(linspace(8.0, 4.0, index)),
            Op::Solarize => linspace(256.0, 0.0, index),
            Op::Cutout => round_half_even(linspace(0.0, 20.0, index)),
            Op::AutoContrast | Op::Equalize | Op::Invert => 0.0,
        }
    }

    /// Applies the operation at `magnitude`, drawing its sign or position from `rng` where the
    /// package draws them.
    pub fn apply(self, img: &RgbImage, magnitude: f64, rng: &mut ChaCha8Rng) -> RgbImage {
        let mut sign = || if interval(rng, 1) == 0 { -1.0 } else { 1.0 };
        match self {
            Op::Invert => lut(img, |v| 255 - v),
            Op::Posterize => {
                let mask = !((1u16 << (8 - magnitude as u32)) - 1) as u8;
                lut(img, |v| v & mask)
            }
            Op::Solarize => lut(img, |v| if f64::from(v) < magnitude { v } else { 255 - v }),
            Op::AutoContrast => autocontrast(img),
            Op::Equalize => equalize(img),
            Op::Color => {
                let factor = 1.0 + magnitude * sign();
                color(img, factor)
            }
            Op::Contrast => {
                let factor = 1.0 + magnitude * sign();
                contrast(img, factor)
            }
            Op::Brightness => {
                let factor = 1.0 + magnitude * sign();
                blend(&RgbImage::new(img.width(), img.height()), img, factor)
            }
            Op::Sharpness => {
                let factor = 1.0 + magnitude * sign();
                blend(&smooth(img), img, factor)
            }
            Op::ShearX => {
                let m = magnitude * sign();
                affine_bicubic(img, [1.0, m, 0.0, 0.0, 1.0, 0.0])
            }
            Op::ShearY => {
                let m = magnitude * sign();
                affine_bicubic(img, [1.0, 0.0, 0.0, m, 1.0, 0.0])
            }
            Op::TranslateX => {
                let shift = magnitude * f64::from(img.width()) * sign();
                affine_nearest(img, [1.0, 0.0, shift, 0.0, 1.0, 0.0])
            }
            Op::TranslateY => {
                let shift = magnitude * f64::from(img.height()) * sign();
                affine_nearest(img, [1.0, 0.0, 0.0, 0.0, 1.0, shift])
            }
            Op::Rotate => rotate(img, magnitude),
            Op::Cutout => package_cutout(img, magnitude as u32, rng),
        }
    }
}

/// `RandAugment()`: draws the two operations and applies each with probability 0.5.
pub fn rand_augment(img: &RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
    let mut out = img.clone();
    let picks: Vec<(Op, usize)> = (0..2)
        .map(|_| {
            let k = interval(rng, 134) as usize;
            (OPS[k / 9], 1 + k % 9)
        })
        .collect();
    for (op, index) in picks {
        if unit_f64(rng) < 0.5 {
            out = op.apply(&out, op.magnitude(index), rng);
        }
    }
    out
}

fn lut(img: &RgbImage, f: impl Fn(u8) -> u8) -> RgbImage {
    let table: Vec<u8> = (0..=255u8).map(f).collect();
    let mut out = img.clone();
    for v in out.iter_mut() {
        *v = table[usize::from(*v)];
    }
    out
}

fn histograms(img: &RgbImage) -> [[u64; 256]; 3] {
    let mut h = [[0u64; 256]; 3];
    for p in img.pixels() {
        for c in 0..3 {
            h[c][usize::from(p.0[c])] += 1;
        }
    }
    h
}

fn per_channel_lut(img: &RgbImage, tables: &[[u8; 256]; 3]) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in 0..3 {
            p.0[c] = tables[c][usize::from(p.0[c])];
        }
    }
    out
}

fn identity() -> [u8; 256] {
    std::array::from_fn(|i| i as u8)
}

/// `ImageOps.autocontrast(img)`: each channel's range stretched to 0..255, truncated.
fn autocontrast(img: &RgbImage) -> RgbImage {
    let h = histograms(img);
    let tables = h.map(|h| {
        let lo = h.iter().position(|&n| n > 0).unwrap_or(0);
        let hi = h.iter().rposition(|&n| n > 0).unwrap_or(0);
        if hi <= lo {
            return identity();
        }
        let scale = 255.0 / (hi - lo) as f64;
        let offset = -(lo as f64) * scale;
        std::array::from_fn(|i| (i as f64 * scale + offset).trunc().clamp(0.0, 255.0) as u8)
    });
    per_channel_lut(img, &tables)
}

/// `ImageOps.equalize(img)`, PIL's integer steps.
fn equalize(img: &RgbImage) -> RgbImage {
    let h = histograms(img);
    let tables = h.map(|h| {
        let nonzero: Vec<u64> = h.iter().copied().filter(|&n| n > 0).collect();
        if nonzero.len() <= 1 {
            return identity();
        }
        // PIL 9.4 divides by 255 (older releases by 256).
        let step = (nonzero.iter().sum::<u64>() - nonzero[nonzero.len() - 1]) / 255;
        if step == 0 {
            return identity();
        }
        let mut n = step / 2;
        std::array::from_fn(|i| {
            let v = (n / step).min(255) as u8;
            n += h[i];
            v
        })
    });
    per_channel_lut(img, &tables)
}

/// PIL's `convert("L")`: `(R 19595 + G 38470 + B 7471 + 0x8000) >> 16`.
fn luma(p: &Rgb<u8>) -> u8 {
    ((u32::from(p.0[0]) * 19595 + u32::from(p.0[1]) * 38470 + u32::from(p.0[2]) * 7471 + 0x8000)
        >> 16) as u8
}

/// `Image.blend(a, b, alpha)` on 8-bit bands: `a + alpha (b - a)` in single precision,
/// truncated, clipped when alpha is outside [0, 1].
pub(super) fn blend(a: &RgbImage, b: &RgbImage, alpha: f64) -> RgbImage {
    let alpha = alpha as f32;
    let mut out = a.clone();
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b.iter())) {
        let v = f32::from(*x) + alpha * (f32::from(*y) - f32::from(*x));
        *o = if v <= 0.0 {
            0
        } else if v >= 255.0 {
            255
        } else {
            v as u8
        };
    }
    out
}

/// `ImageEnhance.Color`: blend from the grey (luma) image.
pub(super) fn color(img: &RgbImage, factor: f64) -> RgbImage {
    let grey = RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let l = luma(img.get_pixel(x, y));
        Rgb([l, l, l])
    });
    blend(&grey, img, factor)
}

/// `ImageEnhance.Contrast`: blend from a flat image at the rounded mean luma.
pub(super) fn contrast(img: &RgbImage, factor: f64) -> RgbImage {
    let n = f64::from(img.width() * img.height()).max(1.0);
    let mean = img.pixels().map(|p| f64::from(luma(p))).sum::<f64>() / n;
    let m = (mean + 0.5) as u8;
    blend(
        &RgbImage::from_pixel(img.width(), img.height(), Rgb([m; 3])),
        img,
        factor,
    )
}

/// `ImageFilter.SMOOTH` (3 x 3, weights 1 with 5 in the centre, / 13); the border pixels are
/// copied, as PIL does.
fn smooth(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut out = img.clone();
    if w < 3 || h < 3 {
        return out;
    }
    let k = |v: u8, weight: f32| f32::from(v) * (weight / 13.0);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let mut p = [0u8; 3];
            for (c, value) in p.iter_mut().enumerate() {
                let mut s = 0.0f32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let weight = if dx == 1 && dy == 1 { 5.0 } else { 1.0 };
                        s += k(img.get_pixel(x + dx - 1, y + dy - 1).0[c], weight);
                    }
                }
                *value = if s <= 0.0 {
                    0
                } else if s >= 255.0 {
                    255
                } else {
                    (s + 0.5) as u8
                };
            }
            out.put_pixel(x, y, Rgb(p));
        }
    }
    out
}

const FILL: Rgb<u8> = Rgb([128, 128, 128]);

/// PIL's nearest affine: the output pixel `(x, y)` takes the input pixel at
/// `floor(a (x + 0.5) + b (y + 0.5) + c)`, `floor(d (x + 0.5) + e (y + 0.5) + f)`, or the fill
/// outside the input.
fn affine_nearest(img: &RgbImage, m: [f64; 6]) -> RgbImage {
    let (w, h) = img.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let (xo, yo) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
        let xin = m[0] * xo + m[1] * yo + m[2];
        let yin = m[3] * xo + m[4] * yo + m[5];
        if xin < 0.0 || yin < 0.0 {
            return FILL;
        }
        let (xi, yi) = (xin as u32, yin as u32);
        if xi < w && yi < h {
            *img.get_pixel(xi, yi)
        } else {
            FILL
        }
    })
}

/// PIL's bicubic (its transform kernel, a = -1) at a source point of the packed RGB rows `src`;
/// `None` outside.
#[inline]
fn bicubic_at(src: &[u8], w: u32, h: u32, xin: f64, yin: f64) -> Option<[u8; 3]> {
    if xin < 0.0 || yin < 0.0 || xin >= f64::from(w) || yin >= f64::from(h) {
        return None;
    }
    let (xs, ys) = (xin - 0.5, yin - 0.5);
    // `floor` of a value >= -0.5 without the libm call that baseline x86-64 makes of it:
    // truncation, or -1 below zero.
    let floor = |v: f64| if v < 0.0 { -1 } else { v as i64 };
    let (x0, y0) = (floor(xs), floor(ys));
    let (dx, dy) = (xs - x0 as f64, ys - y0 as f64);
    let clip = |v: i64, n: u32| v.clamp(0, i64::from(n) - 1) as usize;
    let stride = 3 * w as usize;
    let cols = [
        3 * clip(x0 - 1, w),
        3 * clip(x0, w),
        3 * clip(x0 + 1, w),
        3 * clip(x0 + 2, w),
    ];
    let rows = [
        stride * clip(y0 - 1, h),
        stride * clip(y0, h),
        stride * clip(y0 + 1, h),
        stride * clip(y0 + 2, h),
    ];
    let cubic = |v1: f64, v2: f64, v3: f64, v4: f64, d: f64| {
        let p1 = v2;
        let p2 = -v1 + v3;
        let p3 = 2.0 * (v1 - v2) + v3 - v4;
        let p4 = -v1 + v2 - v3 + v4;
        p1 + d * (p2 + d * (p3 + d * p4))
    };
    // At d = 0 the kernel returns its second sample exactly (p1 + 0 (...)), so a shear, whose
    // rows or columns fall on the grid, reads 4 samples instead of 16 with the same result.
    let row = |j: usize| -> [f64; 3] {
        let line = &src[rows[j]..rows[j] + stride];
        let mut out = [0.0; 3];
        for (c, value) in out.iter_mut().enumerate() {
            let at = |i: usize| f64::from(line[cols[i] + c]);
            *value = if dx == 0.0 {
                at(1)
            } else {
                cubic(at(0), at(1), at(2), at(3), dx)
            };
        }
        out
    };
    let v = if dy == 0.0 {
        row(1)
    } else {
        let r = [row(0), row(1), row(2), row(3)];
        let mut out = [0.0; 3];
        for (c, value) in out.iter_mut().enumerate() {
            *value = cubic(r[0][c], r[1][c], r[2][c], r[3][c], dy);
        }
        out
    };
    let to_u8 = |v: f64| {
        if v <= 0.0 {
            0
        } else if v >= 255.0 {
            255
        } else {
            v as u8
        }
    };
    Some([to_u8(v[0]), to_u8(v[1]), to_u8(v[2])])
}

fn affine_bicubic(img: &RgbImage, m: [f64; 6]) -> RgbImage {
    let (w, h) = img.dimensions();
    let src = img.as_raw();
    let mut out = RgbImage::new(w, h);
    for (y, row) in out.chunks_exact_mut(3 * w as usize).enumerate() {
        let yo = y as f64 + 0.5;
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let xo = x as f64 + 0.5;
            let (xin, yin) = (m[0] * xo + m[1] * yo + m[2], m[3] * xo + m[4] * yo + m[5]);
            px.copy_from_slice(&bicubic_at(src, w, h, xin, yin).unwrap_or(FILL.0));
        }
    }
    out
}

/// `Image.rotate(degrees)` about the centre, nearest, filled with grey (the package's
/// `rotate_with_fill`): PIL's matrix with its cosines and sines rounded to 15 digits.
fn rotate(img: &RgbImage, degrees: f64) -> RgbImage {
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let angle = -(degrees % 360.0).to_radians();
    let r15 = |v: f64| (v * 1e15).round() / 1e15;
    let (a, b, d, e) = (
        r15(angle.cos()),
        r15(angle.sin()),
        r15(-angle.sin()),
        r15(angle.cos()),
    );
    let (cx, cy) = (w / 2.0, h / 2.0);
    let c = a * -cx + b * -cy + cx;
    let f = d * -cx + e * -cy + cy;
    affine_nearest(img, [a, b, c, d, e, f])
}

/// The package's `Cutout(size)`: a centre drawn over (width, height) -- the package calls them
/// height and width --, the box `[c - size // 2, c + size // 2)` clipped, colour
/// (125, 122, 113).
fn package_cutout(img: &RgbImage, size: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let mut out = img.clone();
    let (w, h) = img.dimensions();
    let cx = interval(rng, w.saturating_sub(1));
    let cy = interval(rng, h.saturating_sub(1));
    let half = size / 2;
    for x in cx.saturating_sub(half)..(cx + half).min(w) {
        for y in cy.saturating_sub(half)..(cy + half).min(h) {
            out.put_pixel(x, y, Rgb([125, 122, 113]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_tables_are_the_packages() {
        assert_eq!(
            (1..10)
                .map(|i| Op::Posterize.magnitude(i))
                .collect::<Vec<_>>(),
            [8.0, 7.0, 7.0, 6.0, 6.0, 5.0, 5.0, 4.0, 4.0]
        );
        assert_eq!(
            (1..10).map(|i| Op::Cutout.magnitude(i)).collect::<Vec<_>>(),
            [2.0, 4.0, 7.0, 9.0, 11.0, 13.0, 16.0, 18.0, 20.0]
        );
        assert!((Op::Rotate.magnitude(9) - 30.0).abs() < 1e-12);
        assert!((Op::TranslateX.magnitude(9) - 150.0 / 331.0).abs() < 1e-12);
        assert!((Op::Solarize.magnitude(5) - (256.0 - 256.0 * 5.0 / 9.0)).abs() < 1e-9);
    }

    #[test]
    fn policy_draws_every_op_and_leaves_about_a_quarter_untouched() {
        let img = RgbImage::from_fn(24, 16, |x, y| Rgb([(x * 10) as u8, (y * 15) as u8, 90]));
        let mut untouched = 0;
        for row in 0..400 {
            let out = rand_augment(&img, &mut super::super::sample_rng(0, 1, row));
            untouched += usize::from(out == img);
        }
        // Neither op applied: 1/4, plus ops that change nothing here; 400 draws.
        assert!((70..=170).contains(&untouched), "{untouched}");
    }
}
