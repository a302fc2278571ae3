//! Decoding any JPEG or PNG to 8-bit RGB, as PIL's `Image.open(p).convert("RGB")` does.

use std::path::{Path, PathBuf};

use image::RgbImage;

/// An image that could not be used, with its path and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ImageError {
    /// The file.
    pub path: PathBuf,
    /// Missing, unreadable, or the decoder's message.
    pub message: String,
}

impl ImageError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Decodes a JPEG or PNG (format guessed from the bytes, not the name) to 8-bit RGB:
/// grayscale is repeated over the channels, palette images are expanded, alpha is dropped
/// (not composited), 16-bit samples are scaled to 8 bits, CMYK JPEGs are converted.
///
/// # Errors
/// A missing or unreadable file, an unknown format, or a truncated or corrupt image; the
/// message names the path.
pub fn decode_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    let reader = image::ImageReader::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ImageError::new(path, "missing")
        } else {
            ImageError::new(path, e.to_string())
        }
    })?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| ImageError::new(path, e.to_string()))?;
    let decoded = reader
        .decode()
        .map_err(|e| ImageError::new(path, e.to_string()))?;
    Ok(decoded.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgba, RgbaImage};

    #[test]
    fn every_colour_type_becomes_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let grey = dir.path().join("grey.png");
        GrayImage::from_pixel(3, 2, Luma([77])).save(&grey).unwrap();
        let rgb = decode_rgb(&grey).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.get_pixel(1, 1).0, [77, 77, 77]);

        let alpha = dir.path().join("alpha.png");
        RgbaImage::from_pixel(2, 2, Rgba([10, 20, 30, 0]))
            .save(&alpha)
            .unwrap();
        // PIL's convert("RGB") drops alpha without compositing on a background.
        assert_eq!(decode_rgb(&alpha).unwrap().get_pixel(0, 0).0, [10, 20, 30]);

        let deep = dir.path().join("deep.png");
        image::ImageBuffer::<Luma<u16>, _>::from_pixel(2, 2, Luma([0xFFFF]))
            .save(&deep)
            .unwrap();
        assert_eq!(
            decode_rgb(&deep).unwrap().get_pixel(0, 0).0,
            [255, 255, 255]
        );

        // The format comes from the bytes: a PNG named .jpg decodes.
        let misnamed = dir.path().join("really-a-png.jpg");
        std::fs::copy(&grey, &misnamed).unwrap();
        assert_eq!(decode_rgb(&misnamed).unwrap().dimensions(), (3, 2));
    }

    #[test]
    fn bad_files_name_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.jpg");
        let err = decode_rgb(&missing).unwrap_err();
        assert_eq!(err.message, "missing");
        assert!(err.to_string().contains("missing.jpg: missing"));

        let garbage = dir.path().join("garbage.jpg");
        std::fs::write(&garbage, b"not an image at all").unwrap();
        let err = decode_rgb(&garbage).unwrap_err();
        assert!(err.to_string().starts_with(&garbage.display().to_string()));

        let truncated = dir.path().join("truncated.png");
        let full = dir.path().join("full.png");
        RgbaImage::from_pixel(64, 64, Rgba([1, 2, 3, 255]))
            .save(&full)
            .unwrap();
        let bytes = std::fs::read(&full).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        assert!(decode_rgb(&truncated).is_err());
    }
}
