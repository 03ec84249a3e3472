//! Where memshim's tests (the shim's layout tests, the CLI's line-table tests, the integration
//! tests) find the CPython interpreters besides the machine's own 3.11: pyenv's, which this
//! project's machines carry, and the Debian trees scripts/python-versions.sh provisions. A
//! missing one fails the test, saying where it was looked for.

use std::path::PathBuf;

/// pyenv's CPython `version` (e.g. "3.12"), under `$PYENV_ROOT` (default ~/.pyenv).
pub fn pyenv(version: &str) -> PathBuf {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".pyenv"));
    let prefix = format!("{version}.");
    std::fs::read_dir(root.join("versions"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path().join(format!("bin/python{version}")))
        .filter(|p| p.exists())
        .min()
        .unwrap_or_else(|| panic!("no CPython {version} in {}/versions", root.display()))
}

/// The root of the Debian tree holding CPython `version` (3.9, 3.13), which
/// scripts/python-versions.sh provisions in `$MEMSHIM_PYTHONS` (default
/// /var/cache/memshim-pythons).
pub fn provisioned(version: &str) -> PathBuf {
    let base = std::env::var_os("MEMSHIM_PYTHONS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/memshim-pythons"));
    let dir = base.join(version);
    assert!(
        dir.join("ok").exists(),
        "CPython {version} is not provisioned in {}: run scripts/python-versions.sh (as root; \
         .ci/run does), or set MEMSHIM_PYTHONS to where it put the interpreters",
        base.display()
    );
    dir.join("root")
}
