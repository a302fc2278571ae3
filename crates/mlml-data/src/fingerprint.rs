//! Stable hashes and file stamps for cache keys: the decoded-image cache here, the linear
//! probe's feature cache in `mlml-train`.

use std::path::Path;

/// FNV-1a's 64-bit offset basis: the hash of nothing, where a running hash starts.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes` continuing from `hash` (not for security).
pub fn fnv1a_extend(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_extend(FNV_START, bytes)
}

/// A file's size and modification time (nanoseconds since the Unix epoch; 0 where the platform
/// gives none): what changes when the file is rewritten.
///
/// # Errors
/// A file whose metadata cannot be read.
pub fn file_stamp(path: &Path) -> std::io::Result<(u64, u128)> {
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((meta.len(), modified))
}

/// `path size mtime` for a key, or `path (unreadable)`.
pub fn file_stamp_text(path: &Path) -> String {
    match file_stamp(path) {
        Ok((len, modified)) => format!("{} {len} {modified}", path.display()),
        Err(_) => format!("{} (unreadable)", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference (Fowler, Noll, Vo): "" and "a".
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_extend(fnv1a(b"foo"), b"bar"), fnv1a(b"foobar"));
    }
}
