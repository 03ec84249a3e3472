//! The one error type of the CLI: a message printed as `memshim: error: ...`, exit code 2.

use std::fmt;

/// A failure the user can act on; `main` prints it on one line and exits with code 2.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the source said.
        let one_line: String = self.0.replace('\n', " ");
        f.write_str(one_line.trim())
    }
}

impl CliError {
    pub fn new(msg: impl Into<String>) -> Self {
        CliError(msg.into())
    }

    /// Prefixes the error with the file it is about.
    pub fn about(path: &std::path::Path, e: impl fmt::Display) -> Self {
        CliError(format!("{}: {e}", path.display()))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, CliError>;
