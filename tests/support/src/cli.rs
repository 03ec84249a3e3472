//! Running the built `memshim` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `memshim` binary of this build (`cargo test` builds it before the package's tests).
pub fn memshim_path() -> PathBuf {
    crate::dirs::build_dir().join("memshim")
}

/// A command running the `memshim` binary.
pub fn memshim() -> Command {
    Command::new(memshim_path())
}

/// Runs memshim with `args`; returns its output.
pub fn run(args: &[&str]) -> Output {
    memshim().args(args).output().expect("memshim runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
