//! `memshim.mark` from Python under the real shim, and report windows between marks: what was
//! allocated between two marks, as the fixture (tests/fixtures/py/marks_window.py) says it was.

use memshim_test_support::prelude::py;
use std::path::{Path, PathBuf};
use std::process::Command;

use py::*;
use serde_json::Value;

/// The repository's Python package (python/memshim), importable without installing it.
fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Builds libcleak.so (cleak_stash(n) leaks n bytes) into `dir`.
fn build_cleak(dir: &Path) {
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-g", "-o"])
        .arg(dir.join("libcleak.so"))
        .arg(fixture("cleak.c"))
        .status()
        .unwrap();
    assert!(st.success());
}

/// Runs the fixture under the shim at `rate`; its truth line and its capture.
fn run_marked(name: &str, rate: &str) -> Option<(Value, PathBuf)> {
    shim()?;
    let dir = scratch(name);
    build_cleak(&dir);
    let o = memshim()
        .current_dir(&dir)
        .env("PYTHONPATH", package_dir())
        .args(["run", "--seed", SEED, "--rate", rate, "-o"])
        .arg(dir.join("memshim.%p.msh"))
        .arg("--")
        .arg(python())
        .arg(fixture("marks_window.py"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().last(), Some("done"), "{out}");
    let truth: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let caps = capture_paths(&dir);
    assert_eq!(caps.len(), 1, "{caps:?}");
    Some((truth, caps[0].clone()))
}

/// Bytes the leaks ranking gives cleak_stash when called from the Python function `caller`.
fn leaked_from(report: &Value, caller: &str) -> f64 {
    report["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| names(s).first().map(String::as_str) == Some("cleak_stash"))
        .filter(|s| first_python(s).is_some_and(|f| f["function"] == caller))
        .map(|s| s["bytes_est"].as_f64().unwrap())
        .sum()
}

fn mib(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn marks_carry_their_label_thread_and_order() {
    let Some((truth, cap)) = run_marked("marks-order", "all") else {
        return;
    };
    assert_eq!(truth["active"], true, "memshim.active() under the shim");
    assert_eq!(truth["marked"], serde_json::json!([true, true]));
    let r = report(&cap, &[]);
    let marks = r["marks"].as_array().unwrap();
    let labels: Vec<&str> = marks.iter().map(|m| m["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["warm", "cool"]);
    for m in marks {
        assert_eq!(
            m["thread"], truth["window_thread"],
            "the marking thread: {m}"
        );
    }
    assert!(mib(&marks[0]["t_s"]) <= mib(&marks[1]["t_s"]));
    assert!(mib(&marks[1]["t_s"]) <= mib(&r["process"]["duration_s"]));
    // The timeline draws each mark, and the HTML page, which embeds it, too.
    let dir = cap.parent().unwrap();
    for (cmd, out) in [("timeline", "t.svg"), ("html", "p.html")] {
        let o = memshim()
            .arg(cmd)
            .arg(&cap)
            .arg("-o")
            .arg(dir.join(out))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let page = std::fs::read_to_string(dir.join(out)).unwrap();
        for label in ["warm", "cool"] {
            let drawn = format!("<title>mark \"{label}\" at ");
            assert!(page.contains(&drawn), "{out} lacks {drawn:?}");
        }
        assert_eq!(page.matches("<g class=\"mark\">").count(), 2, "{out}");
    }
}

#[test]
fn a_window_between_two_marks_has_exactly_what_the_fixture_did_in_it() {
    let Some((truth, cap)) = run_marked("marks-window", "all") else {
        return;
    };
    let whole = report(&cap, &[]);
    assert_eq!(leaked_from(&whole, "window"), mib(&truth["window_leaked"]));
    assert_eq!(
        leaked_from(&whole, "<module>"),
        mib(&truth["before_leaked"]) + mib(&truth["after_leaked"])
    );
    let win = report(&cap, &["--since-mark", "warm", "--until-mark", "cool"]);
    assert_eq!(leaked_from(&win, "window"), mib(&truth["window_leaked"]));
    assert_eq!(
        leaked_from(&win, "<module>"),
        0.0,
        "nothing from outside the window"
    );
    let allocated: f64 = win["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| names(s).first().map(String::as_str) == Some("cleak_stash"))
        .map(|s| s["bytes_est"].as_f64().unwrap())
        .sum();
    assert_eq!(allocated, mib(&truth["window_allocated"]));
    // The window's peak: its own allocations at their highest (the interpreter's own few
    // allocations in the window, thread start-up among them, on top).
    let peak = mib(&win["totals"]["peak_heap_bytes"]);
    let want = mib(&truth["window_peak"]);
    assert!(
        peak >= want && peak < want + MIB,
        "peak {peak}, truth {want}"
    );
    // Open-ended windows.
    let since = report(&cap, &["--since-mark", "warm"]);
    assert_eq!(leaked_from(&since, "<module>"), mib(&truth["after_leaked"]));
    let until = report(&cap, &["--until-mark", "cool"]);
    assert_eq!(
        leaked_from(&until, "<module>"),
        mib(&truth["before_leaked"])
    );
    assert_eq!(leaked_from(&until, "window"), mib(&truth["window_leaked"]));
}

#[test]
fn a_sampled_window_estimates_what_the_fixture_did_in_it() {
    let Some((truth, cap)) = run_marked("marks-sampled", "512K") else {
        return;
    };
    let win = report(&cap, &["--since-mark", "warm", "--until-mark", "cool"]);
    let est = leaked_from(&win, "window");
    assert!(
        within(est, mib(&truth["window_leaked"]), 0.25),
        "estimate {est}"
    );
    assert_eq!(leaked_from(&win, "<module>"), 0.0);
}

#[test]
fn a_window_naming_a_missing_mark_is_one_error_line() {
    let Some((_, cap)) = run_marked("marks-missing", "all") else {
        return;
    };
    let o = memshim()
        .args(["report", "--since-mark", "hot"])
        .arg(&cap)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.ends_with("no mark \"hot\" (its marks: warm, cool)\n"),
        "{e}"
    );
    // check takes the same window: the window's 24 MiB leak passes a 30 MB limit the whole
    // run's 72 MiB breaks.
    let check = |window: &[&str]| {
        memshim()
            .args(["check", "--max-leak", "30MB"])
            .args(window)
            .arg(&cap)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(check(&[]), Some(1));
    assert_eq!(
        check(&["--since-mark", "warm", "--until-mark", "cool"]),
        Some(0)
    );
}

#[test]
fn without_the_shim_the_python_api_does_nothing() {
    let dir = scratch("marks-noshim");
    build_cleak(&dir);
    let o = Command::new(python())
        .current_dir(&dir)
        .env("PYTHONPATH", package_dir())
        .env_remove("LD_PRELOAD")
        .arg(fixture("marks_window.py"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let truth: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(truth["active"], false);
    assert_eq!(truth["marked"], serde_json::json!([false, false]));
    assert!(
        capture_paths(&dir).is_empty(),
        "no capture without the shim"
    );
}
