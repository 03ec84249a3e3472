//! The real Python interpreter, and the Python fixtures (tests/fixtures/py) run under the real
//! libmemshim.so through `memshim run` with a fixed seed, read back as JSON reports.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::capture::capture_paths;
use crate::dirs::{fixtures, scratch};
use crate::seeds::PYTHON_SEED as SEED;
use crate::shim_lib::shim_lib_or_skip;

/// The real interpreter (not a version manager's wrapper script, which would fork bash many
/// times and be profiled too), as `sys.executable` names it: what a user would run.
pub fn python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    let exe = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(exe.exists(), "python interpreter {exe:?} not found");
    exe
}

/// [`python`] with its symbolic links resolved: the file the loader maps (the shim's tests
/// compare it with module maps and `/proc` paths).
pub fn python_resolved() -> PathBuf {
    let exe = python();
    std::fs::canonicalize(&exe).unwrap_or(exe)
}

/// `print(EXPR)` of the interpreter `py` after `import sysconfig` (its include directory, its
/// extension suffix, ...).
pub fn sysconfig(py: &Path, expr: &str) -> String {
    let o = Command::new(py)
        .args(["-c", &format!("import sysconfig; print({expr})")])
        .output()
        .expect("python runs");
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// tests/fixtures/py/`name`.
pub fn fixture(name: &str) -> PathBuf {
    fixtures("py").join(name)
}

pub fn memshim() -> Command {
    let mut c = Command::new(crate::cli::memshim_path());
    // Python's own randomness (hash seeds) would change allocation sequences between runs.
    c.env("PYTHONHASHSEED", "0");
    c
}

/// `memshim run --seed SEED -o DIR/memshim.%p.msh [extra] -- python SCRIPT ARGS`, in `dir`.
pub fn run_python(dir: &Path, extra: &[&str], script: &Path, args: &[&str]) -> Output {
    let tmpl = dir.join("memshim.%p.msh");
    let o = memshim()
        .current_dir(dir)
        .env("PYTHONPATH", dir)
        .args(["run", "--seed", SEED, "-o", tmpl.to_str().unwrap()])
        .args(extra)
        .arg("--")
        .arg(python())
        .arg(script)
        .args(args)
        .output()
        .expect("memshim run runs");
    assert!(
        o.status.success(),
        "fixture failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "done");
    o
}

/// Runs a fixture (one process) and returns its JSON report.
pub fn report_of(name: &str, extra: &[&str], args: &[&str], view: &[&str]) -> Option<Value> {
    shim_lib_or_skip()?;
    let dir = scratch(name);
    run_python(&dir, extra, &fixture(name), args);
    let caps = capture_paths(&dir);
    assert_eq!(caps.len(), 1, "one process, one capture: {caps:?}");
    Some(report(&caps[0], view))
}

pub fn report(cap: &Path, extra: &[&str]) -> Value {
    let o = memshim()
        .args(["report", "--format", "json", "--top", "40"])
        .args(extra)
        .arg(cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}
