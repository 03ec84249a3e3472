//! What the Python fixtures of tests/fixtures/py must show in their reports, checked the same
//! way by every test that runs them (py_leaks, py_frames, py_versions, py_nogil, ...).

use serde_json::Value;

use crate::report_json::{frames, names, python_names, within, worker_of};
use crate::units::MIB_F64 as MIB;

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
