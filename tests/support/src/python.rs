//! Shared helpers of the Python tests: the real interpreter, fixtures in tests/fixtures/py run
//! under the real libmemshim.so through `memshim run` with a fixed seed, and JSON reports.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const MIB: f64 = 1048576.0;
/// The sampler's seed for every Python fixture (estimates are checked within 25% of the truth;
/// seeds 1-8 put the cache_leak estimate within -14%..+9%).
pub const SEED: &str = "7";

pub fn memshim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_memshim"));
    // Python's own randomness (hash seeds) would change allocation sequences between runs.
    c.env("PYTHONHASHSEED", "0");
    c
}

/// libmemshim.so to use: `MEMSHIM_LIB`, else next to the memshim binary (`cargo build --release
/// --workspace` builds both). None (skip) when missing outside CI.
pub fn shim() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MEMSHIM_LIB").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let so = Path::new(env!("CARGO_BIN_EXE_memshim")).with_file_name("libmemshim.so");
    if so.exists() {
        return Some(so);
    }
    // Fails under CI, skipped elsewhere, in one line (tests/pythons).
    memshim_test_pythons::Missing::new(
        so.display().to_string(),
        "run `cargo build --release --workspace` first",
    )
    .skip();
    None
}

/// The real interpreter (not a version manager's wrapper script, which would be profiled too).
pub fn python() -> PathBuf {
    let o = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/py")
        .join(name)
}

/// A fresh scratch directory under the target dir, unique per test.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("py-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

/// The captures in `dir`.
pub fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msh"))
        .collect();
    v.sort();
    v
}

/// Runs a fixture (one process) and returns its JSON report.
pub fn report_of(name: &str, extra: &[&str], args: &[&str], view: &[&str]) -> Option<Value> {
    shim()?;
    let dir = scratch(name);
    run_python(&dir, extra, &fixture(name), args);
    let caps = captures(&dir);
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

pub fn frames(site: &Value) -> &Vec<Value> {
    site["frames"].as_array().unwrap()
}

/// Function names of a site, innermost first.
pub fn names(site: &Value) -> Vec<String> {
    frames(site)
        .iter()
        .map(|f| f["function"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The innermost Python frame of a site.
pub fn first_python(site: &Value) -> Option<&Value> {
    frames(site).iter().find(|f| f["kind"] == "python")
}

/// Which of the thread functions `workers` a sample was taken in (None: another thread's).
/// Fails when it carries frames of two of them: each sample holds its own thread's frames only.
pub fn worker_of(pn: &[String], workers: &[&str]) -> Option<usize> {
    let mine: Vec<usize> = (0..workers.len())
        .filter(|&k| pn.iter().any(|n| n == workers[k]))
        .collect();
    assert!(
        mine.len() <= 1,
        "frames of two threads in one sample: {pn:?}"
    );
    mine.first().copied()
}

pub fn python_names(site: &Value) -> Vec<String> {
    frames(site)
        .iter()
        .filter(|f| f["kind"] == "python")
        .map(|f| f["function"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Sum of bytes of the sites of a ranking whose innermost Python frame is `func`.
pub fn bytes_in(ranking: &Value, func: &str) -> f64 {
    ranking
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| first_python(s).is_some_and(|f| f["function"] == func))
        .map(|s| s["bytes_est"].as_f64().unwrap())
        .sum()
}

pub fn within(est: f64, truth: f64, tol: f64) -> bool {
    (est / truth - 1.0).abs() <= tol
}

/// The worker functions of tests/fixtures/py/threads.py.
pub const WORKERS: [&str; 3] = ["work_alpha", "work_beta", "work_gamma"];

/// Sums the estimated bytes of threads.py's allocation sites by worker thread. Each site sampled
/// in a worker must hold that worker's function innermost, the thread machinery (`run`, the
/// name `Thread.run` has in that Python version) outside it and never the main thread's main();
/// `check(k, site, python_names)` adds a caller's own checks of worker k's sites.
pub fn worker_bytes(
    report: &Value,
    run: &str,
    mut check: impl FnMut(usize, &Value, &[String]),
) -> [f64; 3] {
    let mut seen = [0.0f64; 3];
    for site in report["allocations"].as_array().unwrap() {
        let pn = python_names(site);
        if let Some(k) = worker_of(&pn, &WORKERS) {
            assert_eq!(pn[0], WORKERS[k], "{pn:?}");
            assert!(pn.iter().any(|n| n == run), "{pn:?}");
            assert!(!pn.iter().any(|n| n == "main"), "{pn:?}");
            check(k, site, &pn);
            seen[k] += site["bytes_est"].as_f64().unwrap();
        }
    }
    seen
}

/// threads.py's truth: each worker allocates 1500 blocks of 40,000 / 50,000 / 60,000 bytes.
pub fn assert_worker_truth(seen: &[f64; 3]) {
    for (k, size) in [40000.0, 50000.0, 60000.0].into_iter().enumerate() {
        let truth = 1500.0 * size;
        assert!(
            within(seen[k], truth, 0.25),
            "{}: {} vs {truth}",
            WORKERS[k],
            seen[k]
        );
    }
}

/// Checks the report of tests/fixtures/py/ext_leak.py (extleak.c built for the interpreter)
/// and returns its top leak for more checks: the leak is 48 MiB (within 25%) from the C
/// function `stash_block`, then the extension call, then the Python caller `load_model` at the
/// line of the call, then main; `ext_clean` leaks nothing.
pub fn check_ext_leak(report: &Value) -> &Value {
    let top = &report["leaks"][0];
    let n = names(top);
    let at = |f: &str| {
        n.iter()
            .position(|x| x == f)
            .unwrap_or_else(|| panic!("{f} in {n:?}"))
    };
    assert_eq!(n[0], "stash_block", "the allocation call first: {n:?}");
    assert!(frames(top)[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("extleak.c"));
    assert!(at("stash_block") < at("ext_leak"));
    assert!(at("ext_leak") < at("load_model"));
    assert!(at("load_model") < at("main"));
    let lm = &frames(top)[at("load_model")];
    assert_eq!(lm["kind"], "python");
    assert!(lm["file"].as_str().unwrap().ends_with("ext_leak.py"));
    assert_eq!(lm["line"], 7, "the line of the extleak.leak call");
    let est = top["bytes_est"].as_f64().unwrap();
    assert!(within(est, 48.0 * MIB, 0.25), "leak {est} vs 48 MiB");
    // clean() frees everything.
    assert!(report["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| !names(s).iter().any(|x| x == "ext_clean")));
    top
}

/// The report of tests/fixtures/py/clear_frame.py, which allocates while an eval-loop call clears
/// the frame it returns from (when that call has no Python frame in the chain): `main` must stay
/// with the outer call, outer to the `map_next` that calls `f`, in every stack through both.
pub fn check_clear_frame(report: &Value, tag: &str) {
    let mut both = 0;
    for site in ["allocations", "leaks", "peak"]
        .iter()
        .flat_map(|k| report[*k].as_array().into_iter().flatten())
    {
        let n = names(site);
        let at = |f: &str| n.iter().position(|x| x == f);
        if let (Some(map_next), Some(main)) = (at("map_next"), at("main")) {
            both += 1;
            assert!(
                map_next < main,
                "{tag}: main shown inner to map_next: {n:?}"
            );
        }
    }
    assert!(both > 0, "{tag}: no stack through main and map_next");
}

/// The report of tests/fixtures/py/profile_hook.py: what its profile hook keeps is named by the
/// hook, then `target` at its def line (the hook runs before target's first instruction), then
/// the callers at their calls.
/// Section: held at exit (`kept` is a module global, freed by finalization).
pub fn check_profile_hook(report: &Value, tag: &str) {
    let top = &report["held_at_exit"][0];
    let py: Vec<(&str, u64)> = frames(top)
        .iter()
        .filter(|f| f["kind"] == "python")
        .map(|f| (f["function"].as_str().unwrap(), f["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        py,
        [("hook", 10), ("target", 13), ("main", 20), ("<module>", 24)],
        "{tag}"
    );
}
