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
    // A worker's sample: its function innermost, the thread machinery outside, never the main
    // thread's main(); and each worker's total near its truth.
    let seen = worker_bytes(&v, "Thread.run", |_, _, _| {});
    assert_worker_truth(&seen);
}
