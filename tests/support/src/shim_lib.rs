//! Which libmemshim.so the tests run: `$MEMSHIM_LIB` when set (as `memshim run` takes it, so the
//! tests that preload it themselves and those that go through `memshim run` agree), else the
//! one `cargo build --release --workspace` put next to the `memshim` binary.

use std::path::PathBuf;

fn path() -> PathBuf {
    match std::env::var_os("MEMSHIM_LIB").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => crate::dirs::build_dir().join("libmemshim.so"),
    }
}

/// The shim; fails the test when it is not built.
pub fn shim_lib() -> PathBuf {
    let so = path();
    assert!(
        so.exists(),
        "{} is missing: run `cargo build --release --workspace` (scripts/test.sh does)",
        so.display()
    );
    so
}

/// The shim, or None (the test skips, in one line; under CI it fails: tests/pythons) when it
/// is not built.
pub fn shim_lib_or_skip() -> Option<PathBuf> {
    let so = path();
    if so.exists() {
        return Some(so);
    }
    memshim_test_pythons::Missing::new(
        so.display().to_string(),
        "run `cargo build --release --workspace` first",
    )
    .skip();
    None
}
