//! Python frames under the real shim: a peak inside a generator, and threads whose samples each
//! carry their own thread's Python frames.

mod py_common;
use py_common::*;

#[test]
fn peak_inside_a_generator_shows_the_generator() {
    let Some(v) = report_of("gen_peak.py", &[], &[], &[]) else {
        return;
    };
    let top = &v["peak"][0];
    let py = first_python(top).expect("Python frames");
    assert_eq!(py["function"], "batches", "{top:#}");
    assert!(py["file"].as_str().unwrap().ends_with("gen_peak.py"));
    // The generator runs for its caller: consume() is further out.
    let pn = python_names(top);
    assert_eq!(pn[..3], ["batches", "consume", "main"], "{pn:?}");
    let held = bytes_in(&v["peak"], "batches");
    assert!(
        within(held, 96.0 * MIB, 0.25),
        "peak in batches {held} vs 96 MiB"
    );
}

#[test]
fn each_thread_sample_carries_its_own_python_frames() {
    let Some(v) = report_of("threads.py", &[], &[], &[]) else {
        return;
    };
    let workers = ["work_alpha", "work_beta", "work_gamma"];
    let mut seen = [0.0f64; 3];
    for site in v["allocations"].as_array().unwrap() {
        let pn = python_names(site);
        if let Some(k) = worker_of(&pn, &workers) {
            // A worker's sample: its function innermost, the thread machinery outside, never
            // the main thread's main().
            assert_eq!(pn[0], workers[k], "{pn:?}");
            assert!(pn.iter().any(|n| n == "Thread.run"), "{pn:?}");
            assert!(!pn.iter().any(|n| n == "main"), "{pn:?}");
            seen[k] += site["bytes_est"].as_f64().unwrap();
        }
    }
    // Truth: 1500 blocks of 40,000 / 50,000 / 60,000 bytes per thread.
    for (k, size) in [40000.0, 50000.0, 60000.0].into_iter().enumerate() {
        let truth = 1500.0 * size;
        assert!(
            within(seen[k], truth, 0.25),
            "{}: {} vs {truth}",
            workers[k],
            seen[k]
        );
    }
}
