//! End to end: real processes under the real libmemshim.so, then `memshim report`.
//!
//! Known truth: leak_prog.c leaks 40 MiB from `leak_here`, churns 128 MiB through `churn_here`
//! and peaks inside `peak_here` (192 MiB held); leaky.c, called from Python with ctypes, leaks
//! 48 MiB from `leaky_alloc`, frees everything from `clean_alloc` and peaks in `peak_alloc`.
//! At the default rate with a fixed seed the estimates must be within 25%; `all` is exact.

use memshim_test_support::capture::capture_paths;
use memshim_test_support::dirs::fixtures;
use memshim_test_support::prelude::cli::*;
use memshim_test_support::python::python;
use memshim_test_support::report_json::within;
use memshim_test_support::seeds::SHIM_SEED;
use memshim_test_support::shim_lib::shim_lib_or_skip as shim;
use memshim_test_support::units::MIB_F64 as MIB;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Runs `cmd` under the shim into `dir`; returns the one capture of its process.
fn capture_of(mut cmd: Command, so: &Path, dir: &Path, rate: &str) -> PathBuf {
    let o = cmd
        .env("LD_PRELOAD", so)
        .env("MEMSHIM_RATE", rate)
        .env("MEMSHIM_SEED", SHIM_SEED)
        .env("MEMSHIM_OUTPUT", dir.join("memshim.%p.msh"))
        .output()
        .expect("fixture runs");
    assert!(
        o.status.success(),
        "fixture failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "done");
    let caps = capture_paths(dir);
    assert_eq!(caps.len(), 1, "one process, one capture: {caps:?}");
    caps.into_iter().next().unwrap()
}

fn report(cap: &Path) -> Value {
    let o = run(&[
        "report",
        "--format",
        "json",
        "--top",
        "20",
        cap.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "a complete capture loads without warnings");
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn func(site: &Value) -> String {
    site["frames"][0]["function"]
        .as_str()
        .unwrap_or("<null>")
        .to_string()
}

fn site_of<'a>(sites: &'a Value, f: &str) -> Option<&'a Value> {
    sites.as_array().unwrap().iter().find(|s| func(s) == f)
}

fn c_program(name: &str, rate: &str) -> Option<(Value, PathBuf)> {
    let so = shim()?;
    let dir = scratch(name);
    let bin = build_c(&dir, "leak_prog.c", &[]);
    let caps = dir.join("caps");
    std::fs::create_dir_all(&caps).unwrap();
    let cap = capture_of(Command::new(&bin), &so, &caps, rate);
    Some((report(&cap), cap))
}

#[test]
fn c_program_sampled_ranks_the_leak_and_the_peak() {
    let Some((v, _)) = c_program("shim-c-sampled", "512K") else {
        return;
    };
    let leaks = &v["leaks"];
    assert_eq!(func(&leaks[0]), "leak_here", "{leaks:#}");
    let est = leaks[0]["bytes_est"].as_f64().unwrap();
    assert!(
        within(est, 40.0 * MIB, 0.25),
        "leak estimate {est} vs 40 MiB"
    );
    assert!(
        site_of(leaks, "churn_here").is_none(),
        "churn frees everything"
    );
    assert!(
        site_of(leaks, "peak_here").is_none(),
        "peak frees everything"
    );
    assert_eq!(leaks[0]["frames"][1]["function"], "main");
    assert!(leaks[0]["frames"][0]["file"]
        .as_str()
        .unwrap()
        .ends_with("leak_prog.c"));

    assert_eq!(func(&v["peak"][0]), "peak_here", "{:#}", v["peak"]);
    let peak = v["peak"][0]["bytes_est"].as_f64().unwrap();
    assert!(
        within(peak, 192.0 * MIB, 0.25),
        "peak estimate {peak} vs 192 MiB"
    );
    let total_peak = v["totals"]["peak_heap_bytes"].as_f64().unwrap();
    assert!(
        within(total_peak, 232.0 * MIB, 0.25),
        "peak heap {total_peak} vs 232 MiB"
    );

    let churn = site_of(&v["allocations"], "churn_here").expect("churn_here allocates");
    assert!(
        within(churn["bytes_est"].as_f64().unwrap(), 128.0 * MIB, 0.25),
        "{churn}"
    );
    let short = churn["short_lived_count_est"].as_f64().unwrap();
    let count = churn["count_est"].as_f64().unwrap();
    assert!(
        short >= 0.9 * count,
        "churn allocations are short-lived: {short} of {count}"
    );
    assert_eq!(v["sampling"]["mode"], "sampled");
    assert_eq!(v["totals"]["dropped_records"], 0);
}

#[test]
fn c_program_all_mode_is_exact() {
    let Some((v, _)) = c_program("shim-c-all", "all") else {
        return;
    };
    assert_eq!(v["sampling"]["mode"], "all");
    let leak = site_of(&v["leaks"], "leak_here").expect("leak_here leaks");
    assert_eq!(leak["bytes_est"], 40 * 1048576);
    assert_eq!(leak["count_est"], 10240);
    let churn = site_of(&v["allocations"], "churn_here").unwrap();
    assert_eq!(churn["bytes_est"], 128 * 1048576);
    assert_eq!(churn["count_est"], 32768);
    assert_eq!(churn["short_lived_count_est"], 32768);
    let peak = site_of(&v["peak"], "peak_here").unwrap();
    assert_eq!(peak["bytes_est"], 192 * 1048576);
    assert_eq!(func(&v["peak"][0]), "peak_here");
}

#[test]
fn python_ctypes_library_leak_is_found_and_clean_calls_are_not() {
    let Some(so) = shim() else { return };
    let dir = scratch("shim-py");
    let fixtures = fixtures("cli");
    let lib = build_c(&dir, "leaky.c", &["-shared", "-fPIC"]);
    let caps = dir.join("caps");
    std::fs::create_dir_all(&caps).unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(fixtures.join("drive_leaky.py")).arg(&lib);
    let cap = capture_of(cmd, &so, &caps, "512K");
    let v = report(&cap);
    // A burst of deep-stack samples right after a quiet start: the writer, paced for the quiet,
    // must be woken before the ring overflows (20 ms pauses without that dropped 4,000+ here).
    assert_eq!(v["totals"]["dropped_records"], 0);

    let leaks = &v["leaks"];
    assert_eq!(func(&leaks[0]), "leaky_alloc", "{leaks:#}");
    let est = leaks[0]["bytes_est"].as_f64().unwrap();
    assert!(
        within(est, 48.0 * MIB, 0.25),
        "leak estimate {est} vs 48 MiB"
    );
    let module = leaks[0]["frames"][0]["module"].as_str().unwrap();
    assert!(module.ends_with("libleaky.so"), "{module}");
    for s in leaks.as_array().unwrap() {
        let names: Vec<&str> = s["frames"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["function"].as_str())
            .collect();
        assert!(
            !names.contains(&"clean_alloc"),
            "clean_alloc is never a leak: {s}"
        );
    }
    assert_eq!(func(&v["peak"][0]), "peak_alloc", "{:#}", v["peak"]);
    let peak = v["peak"][0]["bytes_est"].as_f64().unwrap();
    assert!(within(peak, 256.0 * MIB, 0.25), "peak {peak} vs 256 MiB");
    let churn = site_of(&v["allocations"], "clean_alloc").expect("clean_alloc allocates");
    assert!(
        within(
            churn["bytes_est"].as_f64().unwrap(),
            48.0 * 96.0 * MIB,
            0.25
        ),
        "{churn}"
    );
}
