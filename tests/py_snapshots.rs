//! A Python process in snapshot mode (`memshim run --snapshots --interval 200ms`) under the real
//! shim: the snapshots written when Python begins finalizing and at exit make its report read
//! like an event capture's (tests/fixtures/py/cache_leak.py: a 64 MiB module-level cache that
//! grows over the run and that finalization frees).

use memshim_test_support::prelude::py;

use py::*;

#[test]
fn a_python_snapshot_run_reports_its_cache_as_growing_and_held_at_exit_not_leaked() {
    let Some(v) = report_of(
        "cache_leak.py",
        &["--snapshots", "--interval", "200ms"],
        &[],
        &[],
    ) else {
        return;
    };
    assert_eq!(v["snapshots"]["running"], false, "{}", v["snapshots"]);
    assert!(v["process"]["python_finalizing_s"].as_f64().is_some());
    let held = bytes_in(&v["held_at_exit"], "remember");
    assert!(within(held, 64.0 * MIB, 0.25), "held {held} vs 64 MiB");
    assert!(
        v["growing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| first_python(g).is_some_and(|f| f["function"] == "remember")),
        "{:#}",
        v["growing"]
    );
    let leaked = v["sections"]["leaked_bytes_est"].as_f64().unwrap();
    assert!(leaked < 2.0 * MIB, "leaked {leaked}");
    let churn = bytes_in(&v["allocations"], "churn");
    assert!(
        within(churn, 64.0 * MIB, 0.25),
        "churn allocated {churn} vs 64 MiB"
    );
}
