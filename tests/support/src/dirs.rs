//! Where things are: the repository, its test fixtures, the build's own directory, and a fresh
//! scratch directory per test. Found from the running test binary (`target/<profile>/deps/..`),
//! so they hold for every test binary and bench of the workspace, whichever crate it is in.

use std::path::{Path, PathBuf};

/// The repository's root (the workspace).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the support crate sits in tests/support of the repository")
}

/// `tests/fixtures/<kind>` (`cli`, `py`, `shim`, `host`, ...).
pub fn fixtures(kind: &str) -> PathBuf {
    repo().join("tests/fixtures").join(kind)
}

/// The build's profile directory (`target/release`): the `memshim` binary and libmemshim.so.
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash>
    let deps = exe.parent().expect("the test binary is in a directory");
    let dir = if deps.ends_with("deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    dir.to_path_buf()
}

/// A fresh, empty scratch directory for one test, under the build's `tmp` directory (what
/// cargo calls `CARGO_TARGET_TMPDIR`), named after the test binary and `name`.
pub fn scratch(name: &str) -> PathBuf {
    let tmp = build_dir()
        .parent()
        .map_or_else(build_dir, Path::to_path_buf)
        .join("tmp");
    let dir = tmp.join(format!("{}-{name}", test_binary()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The running test binary's name without cargo's hash (`cli_report`).
pub fn test_binary() -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let stem = exe.file_stem().map(|s| s.to_string_lossy().into_owned());
    let stem = stem.unwrap_or_else(|| "test".into());
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

/// Copies the directory `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
