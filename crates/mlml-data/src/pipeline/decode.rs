//! Decoding any JPEG or PNG to 8-bit RGB, as PIL's `Image.open(p).convert("RGB")` does.

use std::path::{Path, PathBuf};

use std::io::Cursor;

use image::{ImageFormat, RgbImage};

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
/// A JPEG must reach its end-of-image marker: the decoder fills the rest of a cut file with
/// grey and reports nothing, where PIL refuses it ("image file is truncated"), so a cut JPEG is
/// an error here as it is there ([`jpeg_truncation`]). A cut PNG fails its decoder's checks.
///
/// # Errors
/// A missing or unreadable file, an unknown format, or a truncated or corrupt image; the
/// message names the path.
pub fn decode_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ImageError::new(path, "missing")
        } else {
            ImageError::new(path, e.to_string())
        }
    })?;
    let reader = image::ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::new(path, e.to_string()))?;
    if reader.format() == Some(ImageFormat::Jpeg) {
        if let Some(problem) = jpeg_truncation(&bytes) {
            return Err(ImageError::new(path, problem));
        }
    }
    let decoded = reader
        .decode()
        .map_err(|e| ImageError::new(path, e.to_string()))?;
    Ok(decoded.into_rgb8())
}

/// Why a JPEG's bytes end before its image does, or `None` when they reach the end-of-image
/// marker. Walks the marker segments by their lengths (so that a thumbnail's markers inside an
/// APP segment are skipped) and each scan's entropy-coded data up to the marker that ends it (a
/// 0xFF byte there is always followed by a stuffed 0x00 or a restart marker), as far as EOI;
/// bytes after EOI are allowed, as every decoder ignores them.
pub fn jpeg_truncation(bytes: &[u8]) -> Option<&'static str> {
    const TRUNCATED: &str =
        "image file is truncated (it ends before the JPEG's end-of-image marker)";
    let is_restart = |m: u8| (0xD0..=0xD7).contains(&m);
    let mut i = 2; // past SOI
    loop {
        // The next marker: 0xFF, any fill bytes 0xFF, the marker code.
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1; // stray bytes before a marker, as libjpeg skips them
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return Some(TRUNCATED);
        };
        i += 1;
        match marker {
            0xD9 => return None,
            0xD8 | 0x01 => continue,
            m if is_restart(m) => continue,
            _ => {}
        }
        let Some(length) = bytes.get(i..i + 2) else {
            return Some(TRUNCATED);
        };
        let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
        if length < 2 {
            return Some("corrupt JPEG: a marker segment shorter than its length field");
        }
        i += length;
        if i > bytes.len() {
            return Some(TRUNCATED);
        }
        if marker == 0xDA {
            // The scan's entropy-coded data, up to the marker after it.
            loop {
                match bytes.get(i..i + 2) {
                    None => return Some(TRUNCATED),
                    Some([0xFF, next]) if *next != 0x00 && *next != 0xFF && !is_restart(*next) => {
                        break;
                    }
                    _ => i += 1,
                }
            }
        }
    }
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

    fn photo(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/photos")
            .join(name);
        std::fs::read(path).unwrap()
    }

    /// Cut at 10, 33, 66, 90 and 99 % of its bytes (a JPEG also just before its last byte), every
    /// JPEG fails with its path and "truncated" (PIL: "image file is truncated"), every PNG
    /// fails too; the whole files decode, and so does a JPEG with bytes after its end.
    #[test]
    fn truncated_jpegs_and_pngs_are_errors_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let encoded = dir.path().join("encoded.jpg");
        let noise: Vec<u8> = (0..48 * 40 * 3).map(|i| (i * 37 % 251) as u8).collect();
        RgbImage::from_raw(48, 40, noise)
            .unwrap()
            .save(&encoded)
            .unwrap();
        for (name, bytes) in [
            ("rocket.jpg", photo("rocket.jpg")),
            ("chelsea-cmyk.jpg", photo("chelsea-cmyk.jpg")),
            ("encoded.jpg", std::fs::read(&encoded).unwrap()),
            ("chelsea.png", photo("chelsea.png")),
        ] {
            let whole = dir.path().join(name);
            std::fs::write(&whole, &bytes).unwrap();
            decode_rgb(&whole).unwrap_or_else(|e| panic!("{name} whole: {e}"));
            let mut cuts: Vec<usize> = [10, 33, 66, 90, 99]
                .iter()
                .map(|p| bytes.len() * p / 100)
                .collect();
            if name.ends_with(".jpg") {
                // Only the end-of-image marker's last byte missing. (A PNG without the last
                // byte of its IEND chunk has all its pixels and decodes, in PIL too.)
                cuts.push(bytes.len() - 1);
            }
            for cut in cuts {
                let path = dir.path().join(format!("{cut}-{name}"));
                std::fs::write(&path, &bytes[..cut]).unwrap();
                let Err(err) = decode_rgb(&path) else {
                    panic!("{name} cut at {cut} of {} bytes decoded", bytes.len());
                };
                assert_eq!(err.path, path);
                if name.ends_with(".jpg") {
                    assert!(err.message.contains("truncated"), "{name} at {cut}: {err}");
                }
            }
        }
        let mut trailing = photo("rocket.jpg");
        trailing.extend_from_slice(b"\0\0 bytes after EOI, as some cameras write");
        let path = dir.path().join("trailing.jpg");
        std::fs::write(&path, &trailing).unwrap();
        assert_eq!(decode_rgb(&path).unwrap().dimensions(), (640, 427));
    }

    /// An EOI inside an APP segment (an EXIF thumbnail's) does not end the walk: the cut main
    /// image is still truncated, the whole one is not.
    #[test]
    fn an_end_marker_inside_a_segment_is_skipped() {
        let jpeg = photo("rocket.jpg");
        let thumbnail: &[u8] = &[0xFF, 0xD8, 0x00, 0x11, 0xFF, 0xD9];
        let mut with_app1 = jpeg[..2].to_vec();
        with_app1.extend_from_slice(&[0xFF, 0xE1]);
        with_app1.extend_from_slice(&((thumbnail.len() + 2) as u16).to_be_bytes());
        with_app1.extend_from_slice(thumbnail);
        with_app1.extend_from_slice(&jpeg[2..]);
        assert_eq!(jpeg_truncation(&with_app1), None);
        let cut = &with_app1[..with_app1.len() / 2];
        assert!(jpeg_truncation(cut).unwrap().contains("truncated"));
        assert!(jpeg_truncation(&with_app1[..10])
            .unwrap()
            .contains("truncated"));
    }
}
