//! Where memshim's tests (the shim's layout tests, the CLI's line-table tests, the integration
//! tests) find the CPython interpreters besides the machine's own 3.11: pyenv's, which this
//! project's machines carry, and the Debian trees scripts/python-versions.sh provisions; and
//! what a test does when one (or another prerequisite) is missing.
//!
//! A missing prerequisite is named in one line, `<what> is missing (<where it was looked for>)`:
//! - under CI (`CI` set, and not `false` or `0`) the test fails with that line;
//! - elsewhere the test is skipped: it prints `memshim-test-skip: <the line>` and returns (the
//!   `*_or_skip` functions give `None`), and the skip is recorded for scripts/test.sh, which
//!   counts and lists the skips in its summary. The skip file is `$MEMSHIM_TEST_SKIPS` (one
//!   `binary<TAB>test<TAB>what<TAB>line` per skip); without it nothing is recorded.
//!
//! [`pyenv`] and [`provisioned`] are for callers that cannot return early: elsewhere than CI
//! they record the skip and then panic with the same line, and scripts/test.sh counts such a
//! failure as the skip it is.

use std::io::Write;
use std::path::PathBuf;

/// The line that marks a skipped test in its output.
pub const SKIP_MARKER: &str = "memshim-test-skip:";

/// True under CI, where a missing prerequisite fails the test.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A prerequisite that is not there: `what` names it (`CPython 3.7 from pyenv`), `line` is the
/// one line saying so and what to do.
#[derive(Debug, Clone)]
pub struct Missing {
    pub what: String,
    pub line: String,
}

impl Missing {
    pub fn new(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        let what = what.into();
        let line = format!("{what} is missing ({detail})");
        Missing { what, line }
    }

    /// Under CI: fails the test with the one line. Elsewhere: prints the skip marker and
    /// records the skip; the caller returns.
    pub fn skip(&self) {
        if in_ci() {
            self.fail();
        }
        println!("{SKIP_MARKER} {}", self.line);
        record(self);
    }

    /// For callers that cannot return: records the skip (not under CI) and fails the test with
    /// the one line. It unwinds without the panic hook, so no `panicked at` and no backtrace
    /// (RUST_BACKTRACE) come with it: the test's output is the line.
    fn fail(&self) -> ! {
        if in_ci() {
            println!("{}", self.line);
        } else {
            println!("{SKIP_MARKER} {}", self.line);
            record(self);
        }
        std::panic::resume_unwind(Box::new(self.line.clone()))
    }
}

/// Appends the skip of the running test to `$MEMSHIM_TEST_SKIPS`. The test is named by its
/// thread (libtest names each test's thread after it), the binary by its file name, as cargo
/// prints them.
fn record(m: &Missing) {
    let Some(path) = std::env::var_os("MEMSHIM_TEST_SKIPS").filter(|p| !p.is_empty()) else {
        return;
    };
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let line = format!(
        "{binary}\t{test}\t{}\t{}\n",
        m.what.replace(['\t', '\n'], " "),
        m.line.replace(['\t', '\n'], " ")
    );
    // One write of one line with O_APPEND: tests running at once do not interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// `$PYENV_ROOT` (default ~/.pyenv).
fn pyenv_root() -> PathBuf {
    std::env::var_os("PYENV_ROOT")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".pyenv")
        })
}

/// pyenv's CPython `version` (e.g. "3.12"), under `$PYENV_ROOT` (default ~/.pyenv), or what is
/// missing.
pub fn find_pyenv(version: &str) -> Result<PathBuf, Missing> {
    let root = pyenv_root();
    let prefix = format!("{version}.");
    std::fs::read_dir(root.join("versions"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path().join(format!("bin/python{version}")))
        .filter(|p| p.exists())
        .min()
        .ok_or_else(|| {
            Missing::new(
                format!("CPython {version} from pyenv"),
                format!(
                    "none in {}/versions; this project's machines come with it",
                    root.display()
                ),
            )
        })
}

/// The root of the Debian tree holding CPython `version` (3.9, 3.13), which
/// scripts/python-versions.sh provisions in `$MEMSHIM_PYTHONS` (default
/// /var/cache/memshim-pythons), or what is missing.
pub fn find_provisioned(version: &str) -> Result<PathBuf, Missing> {
    let base = std::env::var_os("MEMSHIM_PYTHONS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/memshim-pythons"));
    let dir = base.join(version);
    if dir.join("ok").exists() {
        return Ok(dir.join("root"));
    }
    Err(Missing::new(
        format!("CPython {version} from scripts/python-versions.sh"),
        format!(
            "not provisioned in {}: run scripts/provision.sh as root, or set MEMSHIM_PYTHONS",
            base.display()
        ),
    ))
}

/// pyenv's CPython `version`; `None` when it is missing and the test is skipped (under CI the
/// test fails instead).
pub fn pyenv_or_skip(version: &str) -> Option<PathBuf> {
    find_pyenv(version).map_err(|m| m.skip()).ok()
}

/// The provisioned Debian tree of CPython `version`; `None` when it is missing and the test is
/// skipped (under CI the test fails instead).
pub fn provisioned_or_skip(version: &str) -> Option<PathBuf> {
    find_provisioned(version).map_err(|m| m.skip()).ok()
}

/// pyenv's CPython `version`, for a caller that cannot return early: a missing one fails the
/// test with one line (recorded as a skip outside CI, see the crate docs).
pub fn pyenv(version: &str) -> PathBuf {
    find_pyenv(version).unwrap_or_else(|m| m.fail())
}

/// The provisioned Debian tree of CPython `version`, for a caller that cannot return early: a
/// missing one fails the test with one line (recorded as a skip outside CI).
pub fn provisioned(version: &str) -> PathBuf {
    find_provisioned(version).unwrap_or_else(|m| m.fail())
}

/// Returns from the test (skipping it) unless `$e`, an `Option`, is `Some`: gives its value.
#[macro_export]
macro_rules! or_skip {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}
