//! Writing results: stdout that tolerates a closed pipe (`memshim report | head`), and files.

use std::io::Write;
use std::path::Path;

use crate::error::{CliError, Result};

/// Prints to stdout; a reader that went away (EPIPE) is not an error.
pub fn print(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| CliError::new(format!("stdout: {e}"))),
    }
}

/// Writes a whole output file.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| CliError::about(path, e))
}

/// Writes the output file of an export and says so on stdout, in one line: where it went, its
/// size and `what` it holds (`wrote flame.svg (41.2 KiB): flamegraph of leaks, ...`).
pub fn write_export(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    write_file(path, bytes)?;
    print(&format!(
        "wrote {} ({}): {what}\n",
        path.display(),
        crate::units::bytes(bytes.len() as f64)
    ))
}
