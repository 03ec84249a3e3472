//! Python frames under the real shim: a peak inside a generator, and threads whose samples each
//! carry their own thread's Python frames.

use memshim_test_support::prelude::py::*;

/// 3.11 marks eval-loop calls on their first frame (`is_entry`): a call whose first frame is
/// still in its prologue, or gone, must not take the outer call's frames.
#[test]
fn an_eval_call_without_frames_keeps_the_outer_frames_in_place() {
    let Some(v) = report_of("clear_frame.py", &[], &[], &[]) else {
        return;
    };
    check_clear_frame(&v, "3.11");
}

#[test]
fn a_profile_hook_shows_the_called_function_at_its_def_line() {
    let Some(v) = report_of("profile_hook.py", &[], &[], &[]) else {
        return;
    };
    check_profile_hook(&v, "3.11");
}

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
