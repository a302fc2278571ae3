//! The papers' image transforms, by name, and the parts they are made of.
//!
//! - [`Transform::asl`]: the ASL / Hill / SPLC recipe: `Resize((s, s))`, `CutoutPIL(0.5)`,
//!   `RandAugment()` (see [`super::randaugment`]), `ToTensor()`, no normalisation.
//! - [`Transform::spml`]: the single-positive / LL / BoostLU / GR recipe (Cole et al. 2021):
//!   `Resize((s, s))`, `RandomHorizontalFlip()`, `ToTensor()`, ImageNet `Normalize`.
//! - [`Transform::eval`]: `Resize((s, s))`, `ToTensor()` and the recipe's normalisation.
//! - [`Transform::imagenet_eval`]: `Resize(256)`, `CenterCrop(224)`, ImageNet `Normalize`.
//! - Composable from a config: random resized crop (torchvision's scale / ratio semantics),
//!   horizontal flip with a probability, normalisation on or off.
//!
//! The random draws come from [`sample_rng`] (ChaCha8 keyed by run seed, epoch and dataset
//! row) through the project's stable integer and float draws, so they do not reproduce
//! torch's generator (no one can: it depends on the worker layout), only its distributions.

use image::RgbImage;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::resize::{center_crop, resize_exact, resize_shorter_side};
use crate::error::{DataError, Result};
use crate::rng::unit_f64;

/// ImageNet channel means (torchvision's `Normalize` of the single-positive recipe).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The generator of one sample's random choices: ChaCha8 with the 32-byte key
/// `seed | epoch | row | "mlml-img"` (little-endian u64s). A sample's draws depend on nothing
/// else, so any thread may transform any sample in any order.
pub fn sample_rng(seed: u64, epoch: u64, row: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(&row.to_le_bytes());
    key[24..].copy_from_slice(b"mlml-img");
    ChaCha8Rng::from_seed(key)
}

/// How an image reaches the working size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ResizeSpec {
    /// `Resize((size, size))`: both sides to `size`, aspect ratio not kept.
    Square {
        /// Output side.
        size: u32,
    },
    /// `Resize(shorter)` then `CenterCrop(crop)`.
    ShorterCenterCrop {
        /// The shorter side after resizing.
        shorter: u32,
        /// The square crop's side.
        crop: u32,
    },
    /// `RandomResizedCrop(size, scale, ratio)`: a random area fraction in `scale` and aspect
    /// ratio (log-uniform) in `ratio`, 10 tries, then the centre crop with the ratio clamped.
    RandomResizedCrop {
        /// Output side.
        size: u32,
        /// Area fraction range, torchvision's default `(0.08, 1.0)`.
        scale: (f64, f64),
        /// Aspect ratio range, torchvision's default `(3/4, 4/3)`.
        ratio: (f64, f64),
    },
}

/// torchvision's `ColorJitter(brightness, contrast, saturation, hue)` on PIL images: the
/// brightness, contrast and saturation factors uniform in `[max(0, 1 - v), 1 + v]`, the hue
/// factor uniform in `[-hue, hue]` (0 leaves that part out), the four applied in a random order
/// (torchvision's `randperm(4)`), as PIL's `ImageEnhance` Brightness, Contrast and Color and
/// torchvision's [`adjust_hue`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColorJitter {
    /// Brightness spread, at least 0.
    pub brightness: f64,
    /// Contrast spread, at least 0.
    pub contrast: f64,
    /// Saturation spread, at least 0.
    pub saturation: f64,
    /// Hue spread, in `[0, 0.5]` (a fraction of the hue circle).
    pub hue: f64,
}

impl ColorJitter {
    /// Checks the spreads as torchvision does.
    ///
    /// # Errors
    /// A negative or non-finite spread, or a hue spread above 0.5.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("color_jitter.brightness", self.brightness),
            ("color_jitter.contrast", self.contrast),
            ("color_jitter.saturation", self.saturation),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(DataError::OutOfRange {
                    name,
                    expected: "a finite number >= 0",
                    value: value.to_string(),
                });
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(DataError::OutOfRange {
                name: "color_jitter.hue",
                expected: "in [0, 0.5]",
                value: self.hue.to_string(),
            });
        }
        Ok(())
    }

    fn apply(&self, img: &RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let mut order = [0usize, 1, 2, 3];
        crate::rng::shuffle(rng, &mut order);
        let mut out = img.clone();
        for part in order {
            let spread = [self.brightness, self.contrast, self.saturation, self.hue][part];
            if spread <= 0.0 {
                continue;
            }
            let (lo, hi) = if part == 3 {
                (-spread, spread)
            } else {
                ((1.0 - spread).max(0.0), 1.0 + spread)
            };
            let factor = lo + (hi - lo) * unit_f64(rng);
            out = match part {
                0 => super::randaugment::blend(
                    &RgbImage::new(out.width(), out.height()),
                    &out,
                    factor,
                ),
                1 => super::randaugment::contrast(&out, factor),
                2 => super::randaugment::color(&out, factor),
                _ => adjust_hue(&out, factor),
            };
        }
        out
    }
}

/// torchvision's `adjust_hue` on a PIL RGB image: PIL's 8-bit HSV conversion, the hue byte
/// shifted by `uint8(factor * 255)` with wrap-around, and back. `factor` in `[-0.5, 0.5]`
/// (values outside are clamped; [`ColorJitter::validate`] refuses them in a config).
pub fn adjust_hue(img: &RgbImage, factor: f64) -> RgbImage {
    // NumPy's `np.uint8(x)` of a float truncates toward zero and wraps, so -25.5 becomes 231.
    let shift = ((factor.clamp(-0.5, 0.5) * 255.0) as i32).rem_euclid(256) as u8;
    let mut out = img.clone();
    for pixel in out.pixels_mut() {
        let [h, s, v] = rgb_to_hsv(pixel.0);
        pixel.0 = hsv_to_rgb([h.wrapping_add(shift), s, v]);
    }
    out
}

/// PIL's `convert("HSV")` of one pixel (`libImaging/Convert.c`, after `colorsys`): f32
/// variables, the steps with double constants in f64, as C promotes them.
fn rgb_to_hsv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    if max == min {
        return [0, 0, max];
    }
    let range = f32::from(max - min);
    let s = range / f32::from(max);
    let distance = |c: u8| f32::from(max - c) / range;
    let (rc, gc, bc) = (distance(r), distance(g), distance(b));
    // `2.0 + rc - bc` has a double constant, so C sums in f64; `bc - gc` stays in f32.
    let h = if r == max {
        bc - gc
    } else if g == max {
        (2.0 + f64::from(rc) - f64::from(bc)) as f32
    } else {
        (4.0 + f64::from(gc) - f64::from(rc)) as f32
    };
    // C's fmod keeps the sign of the dividend, as `%` does; h / 6 + 1 is positive here.
    let h = ((f64::from(h) / 6.0 + 1.0) % 1.0) as f32;
    let byte = |x: f32| ((f64::from(x) * 255.0) as i32).clamp(0, 255) as u8;
    [byte(h), byte(s), max]
}

/// PIL's `convert("RGB")` of one HSV pixel, with the same promotions.
fn hsv_to_rgb([h, s, v]: [u8; 3]) -> [u8; 3] {
    if s == 0 {
        return [v; 3];
    }
    let sector = (f64::from(h) * 6.0 / 255.0).floor();
    let f = (f64::from(h) * 6.0 / 255.0 - sector) as f32;
    let fs = (f64::from(s) / 255.0) as f32;
    let value = f64::from(v);
    let byte = |x: f64| (x.round() as i32).clamp(0, 255) as u8;
    let p = byte(value * (1.0 - f64::from(fs)));
    let q = byte(value * (1.0 - f64::from(fs) * f64::from(f)));
    let t = byte(value * (1.0 - f64::from(fs) * (1.0 - f64::from(f))));
    match sector as i32 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Per-channel normalisation `(x / 255 - mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    /// Channel means.
    pub mean: [f32; 3],
    /// Channel standard deviations.
    pub std: [f32; 3],
}

impl Normalize {
    /// ImageNet's statistics.
    pub fn imagenet() -> Self {
        Self {
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

/// A transform: resize (possibly random), flip, then the conversion to `[3, H, W]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// Its name in reports (`spml`, `eval`, `imagenet-eval`, or a config's own).
    pub name: String,
    /// How the image reaches the working size.
    pub resize: ResizeSpec,
    /// `CutoutPIL(factor)` of the ASL recipe after the resize (`None`: no cutout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutout: Option<f64>,
    /// The `randaugment` package's `RandAugment()` after the cutout.
    #[serde(default)]
    pub rand_augment: bool,
    /// Probability of a horizontal flip (0: none; torchvision's default 0.5).
    pub hflip: f64,
    /// Colour jitter after the flip (`None`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_jitter: Option<ColorJitter>,
    /// `None`: values in `[0, 1]` (the ASL recipe's `ToTensor()` alone).
    pub normalize: Option<Normalize>,
}

impl Transform {
    /// The single-positive recipe's training transform at `size` (448 in the papers).
    pub fn spml(size: u32) -> Self {
        Self {
            name: "spml".into(),
            hflip: 0.5,
            ..Self::eval(size, Some(Normalize::imagenet()))
        }
    }

    /// The ASL / Hill / SPLC recipe's training transform at `size` (448 in the papers):
    /// `Resize((s, s))`, `CutoutPIL(0.5)`, `RandAugment()`, `ToTensor()`, no normalisation.
    pub fn asl(size: u32) -> Self {
        Self {
            name: "asl".into(),
            cutout: Some(0.5),
            rand_augment: true,
            ..Self::eval(size, None)
        }
    }

    /// Evaluation: `Resize((size, size))` and the normalisation; the other transforms are this
    /// one with their steps added.
    pub fn eval(size: u32, normalize: Option<Normalize>) -> Self {
        Self {
            name: "eval".into(),
            resize: ResizeSpec::Square { size },
            cutout: None,
            rand_augment: false,
            hflip: 0.0,
            color_jitter: None,
            normalize,
        }
    }

    /// The named transforms of image files at `size`: `spml` and `asl` (the papers' training
    /// transforms) and `eval` (with ImageNet normalisation); `None` for any other name.
    pub fn named(name: &str, size: u32) -> Option<Self> {
        match name {
            "spml" => Some(Self::spml(size)),
            "asl" => Some(Self::asl(size)),
            "eval" => Some(Self::eval(size, Some(Normalize::imagenet()))),
            _ => None,
        }
    }

    /// The names [`Self::named`] knows.
    pub const NAMES: [&'static str; 3] = ["spml", "asl", "eval"];

    /// ImageNet evaluation: `Resize(256)`, `CenterCrop(224)`, ImageNet normalisation.
    pub fn imagenet_eval() -> Self {
        Self {
            name: "imagenet-eval".into(),
            resize: ResizeSpec::ShorterCenterCrop {
                shorter: 256,
                crop: 224,
            },
            ..Self::eval(224, Some(Normalize::imagenet()))
        }
    }

    /// Checks every parameter's range, naming the field.
    ///
    /// # Errors
    /// A zero output size, a flip probability or cutout factor outside `[0, 1]`, a random
    /// resized crop whose scale is not within `(0, 1]` or whose ranges are reversed, a zero or
    /// non-finite normalisation std, or a colour jitter out of range
    /// ([`ColorJitter::validate`]).
    pub fn validate(&self) -> Result<()> {
        let out_of_range = |name, expected, value: String| {
            Err(DataError::OutOfRange {
                name,
                expected,
                value,
            })
        };
        let (width, height) = self.output_size();
        if width == 0 || height == 0 {
            return out_of_range("resize", "an output side of at least 1", "0".into());
        }
        if !(0.0..=1.0).contains(&self.hflip) {
            return out_of_range("hflip", "in [0, 1]", self.hflip.to_string());
        }
        if let Some(cutout) = self.cutout.filter(|c| !(0.0..=1.0).contains(c)) {
            return out_of_range("cutout", "in [0, 1]", cutout.to_string());
        }
        if let ResizeSpec::RandomResizedCrop { scale, ratio, .. } = self.resize {
            if !(scale.0 > 0.0 && scale.0 <= scale.1 && scale.1 <= 1.0) {
                return out_of_range(
                    "resize.scale",
                    "(lo, hi) with 0 < lo <= hi <= 1",
                    format!("{scale:?}"),
                );
            }
            if !(ratio.0 > 0.0 && ratio.0 <= ratio.1 && ratio.1.is_finite()) {
                return out_of_range(
                    "resize.ratio",
                    "(lo, hi) with 0 < lo <= hi",
                    format!("{ratio:?}"),
                );
            }
        }
        if let Some(normalize) = &self.normalize {
            if normalize.std.iter().any(|s| !(s.is_finite() && *s != 0.0)) {
                return out_of_range(
                    "normalize.std",
                    "finite and non-zero",
                    format!("{:?}", normalize.std),
                );
            }
        }
        self.color_jitter
            .as_ref()
            .map_or(Ok(()), ColorJitter::validate)
    }

    /// Output `(width, height)`.
    pub fn output_size(&self) -> (u32, u32) {
        match self.resize {
            ResizeSpec::Square { size } | ResizeSpec::RandomResizedCrop { size, .. } => {
                (size, size)
            }
            ResizeSpec::ShorterCenterCrop { crop, .. } => (crop, crop),
        }
    }

    /// Whether any step draws randomness.
    pub fn is_random(&self) -> bool {
        self.hflip > 0.0
            || self.cutout.is_some()
            || self.color_jitter.is_some()
            || self.rand_augment
            || matches!(self.resize, ResizeSpec::RandomResizedCrop { .. })
    }

    /// The whole transform up to the conversion to `[3, H, W]`: [`Self::resize_step`], then
    /// [`Self::augment`].
    pub fn apply(&self, img: &RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let resized = self.resize_step(img, rng);
        self.augment(resized, rng)
    }

    /// What the decoded cache may store for this transform: a description of its resize when
    /// that step draws nothing (`None` for a random resized crop).
    pub fn cacheable_prefix(&self) -> Option<String> {
        match &self.resize {
            ResizeSpec::RandomResizedCrop { .. } => None,
            other => Some(format!("{other:?}")),
        }
    }

    /// The resize step alone: the image at the output size.
    pub fn resize_step(&self, img: &RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        match &self.resize {
            ResizeSpec::Square { size } => resize_exact(img, *size, *size),
            ResizeSpec::ShorterCenterCrop { shorter, crop } => {
                center_crop(&resize_shorter_side(img, *shorter), *crop, *crop)
            }
            ResizeSpec::RandomResizedCrop { size, scale, ratio } => {
                let (x, y, w, h) =
                    random_resized_crop_box(img.width(), img.height(), *scale, *ratio, rng);
                let crop = image::imageops::crop_imm(img, x, y, w, h).to_image();
                resize_exact(&crop, *size, *size)
            }
        }
    }

    /// The steps after the resize: cutout, RandAugment, flip, colour jitter.
    pub fn augment(&self, resized: RgbImage, rng: &mut ChaCha8Rng) -> RgbImage {
        let mut out = resized;
        if let Some(factor) = self.cutout {
            cutout_pil(&mut out, factor, rng);
        }
        if self.rand_augment {
            out = super::randaugment::rand_augment(&out, rng);
        }
        // torchvision's RandomHorizontalFlip: flip when torch.rand(1) < p.
        if self.hflip > 0.0 && unit_f64(rng) < self.hflip {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        if let Some(jitter) = &self.color_jitter {
            out = jitter.apply(&out, rng);
        }
        out
    }

    /// Writes `img` as `[3, H, W]` f32: `x / 255`, then normalised if asked.
    pub fn write_chw_f32(&self, img: &RgbImage, out: &mut [f32]) {
        let plane = (img.width() * img.height()) as usize;
        let (mean, std) = match &self.normalize {
            Some(n) => (n.mean, n.std),
            None => ([0.0; 3], [1.0; 3]),
        };
        // One table per channel holds the formula's value for each byte, so the loop is a
        // lookup per value with the same result as computing it.
        let tables: [[f32; 256]; 3] =
            std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - mean[c]) / std[c]));
        for (c, (dst, table)) in out.chunks_exact_mut(plane).zip(&tables).enumerate() {
            for (d, px) in dst.iter_mut().zip(img.as_raw().chunks_exact(3)) {
                *d = table[usize::from(px[c])];
            }
        }
    }

    /// Writes `img` as `[3, H, W]` u8 (normalisation left to the device).
    pub fn write_chw_u8(img: &RgbImage, out: &mut [u8]) {
        let plane = (img.width() * img.height()) as usize;
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = p.0[c];
            }
        }
    }
}

/// The ASL recipe's `CutoutPIL(factor)`: one box of `int(factor * side + 0.5)` around a
/// uniformly drawn centre, clipped to the image, corners inclusive (PIL's `rectangle`), filled
/// with one uniformly drawn RGB colour. As the reference, the box's vertical extent comes from
/// the image's width and its horizontal one from the height (it names `size[0]` "h"); the
/// same for the square inputs the recipe uses.
fn cutout_pil(img: &mut RgbImage, factor: f64, rng: &mut ChaCha8Rng) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let (ref_h, ref_w) = (w, h);
    let h_cut = (factor * ref_h as f64 + 0.5) as i64;
    let w_cut = (factor * ref_w as f64 + 0.5) as i64;
    let y_c = i64::from(crate::rng::interval(rng, (ref_h - 1).max(0) as u32));
    let x_c = i64::from(crate::rng::interval(rng, (ref_w - 1).max(0) as u32));
    let (y1, y2) = (
        (y_c - h_cut / 2).clamp(0, ref_h),
        (y_c + h_cut / 2).clamp(0, ref_h),
    );
    let (x1, x2) = (
        (x_c - w_cut / 2).clamp(0, ref_w),
        (x_c + w_cut / 2).clamp(0, ref_w),
    );
    let colour = image::Rgb([0, 1, 2].map(|_| crate::rng::interval(rng, 255) as u8));
    for y in y1..=y2.min(h - 1) {
        for x in x1..=x2.min(w - 1) {
            img.put_pixel(x as u32, y as u32, colour);
        }
    }
}

/// torchvision's `RandomResizedCrop.get_params`: `(x, y, width, height)` of the crop.
fn random_resized_crop_box(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut ChaCha8Rng,
) -> (u32, u32, u32, u32) {
    let (w0, h0) = (f64::from(width), f64::from(height));
    let area = w0 * h0;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    let uniform = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| lo + (hi - lo) * unit_f64(rng);
    for _ in 0..10 {
        let target = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target * aspect).sqrt().round();
        let h = (target / aspect).sqrt().round();
        if w > 0.0 && h > 0.0 && w <= w0 && h <= h0 {
            let (w, h) = (w as u32, h as u32);
            // torch.randint(0, H - h + 1): uniform over the valid offsets.
            let y = crate::rng::interval(rng, height - h);
            let x = crate::rng::interval(rng, width - w);
            return (x, y, w, h);
        }
    }
    // Fallback: the whole image, with the ratio clamped into range, centred.
    let in_ratio = w0 / h0;
    let (w, h) = if in_ratio < ratio.0.min(ratio.1) {
        (w0, (w0 / ratio.0.min(ratio.1)).round())
    } else if in_ratio > ratio.0.max(ratio.1) {
        ((h0 * ratio.0.max(ratio.1)).round(), h0)
    } else {
        (w0, h0)
    };
    let (w, h) = (w as u32, h as u32);
    ((width - w) / 2, (height - h) / 2, w, h)
}

#[cfg(test)]
mod tests {

    #[test]
    fn named_transforms_are_the_recipes_and_others_are_none() {
        for name in Transform::NAMES {
            let t = Transform::named(name, 96).unwrap();
            assert_eq!(t.name, name);
            assert_eq!(t.output_size(), (96, 96));
        }
        assert_eq!(Transform::named("spml", 448), Some(Transform::spml(448)));
        assert!(Transform::named("asl", 448).unwrap().rand_augment);
        assert!(Transform::named("eval", 64).unwrap().normalize.is_some());
        assert_eq!(Transform::named("flip", 64), None);
    }
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 7])
        })
    }

    #[test]
    fn a_sample_draws_the_same_whatever_else_was_drawn() {
        let t = Transform::spml(32);
        let img = gradient(64, 48);
        let first = t.apply(&img, &mut sample_rng(3, 1, 17));
        // Other samples drawn in between change nothing.
        for row in 0..5 {
            t.apply(&img, &mut sample_rng(3, 1, row));
        }
        assert_eq!(first, t.apply(&img, &mut sample_rng(3, 1, 17)));
    }

    #[test]
    fn flip_probability_means_what_torchvision_means() {
        let t = Transform::spml(16);
        let img = gradient(16, 16);
        let unflipped = resize_exact(&img, 16, 16);
        let flips = (0..2000)
            .filter(|&row| t.apply(&img, &mut sample_rng(0, 1, row)) != unflipped)
            .count();
        // Binomial(2000, 0.5): 1000 +- 22 (one sd); 5 sd either side.
        assert!((890..=1110).contains(&flips), "{flips}");
        let never = Transform {
            hflip: 0.0,
            ..t.clone()
        };
        assert!((0..50).all(|row| never.apply(&img, &mut sample_rng(0, 1, row)) == unflipped));
        let flipped = t.apply(&img, &mut sample_rng(0, 1, 0));
        if flipped != unflipped {
            assert_eq!(flipped.get_pixel(0, 5), unflipped.get_pixel(15, 5));
        }
    }

    #[test]
    fn random_resized_crop_respects_scale_and_ratio() {
        let scale = (0.3, 0.6);
        let ratio = (0.75, 4.0 / 3.0);
        for row in 0..300 {
            let (x, y, w, h) =
                random_resized_crop_box(640, 480, scale, ratio, &mut sample_rng(1, 2, row));
            assert!(x + w <= 640 && y + h <= 480);
            let area = f64::from(w * h) / (640.0 * 480.0);
            // Rounding each side moves the area by at most about 1 %.
            assert!(area > scale.0 - 0.01 && area < scale.1 + 0.01, "{area}");
            let r = f64::from(w) / f64::from(h);
            assert!(r > ratio.0 - 0.01 && r < ratio.1 + 0.01, "{r}");
        }
        // A scale no crop can reach (wider than the image) falls back to the centred whole.
        let (x, y, w, h) =
            random_resized_crop_box(100, 10, (1.0, 1.0), (1.0, 1.0), &mut sample_rng(0, 1, 0));
        assert_eq!((x, y, w, h), (45, 0, 10, 10));
    }

    #[test]
    fn cutout_paints_one_clipped_box_of_half_the_side() {
        let t = Transform {
            cutout: Some(0.5),
            normalize: None,
            ..Transform::eval(448, None)
        };
        let img = RgbImage::from_pixel(448, 448, image::Rgb([1, 2, 3]));
        let mut sizes = Vec::new();
        for row in 0..200 {
            let out = t.apply(&img, &mut sample_rng(4, 1, row));
            let painted: Vec<(u32, u32)> = out
                .enumerate_pixels()
                .filter(|(_, _, p)| p.0 != [1, 2, 3])
                .map(|(x, y, _)| (x, y))
                .collect();
            if painted.is_empty() {
                continue; // the drawn colour equals the background: 1 in 2^24
            }
            let (x0, x1) = (
                painted.iter().map(|p| p.0).min().unwrap(),
                painted.iter().map(|p| p.0).max().unwrap(),
            );
            let (y0, y1) = (
                painted.iter().map(|p| p.1).min().unwrap(),
                painted.iter().map(|p| p.1).max().unwrap(),
            );
            // One solid rectangle: every pixel inside the bounds is painted.
            assert_eq!(painted.len() as u32, (x1 - x0 + 1) * (y1 - y0 + 1));
            // centre +- 112, inclusive: 225 wide unless clipped by an edge.
            assert!(x1 - x0 < 225 && y1 - y0 < 225);
            sizes.push((x1 - x0 + 1, y1 - y0 + 1));
        }
        assert!(sizes.contains(&(225, 225)), "an unclipped box is 225 x 225");
        assert!(
            sizes.iter().any(|s| s.0 < 225),
            "boxes near an edge are clipped"
        );
    }

    #[test]
    fn the_asl_recipe_cuts_out_augments_and_does_not_normalise() {
        let t = Transform::asl(64);
        assert!(t.is_random() && t.normalize.is_none());
        let img = gradient(80, 60);
        let plain = resize_exact(&img, 64, 64);
        let outs: Vec<RgbImage> = (0..20)
            .map(|row| t.apply(&img, &mut sample_rng(9, 1, row)))
            .collect();
        // The cutout alone changes every sample.
        assert!(outs.iter().all(|o| *o != plain));
        assert_eq!(outs[3], t.apply(&img, &mut sample_rng(9, 1, 3)));
        let mut values = vec![0.0; 3 * 64 * 64];
        t.write_chw_f32(&outs[0], &mut values);
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn colour_jitter_factors_stay_in_their_ranges() {
        let flat = RgbImage::from_pixel(8, 8, image::Rgb([100, 100, 100]));
        let brightness_only = Transform {
            color_jitter: Some(ColorJitter {
                brightness: 0.4,
                ..ColorJitter::default()
            }),
            ..Transform::eval(8, None)
        };
        let mut seen = Vec::new();
        for row in 0..300 {
            let v = brightness_only
                .apply(&flat, &mut sample_rng(2, 1, row))
                .get_pixel(0, 0)
                .0[0];
            // factor in [0.6, 1.4] on 100, truncated.
            assert!((60..=140).contains(&v), "{v}");
            seen.push(v);
        }
        assert!(seen.iter().any(|&v| v < 70) && seen.iter().any(|&v| v > 130));
        // A grey image has nothing to saturate or to contrast with its own mean.
        let others = Transform {
            color_jitter: Some(ColorJitter {
                brightness: 0.0,
                contrast: 0.5,
                saturation: 0.5,
                hue: 0.0,
            }),
            ..Transform::eval(8, None)
        };
        assert!((0..20).all(|row| others.apply(&flat, &mut sample_rng(2, 1, row)) == flat));
    }

    #[test]
    fn normalisation_and_layout() {
        let img = RgbImage::from_fn(2, 1, |x, _| {
            if x == 0 {
                image::Rgb([255, 0, 51])
            } else {
                image::Rgb([0, 255, 102])
            }
        });
        let mut out = vec![0.0; 6];
        Transform::eval(2, None).write_chw_f32(&img, &mut out);
        assert_eq!(out, [1.0, 0.0, 0.0, 1.0, 0.2, 0.4]);
        Transform::eval(2, Some(Normalize::imagenet())).write_chw_f32(&img, &mut out);
        assert!((out[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((out[2] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        let mut bytes = vec![0u8; 6];
        Transform::write_chw_u8(&img, &mut bytes);
        assert_eq!(bytes, [255, 0, 0, 255, 51, 102]);
    }
}
