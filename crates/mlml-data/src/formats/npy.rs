//! NumPy `.npy` files (format 1.0/2.0/3.0, little-endian, C order): label matrices and the
//! unicode image lists of the single-positive line of work. `.npy.gz` is read too.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{read_file, DataError, Result};
use crate::labels::{NEGATIVE, POSITIVE, UNOBSERVED};

/// The element type of an array, from its `descr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    Bool,
    Int(usize),
    Uint(usize),
    Float(usize),
    /// Fixed-width UTF-32 strings of this many code points.
    Unicode(usize),
}

impl Dtype {
    /// `<i8`, `|b1`, `<U12`, ...; `None` for anything else (empty, one character, a
    /// big-endian or non-ASCII order mark, a zero-width or absurdly wide string).
    fn parse(descr: &str) -> Option<Self> {
        let rest = descr
            .strip_prefix('<')
            .or_else(|| descr.strip_prefix('|'))
            .or_else(|| descr.strip_prefix('='))?;
        let mut chars = rest.chars();
        let kind = chars.next()?;
        let size: usize = chars.as_str().parse().ok()?;
        match (kind, size) {
            ('b', 1) => Some(Dtype::Bool),
            ('i', 1 | 2 | 4 | 8) => Some(Dtype::Int(size)),
            ('u', 1 | 2 | 4 | 8) => Some(Dtype::Uint(size)),
            ('f', 4 | 8) => Some(Dtype::Float(size)),
            // A path of more than 64k code points is not an image path.
            ('U', 1..=65_536) => Some(Dtype::Unicode(size)),
            _ => None,
        }
    }

    fn item_size(self) -> usize {
        match self {
            Dtype::Bool => 1,
            Dtype::Int(s) | Dtype::Uint(s) | Dtype::Float(s) => s,
            Dtype::Unicode(n) => 4 * n,
        }
    }
}

/// A parsed array: its shape, element type and raw little-endian bytes.
struct RawArray {
    shape: Vec<usize>,
    dtype: Dtype,
    data: Vec<u8>,
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

fn parse_header(path: &Path, header: &str) -> Result<(Dtype, Vec<usize>)> {
    let bad = |message: String| DataError::parse(path, "header", message);
    let descr = header_value(header, "descr")
        .and_then(|v| v.strip_prefix('\''))
        .and_then(|v| v.split('\'').next())
        .ok_or_else(|| bad(format!("no 'descr' in {header:?}")))?;
    let dtype = Dtype::parse(descr).ok_or_else(|| {
        bad(format!(
            "unsupported dtype '{descr}' (little-endian bool, int, uint, float or unicode of 1 to 65536 characters expected)"
        ))
    })?;
    let fortran =
        header_value(header, "fortran_order").ok_or_else(|| bad("no 'fortran_order'".into()))?;
    if fortran.starts_with("True") {
        return Err(bad(
            "Fortran-ordered arrays are not supported; save with C order".into(),
        ));
    }
    let shape_text = header_value(header, "shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or_else(|| bad(format!("no 'shape' in {header:?}")))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("bad dimension '{s}' in shape")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((dtype, shape))
}

fn read_raw(path: &Path) -> Result<RawArray> {
    let mut bytes = read_file(path)?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut inflated)
            .map_err(|e| DataError::parse(path, "gzip stream", e.to_string()))?;
        bytes = inflated;
    }
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err(DataError::parse(
            path,
            "byte 0",
            "not a .npy file (no \\x93NUMPY magic)",
        ));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => {
            return Err(DataError::parse(
                path,
                "byte 6",
                format!("unsupported .npy version {v}"),
            ))
        }
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .ok_or_else(|| DataError::parse(path, "header", "file ends inside the header"))?;
    let header =
        std::str::from_utf8(header).map_err(|_| DataError::parse(path, "header", "not text"))?;
    let (dtype, shape) = parse_header(path, header)?;
    let expected = shape
        .iter()
        .try_fold(dtype.item_size(), |bytes, &d| bytes.checked_mul(d))
        .ok_or_else(|| {
            DataError::invalid(
                path,
                format!("shape {shape:?} is too large: its byte count overflows"),
            )
        })?;
    let data = bytes.split_off(data_start);
    if data.len() != expected {
        return Err(DataError::invalid(
            path,
            format!(
                "shape {shape:?} of {} bytes each needs {expected} data bytes, the file has {}",
                dtype.item_size(),
                data.len()
            ),
        ));
    }
    Ok(RawArray { shape, dtype, data })
}

/// How to read a `0` in a label file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ZeroMeans {
    /// `0` is an unobserved entry (mlml's convention, and the `*_labels_obs.npy` files).
    #[default]
    Unobserved,
    /// `0` is an observed negative (full 0/1 label files such as `formatted_*_labels.npy`).
    Negative,
}

/// A label matrix read from `.npy`: shape and codes (1, -1, 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyLabels {
    /// Rows.
    pub n_samples: usize,
    /// Columns.
    pub n_classes: usize,
    /// Codes, row-major.
    pub values: Vec<i8>,
}

/// Reads a 2-D label matrix of any integer, bool or float dtype whose values are 1, 0 or -1.
///
/// # Errors
/// When the file is unreadable, not 2-D, or holds another value (the error names row and column).
pub fn read_labels(path: &Path, zero_means: ZeroMeans) -> Result<NpyLabels> {
    let raw = read_raw(path)?;
    let [n_samples, n_classes] = raw.shape[..] else {
        return Err(DataError::invalid(
            path,
            format!("label matrix must be 2-D, shape is {:?}", raw.shape),
        ));
    };
    let size = raw.dtype.item_size();
    let decode = |chunk: &[u8]| -> f64 {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        match raw.dtype {
            Dtype::Bool | Dtype::Uint(_) => u64::from_le_bytes(b) as f64,
            Dtype::Int(s) => {
                let shift = 64 - 8 * s as u32;
                ((i64::from_le_bytes(b) << shift) >> shift) as f64
            }
            Dtype::Float(4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Dtype::Float(_) => f64::from_le_bytes(b),
            Dtype::Unicode(_) => f64::NAN,
        }
    };
    if matches!(raw.dtype, Dtype::Unicode(_)) {
        return Err(DataError::invalid(
            path,
            "a label matrix cannot hold strings",
        ));
    }
    let zero = match zero_means {
        ZeroMeans::Unobserved => UNOBSERVED,
        ZeroMeans::Negative => NEGATIVE,
    };
    let mut values = Vec::with_capacity(n_samples * n_classes);
    for (k, chunk) in raw.data.chunks_exact(size).enumerate() {
        let v = decode(chunk);
        let code = if v == 1.0 {
            POSITIVE
        } else if v == 0.0 {
            zero
        } else if v == -1.0 {
            NEGATIVE
        } else {
            return Err(DataError::parse(
                path,
                format!("row {}, column {}", k / n_classes, k % n_classes),
                format!("label value {v} is not 1, 0 or -1"),
            ));
        };
        values.push(code);
    }
    Ok(NpyLabels {
        n_samples,
        n_classes,
        values,
    })
}

/// Reads a 1-D array of unicode strings (NumPy's `<U*`), trailing NULs removed.
///
/// # Errors
/// When the file is unreadable, not 1-D unicode, or holds an invalid code point.
pub fn read_strings(path: &Path) -> Result<Vec<String>> {
    let raw = read_raw(path)?;
    let Dtype::Unicode(width) = raw.dtype else {
        return Err(DataError::invalid(
            path,
            "expected an array of unicode strings (dtype <U...)",
        ));
    };
    if raw.shape.len() != 1 {
        return Err(DataError::invalid(
            path,
            format!("string list must be 1-D, shape is {:?}", raw.shape),
        ));
    }
    if width == 0 {
        return Ok(vec![String::new(); raw.shape[0]]);
    }
    raw.data
        .chunks_exact(4 * width)
        .enumerate()
        .map(|(i, item)| {
            item.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .take_while(|&cp| cp != 0)
                .map(|cp| {
                    char::from_u32(cp).ok_or_else(|| {
                        DataError::parse(
                            path,
                            format!("item {i}"),
                            format!("invalid code point {cp:#x}"),
                        )
                    })
                })
                .collect()
        })
        .collect()
}

/// A `u8` array read from `.npy` (8-bit images).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyBytes {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, C order.
    pub values: Vec<u8>,
}

/// Reads a `|u1` array (8-bit images, `.npy` or `.npy.gz`).
///
/// # Errors
/// When the file is unreadable, malformed or of another dtype.
pub fn read_u8(path: &Path) -> Result<NpyBytes> {
    let raw = read_raw(path)?;
    if raw.dtype != Dtype::Uint(1) {
        return Err(DataError::invalid(
            path,
            format!(
                "expected an 8-bit unsigned array (|u1), found {:?}",
                raw.dtype
            ),
        ));
    }
    Ok(NpyBytes {
        shape: raw.shape,
        values: raw.data,
    })
}

/// A float array read from `.npy`: its shape and values as `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyFloats {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, C order.
    pub values: Vec<f32>,
}

/// Reads an array of any numeric dtype as `f32` (features, images, model inputs).
///
/// # Errors
/// When the file is unreadable or holds strings.
pub fn read_f32(path: &Path) -> Result<NpyFloats> {
    let raw = read_raw(path)?;
    let size = raw.dtype.item_size();
    let values = raw
        .data
        .chunks_exact(size)
        .map(|b| match raw.dtype {
            Dtype::Float(4) => Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Dtype::Float(_) => Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32),
            Dtype::Bool | Dtype::Uint(1) => Ok(f32::from(b[0])),
            Dtype::Int(1) => Ok(f32::from(b[0] as i8)),
            Dtype::Int(_) | Dtype::Uint(_) => {
                let mut w = [0u8; 8];
                w[..b.len()].copy_from_slice(b);
                let shift = 64 - 8 * b.len() as u32;
                Ok(if matches!(raw.dtype, Dtype::Int(_)) {
                    ((i64::from_le_bytes(w) << shift) >> shift) as f32
                } else {
                    u64::from_le_bytes(w) as f32
                })
            }
            Dtype::Unicode(_) => Err(DataError::invalid(path, "expected numbers, found strings")),
        })
        .collect::<Result<Vec<f32>>>()?;
    Ok(NpyFloats {
        shape: raw.shape,
        values,
    })
}

fn header_bytes(descr: &str, shape: &str) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // NumPy pads so that the data starts on a 64-byte boundary, the header ending in '\n'.
    let total = 10 + header.len() + 1;
    header.extend(std::iter::repeat_n(' ', (64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Encodes an f32 array of any shape as `.npy` bytes (`<f4`, C order).
pub fn f32_bytes(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut out = header_bytes("<f4", &shape);
    out.reserve(4 * values.len());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Encodes a label matrix as `.npy` bytes of dtype `int8` (codes 1, -1, 0).
pub fn label_bytes(n_samples: usize, n_classes: usize, values: &[i8]) -> Vec<u8> {
    let mut out = header_bytes("|i1", &format!("({n_samples}, {n_classes})"));
    out.extend(values.iter().map(|v| *v as u8));
    out
}

/// Encodes a list of strings as a NumPy `<U*` array.
pub fn string_bytes(items: &[String]) -> Vec<u8> {
    let width = items
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut out = header_bytes(&format!("<U{width}"), &format!("({},)", items.len()));
    for s in items {
        let n = s.chars().count();
        for ch in s.chars() {
            out.extend_from_slice(&(ch as u32).to_le_bytes());
        }
        out.extend(std::iter::repeat_n(0u8, 4 * (width - n)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn labels_round_trip_and_header_is_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let values = [1, 0, -1, 1, 1, -1];
        let bytes = label_bytes(2, 3, &values);
        assert_eq!(
            (bytes.len() - 6) % 64,
            0,
            "data starts on a 64-byte boundary"
        );
        let path = write(dir.path(), "l.npy", &bytes);
        let read = read_labels(&path, ZeroMeans::Unobserved).unwrap();
        assert_eq!((read.n_samples, read.n_classes), (2, 3));
        assert_eq!(read.values, values);
    }

    #[test]
    fn float_zero_one_files_read_as_full_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = header_bytes("<f8", "(1, 3)");
        for v in [1.0f64, 0.0, 1.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let path = write(dir.path(), "f.npy", &bytes);
        assert_eq!(
            read_labels(&path, ZeroMeans::Negative).unwrap().values,
            [1, -1, 1]
        );
    }

    #[test]
    fn bad_values_name_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = header_bytes("<f4", "(2, 2)");
        for v in [1.0f32, 0.0, 0.5, 1.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let path = write(dir.path(), "bad.npy", &bytes);
        let err = read_labels(&path, ZeroMeans::Unobserved)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.npy:row 1, column 0: label value 0.5"),
            "{err}"
        );
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = label_bytes(3, 3, &[1; 9]);
        bytes.truncate(bytes.len() - 2);
        let path = write(dir.path(), "short.npy", &bytes);
        let err = read_labels(&path, ZeroMeans::Unobserved)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs 9 data bytes, the file has 7"), "{err}");
        let path = write(dir.path(), "text.npy", b"hello");
        assert!(read_labels(&path, ZeroMeans::Unobserved).is_err());
        let path = write(dir.path(), "big.npy", &header_bytes(">i4", "(1, 1)"));
        let err = read_labels(&path, ZeroMeans::Unobserved)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported dtype '>i4'"), "{err}");
    }

    /// Headers that used to panic or overflow: each is a clear error naming the file.
    #[test]
    fn malformed_headers_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, &str, &str)] = &[
            ("", "(1, 1)", "unsupported dtype ''"),
            ("<", "(1, 1)", "unsupported dtype '<'"),
            ("é4", "(1, 1)", "unsupported dtype 'é4'"),
            ("<é4", "(1, 1)", "unsupported dtype '<é4'"),
            ("<U0", "(18446744073709551615,)", "unsupported dtype '<U0'"),
            ("<U99999999999999999999", "(1,)", "unsupported dtype"),
            (
                "<i8",
                "(4294967296, 4294967296)",
                "too large: its byte count overflows",
            ),
            (
                "<U4",
                "(9223372036854775807,)",
                "too large: its byte count overflows",
            ),
            ("<i1", "(1, x)", "bad dimension 'x' in shape"),
        ];
        for (i, (descr, shape, expected)) in cases.iter().enumerate() {
            let path = write(
                dir.path(),
                &format!("h{i}.npy"),
                &header_bytes(descr, shape),
            );
            let labels = read_labels(&path, ZeroMeans::Unobserved).map(|_| ());
            let strings = read_strings(&path).map(|_| ());
            for result in [labels, strings] {
                let err = result.unwrap_err().to_string();
                assert!(
                    err.contains(&format!("h{i}.npy")) && err.contains(expected),
                    "{descr} {shape}: {err}"
                );
            }
        }
    }

    #[test]
    fn strings_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let items = vec![
            "train2014/a.jpg".to_string(),
            "é/b.jpg".into(),
            String::new(),
        ];
        let path = write(dir.path(), "s.npy", &string_bytes(&items));
        assert_eq!(read_strings(&path).unwrap(), items);
    }
}
