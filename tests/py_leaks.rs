//! Python processes under the real shim: leaks in pure Python and in a C extension, named by
//! their Python function and file, taken when the interpreter began finalizing.

mod py_common;
use std::process::Command;

use py_common::*;

#[test]
fn pure_python_cache_leak_names_the_function_and_file_first() {
    let Some(v) = report_of("cache_leak.py", &[], &[], &[]) else {
        return;
    };
    // Finalization frees the cache: only the live set when it began shows the leak.
    assert_eq!(v["leaks_at"], "python_finalizing", "{:#}", v["leaks_at"]);
    assert!(v["process"]["python_finalizing_s"].as_f64().is_some());
    let top = &v["leaks"][0];
    let py = first_python(top).expect("the leak has Python frames");
    assert_eq!(py["function"], "remember", "{top:#}");
    assert!(py["file"].as_str().unwrap().ends_with("cache_leak.py"));
    assert_eq!(py["line"], 13, "the line of the cache assignment");
    assert_eq!(python_names(top)[..2], ["remember", "main"]);
    let est = top["bytes_est"].as_f64().unwrap();
    assert!(within(est, 64.0 * MIB, 0.25), "leak {est} vs 64 MiB");
    // churn() frees what it allocates: not a leak, but it allocated as much.
    assert_eq!(bytes_in(&v["leaks"], "churn"), 0.0);
    let churn = bytes_in(&v["allocations"], "churn");
    assert!(within(churn, 64.0 * MIB, 0.25), "churn {churn} vs 64 MiB");
    // Live at the end (after finalization) the cache is gone.
    let end = v["totals"]["live_at_end_bytes_est"].as_f64().unwrap();
    assert!(end < 32.0 * MIB, "live at end {end}");
}

#[test]
fn live_at_end_stays_available() {
    let Some(_) = shim() else { return };
    let dir = scratch("leaks-at-end");
    run_python(&dir, &[], &fixture("cache_leak.py"), &[]);
    let v = report(&captures(&dir)[0], &["--leaks-at", "end"]);
    assert_eq!(v["leaks_at"], "end");
    assert_eq!(
        bytes_in(&v["leaks"], "remember"),
        0.0,
        "freed by finalization"
    );
}

#[test]
fn small_objects_are_per_object_with_python_allocators_and_arenas_without() {
    // Without --python-allocators, 200,000 small objects live in pymalloc arenas: the arenas
    // are labelled, and remember_small has no sites of its own among the leaks.
    let Some(v) = report_of("cache_leak.py", &[], &["--small"], &[]) else {
        return;
    };
    let arenas = v["pymalloc_arenas"]["at_leaks_point_bytes_est"]
        .as_f64()
        .unwrap();
    assert!(arenas > 8.0 * MIB, "arenas at the leaks point: {arenas}");
    let leaks = v["leaks"].as_array().unwrap();
    let labelled: Vec<_> = leaks
        .iter()
        .filter(|s| s["pymalloc_arena"] == true)
        .collect();
    assert!(!labelled.is_empty());
    for s in &labelled {
        assert!(s["note"].as_str().unwrap().contains("--python-allocators"));
        assert!(names(s).iter().any(|n| n == "new_arena"), "{s:#}");
    }
    // With it, the small objects are malloc'd one by one and named.
    let dir = scratch("small-malloc");
    run_python(
        &dir,
        &["--python-allocators"],
        &fixture("cache_leak.py"),
        &["--small"],
    );
    let v = report(&captures(&dir)[0], &[]);
    let small = bytes_in(&v["leaks"], "remember_small");
    assert!(small > 16.0 * MIB, "remember_small leaks {small}");
    assert!(v["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["pymalloc_arena"] != true));
}

/// Builds tests/fixtures/py/extleak.c as a Python extension module in `dir`.
fn build_extension(dir: &std::path::Path) {
    let py = python();
    let q = |code: &str| {
        let o = Command::new(&py).args(["-c", code]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let include = q("import sysconfig; print(sysconfig.get_paths()['include'])");
    let suffix = q("import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))");
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-O0", "-g"])
        .arg(format!("-I{include}"))
        .arg(fixture("extleak.c"))
        .arg("-o")
        .arg(dir.join(format!("extleak{suffix}")))
        .status()
        .expect("cc runs");
    assert!(st.success(), "building extleak.c failed");
}

/// Runs ext_leak.py under the shim; returns its capture.
fn ext_capture(name: &str) -> Option<std::path::PathBuf> {
    shim()?;
    let dir = scratch(name);
    build_extension(&dir);
    run_python(&dir, &[], &fixture("ext_leak.py"), &[]);
    Some(captures(&dir).remove(0))
}

fn ext_report(view: &[&str]) -> Option<serde_json::Value> {
    let cap = ext_capture(&format!("ext{}", view.join("").replace('-', "")))?;
    Some(report(&cap, view))
}

#[test]
fn c_extension_leak_shows_c_then_native_then_python_frames_in_order() {
    let Some(v) = ext_report(&[]) else { return };
    let top = check_ext_leak(&v);
    let n = names(top);
    let at = |f: &str| n.iter().position(|x| x == f).unwrap();
    assert_eq!(frames(top)[0]["kind"], "native");
    // Native call frames of the interpreter between the C function and the Python caller.
    assert!(at("load_model") > at("ext_leak") + 1, "{n:?}");
    assert!(frames(top)[at("ext_leak") + 1..at("load_model")]
        .iter()
        .all(|f| f["kind"] == "native"));
}

#[test]
fn python_only_and_native_only_views() {
    let Some(v) = ext_report(&["--python-only"]) else {
        return;
    };
    assert_eq!(v["view"], "python_only");
    let n = names(&v["leaks"][0]);
    assert_eq!(
        n,
        ["stash_block", "ext_leak", "load_model", "main", "<module>"]
    );
    let v = ext_report(&["--native-only"]).unwrap();
    let top = &v["leaks"][0];
    assert!(frames(top).iter().all(|f| f["kind"] == "native"));
    assert!(names(top).iter().any(|f| f == "_PyEval_EvalFrameDefault"));
    assert_eq!(names(top)[0], "stash_block");
}

#[test]
fn flamegraph_and_pprof_take_the_views_too() {
    let Some(cap) = ext_capture("ext-exports") else {
        return;
    };
    let svg = |view: &[&str]| {
        let out = cap.with_extension(format!("{}.svg", view.len()));
        let o = memshim()
            .args(["flamegraph", "--kind", "leaks", "-o"])
            .arg(&out)
            .args(view)
            .arg(&cap)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(&out).unwrap()
    };
    let hybrid = svg(&[]);
    assert!(hybrid.contains("load_model") && hybrid.contains("stash_block"));
    assert!(
        !hybrid.contains("cfunction_call"),
        "the interpreter's call machinery is folded by default"
    );
    assert!(hybrid.contains("leaks (live when Python began finalizing)"));
    let all = svg(&["--all-frames"]);
    assert!(all.contains("load_model") && all.contains("cfunction_call"));
    let py = svg(&["--python-only"]);
    assert!(py.contains("load_model") && py.contains("stash_block"));
    assert!(!py.contains("cfunction_call"), "interpreter glue collapsed");
    let native = svg(&["--native-only"]);
    assert!(native.contains("_PyEval_EvalFrameDefault") && !native.contains("load_model"));
    let o = memshim()
        .args(["pprof", "--python-only", "-o"])
        .arg(cap.with_extension("pb.gz"))
        .arg(&cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
