//! What the binary prints.

use std::io::Write as _;

use anyhow::Result;

/// Writes to stdout; a reader that stops early (`mlml ... | head`) is not an error.
pub fn print(text: &str) -> Result<()> {
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
