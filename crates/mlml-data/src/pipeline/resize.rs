//! Resizing as PIL does for torchvision's `Resize`: bilinear with antialiasing (the filter's
//! support widens by the downscale factor), by `fast_image_resize`'s SIMD convolution.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// Resizes to exactly `width x height` (aspect ratio not kept: the papers' `Resize((448, 448))`).
pub fn resize_exact(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    if img.dimensions() == (width, height) {
        return img.clone();
    }
    let src = ImageRef::new(img.width(), img.height(), img.as_raw(), PixelType::U8x3)
        .expect("an RgbImage buffer is width x height x 3");
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("same pixel type on both sides");
    RgbImage::from_raw(width, height, dst.into_vec()).expect("the resizer filled the buffer")
}

/// The output size of torchvision's `Resize(size)` with an int: the shorter side becomes
/// `size`, the longer `int(size * long / short)` (truncated, as torchvision computes it).
pub fn torchvision_shorter_side(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (short, long) = (width.min(height), width.max(height));
    let new_long = (u64::from(size) * u64::from(long) / u64::from(short.max(1))) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// torchvision's `Resize(size)` with an int: shorter side to `size`, aspect ratio kept.
pub fn resize_shorter_side(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = torchvision_shorter_side(img.width(), img.height(), size);
    resize_exact(img, w, h)
}

/// torchvision's `CenterCrop(size)`: the offsets are `int(round((side - size) / 2))` with
/// Python's rounding (half to even). An image smaller than the crop is padded with zeros
/// around, as torchvision pads.
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let offset = |side: u32, size: u32| -> i64 {
        let diff = i64::from(side) - i64::from(size);
        // round((diff) / 2) half to even: diff / 2 when diff is even; otherwise x.5 goes to
        // the even neighbour.
        let half = diff.div_euclid(2);
        if diff.rem_euclid(2) == 1 && half % 2 != 0 {
            half + 1
        } else {
            half
        }
    };
    let (x0, y0) = (offset(img.width(), width), offset(img.height(), height));
    RgbImage::from_fn(width, height, |x, y| {
        let (sx, sy) = (i64::from(x) + x0, i64::from(y) + y0);
        if sx >= 0 && sy >= 0 && sx < i64::from(img.width()) && sy < i64::from(img.height()) {
            *img.get_pixel(sx as u32, sy as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_side_truncates_the_longer_as_torchvision() {
        assert_eq!(torchvision_shorter_side(640, 480, 256), (341, 256));
        assert_eq!(torchvision_shorter_side(500, 375, 256), (341, 256));
        assert_eq!(torchvision_shorter_side(375, 500, 224), (224, 298));
        assert_eq!(torchvision_shorter_side(300, 300, 224), (224, 224));
    }

    #[test]
    fn center_crop_offsets_round_half_to_even() {
        let img = RgbImage::from_fn(7, 4, |x, y| image::Rgb([x as u8, y as u8, 0]));
        // (7 - 4) / 2 = 1.5 -> 2; (4 - 2) / 2 = 1.
        let c = center_crop(&img, 4, 2);
        assert_eq!(c.get_pixel(0, 0).0, [2, 1, 0]);
        // (7 - 2) / 2 = 2.5 -> 2.
        assert_eq!(center_crop(&img, 2, 2).get_pixel(0, 0).0[0], 2);
        // A crop larger than the image pads with zeros: (4 - 6) / 2 = -1.
        let padded = center_crop(&img, 7, 6);
        assert_eq!(padded.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(padded.get_pixel(3, 1).0, [3, 0, 0]);
    }

    #[test]
    fn resizing_keeps_a_flat_image_flat_and_averages_when_shrinking() {
        let flat = RgbImage::from_pixel(640, 480, image::Rgb([90, 120, 200]));
        let small = resize_exact(&flat, 224, 224);
        assert_eq!(small.dimensions(), (224, 224));
        assert!(small.pixels().all(|p| p.0 == [90, 120, 200]));
        // Alternating columns 0 / 255 shrunk by 4: antialiasing averages them to about 128,
        // where a point-sampling bilinear would return 0 or 255.
        let stripes = RgbImage::from_fn(64, 8, |x, _| {
            let v = if x % 2 == 0 { 0 } else { 255 };
            image::Rgb([v, v, v])
        });
        let shrunk = resize_exact(&stripes, 16, 2);
        for p in shrunk.pixels() {
            assert!((100..=155).contains(&p.0[0]), "{:?}", p.0);
        }
    }
}
