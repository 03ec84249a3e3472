//! Compiling the C fixtures with the system's `cc`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dirs::fixtures;

/// The CLI's fixtures are built unoptimized, so each function keeps its own frame and symbol.
const CLI_FLAGS: [&str; 2] = ["-g", "-O0"];
/// The shim's fixtures are built as programs usually are, with threads.
const SHIM_FLAGS: [&str; 4] = ["-O1", "-g", "-pthread", "-Wall"];

/// Compiles `src` into `dir` as `cc FLAGS -o OUT SRC EXTRA` (`EXTRA` after the source, where
/// libraries go) and returns OUT: the source's stem, or `lib<stem>.so` with `-shared` in
/// `extra`.
pub fn compile(dir: &Path, src: &Path, flags: &[&str], extra: &[&str]) -> PathBuf {
    let stem = src.file_stem().unwrap().to_str().unwrap();
    let out = dir.join(if extra.contains(&"-shared") {
        format!("lib{stem}.so")
    } else {
        stem.to_string()
    });
    compile_to(&out, src, flags, extra);
    out
}

/// `cc FLAGS -o OUT SRC EXTRA`; fails the test with cc's message when it fails.
pub fn compile_to(out: &Path, src: &Path, flags: &[impl AsRef<OsStr>], extra: &[&str]) {
    let o = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(src)
        .args(extra)
        .output()
        .expect("cc runs (install a C compiler)");
    assert!(
        o.status.success(),
        "cc failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Builds `src` as a Python extension module for the interpreter `py` (its headers, its
/// `EXT_SUFFIX`) into `dir`, with `opt` (`-O0`, `-O1`) and `extra` after the source (libraries
/// to link); returns the module's file.
pub fn python_extension(dir: &Path, py: &Path, src: &Path, opt: &str, extra: &[&str]) -> PathBuf {
    let include = crate::python::sysconfig(py, "sysconfig.get_paths()['include']");
    let suffix = crate::python::sysconfig(py, "sysconfig.get_config_var('EXT_SUFFIX')");
    let stem = src.file_stem().unwrap().to_str().unwrap();
    let out = dir.join(format!("{stem}{suffix}"));
    let flags = ["-shared", "-fPIC", opt, "-g", &format!("-I{include}")].map(String::from);
    compile_to(&out, src, &flags, extra);
    out
}

/// Compiles tests/fixtures/cli/`src` with `cc -g -O0` into `dir`.
pub fn cli_fixture(dir: &Path, src: &str, extra: &[&str]) -> PathBuf {
    compile(dir, &fixtures("cli").join(src), &CLI_FLAGS, extra)
}

/// Compiles tests/fixtures/shim/`src` with `cc -O1 -g -pthread -Wall` into `dir`.
pub fn shim_fixture(dir: &Path, src: &str, extra: &[&str]) -> PathBuf {
    c_file(dir, &fixtures("shim").join(src), extra)
}

/// Compiles the C file `src` (any path) as the shim's fixtures are.
pub fn c_file(dir: &Path, src: &Path, extra: &[&str]) -> PathBuf {
    compile(dir, src, &SHIM_FLAGS, extra)
}
