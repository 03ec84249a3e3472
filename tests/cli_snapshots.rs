//! The reading commands on snapshot captures (`MEMSHIM_MODE=snapshots`), synthetic ones whose
//! stacks point into a real compiled program: a running process's live set is live now and its
//! leak is found by growth; an ended one is reported like an event capture; the files of a
//! rolled-over series read as one run; `--since`/`--until`; `diff` at two moments; a file cut
//! inside a chunk reads up to its last whole snapshot.

use memshim_format::snapshot::{Cause, SiteCounters};
use memshim_test_support::prelude::cli::*;
use serde_json::Value;

/// The service's truth at second `t`: leaky_alloc leaks 1 MiB a second (t + 1 MiB live), a
/// cache from clean_alloc holds 8 MiB while allocating 10 MiB a second, and peak_fn reaches a
/// 300 MiB high once, at 15 s, freed before the snapshot (then it is listed no more: nothing
/// live, nothing new).
fn truth_at(t: u64) -> Vec<SiteCounters> {
    let mut v = vec![
        site(LEAKY, t + 1, t + 1, t + 1),
        site(CLEAN, 8, 10 * (t + 1), 8),
    ];
    if t == 15 {
        v.push(site(PEAK, 0, 300, 300));
    }
    v
}

/// Snapshots at `from..=to` seconds, every one of the service's truth.
fn service(c: &mut SyntheticCapture, from: u64, to: u64) {
    for t in from..=to {
        push_snapshot(c, t, t, Cause::Interval, t == from, truth_at(t));
    }
}

/// A service still running after 30 snapshots, one a second.
fn running(f: &Fixture, name: &str) -> std::path::PathBuf {
    let p = f.dir.join(name);
    let mut c = snapshot_file(
        f,
        &snapshot_header("s1", 1, 1_000_000_000),
        build_id(&f.bin),
    );
    service(&mut c, 0, 29);
    c.write(&p);
    p
}

fn report_json(args: &[&str]) -> Value {
    let mut all = vec!["report", "--format", "json"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("report --format json prints JSON")
}

fn func(site: &Value) -> &str {
    site["frames"][0]["function"].as_str().unwrap_or("<null>")
}

fn mib(v: &Value) -> f64 {
    v.as_f64().expect("a number") / MIB as f64
}

#[test]
fn a_running_process_shows_live_now_and_its_leak_found_by_growth() {
    let f = fixture("snap-running");
    let p = running(&f, "run.msh");
    let v = report_json(&[p.to_str().unwrap()]);
    let sn = &v["snapshots"];
    assert_eq!(sn["running"], true, "{sn}");
    assert_eq!(sn["snapshots"], 30);
    assert_eq!(sn["parts"], 1);

    // What is live is live now, not leaks.
    assert_eq!(v["sections"]["leaked_bytes_est"], 0);
    let now = v["live_now"].as_array().unwrap();
    assert_eq!(func(&now[0]), "leaky_alloc", "{now:?}");
    assert_eq!(mib(&now[0]["bytes_est"]), 30.0);
    assert_eq!(func(&now[1]), "clean_alloc");
    assert_eq!(mib(&now[1]["bytes_est"]), 8.0);
    assert_eq!(mib(&v["totals"]["live_at_end_bytes_est"]), 38.0);

    // The leak signal is growth: leaky_alloc grows 1 MiB a second, 3600 MiB an hour; the
    // cache is flat.
    let growing = v["growing"].as_array().unwrap();
    assert_eq!(growing.len(), 1, "{growing:?}");
    assert_eq!(func(&growing[0]), "leaky_alloc");
    let per_hour = mib(&growing[0]["growth_bytes_per_hour"]);
    assert!((per_hour / 3600.0 - 1.0).abs() < 0.01, "{per_hour} MiB/h");
    let leaks = v["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(func(&leaks[0]), "leaky_alloc");
    assert_eq!(
        (leaks[0]["growing"].clone(), leaks[0]["leaked"].clone()),
        (true.into(), false.into())
    );

    // The peak is the highest heap recorded, with what was live at it.
    assert_eq!(mib(&v["totals"]["peak_heap_bytes"]), 16.0 + 8.0 + 300.0);
    assert_eq!(v["totals"]["peak_time_s"], 15.0);
    assert_eq!(func(&v["peak"][0]), "peak_fn");
    assert_eq!(mib(&v["peak"][0]["bytes_est"]), 300.0);
    assert_eq!(mib(&v["peak"][1]["bytes_est"]), 16.0);

    // Allocations are the newest snapshot's totals; peak_fn's count from the snapshot that
    // last listed it.
    assert_eq!(
        mib(&v["totals"]["allocated_bytes_est"]),
        30.0 + 300.0 + 300.0
    );
    assert_eq!(v["totals"]["allocations_est"], 630);

    let o = run(&["report", p.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("capture    snapshots: 30, every 1.00 s; still running"),
        "{out}"
    );
    assert!(out.contains("live now   38.0 MiB"), "{out}");
    assert!(out.contains("growing 1.0 MiB/s (3.5 GiB/h)"), "{out}");
    let live_now = out
        .find("== Live now: live at the newest snapshot (29.00 s)")
        .expect(&out);
    assert!(
        out[live_now..].contains("  1. 30.0 MiB in 30 allocations"),
        "{out}"
    );
    assert!(
        out.contains("1. 30.0 MiB in 30 allocations, growing\n"),
        "{out}"
    );
    assert!(
        out.contains("ended: not yet (running at its newest snapshot"),
        "{out}"
    );
}

#[test]
fn an_ended_process_is_reported_like_an_event_capture() {
    let f = fixture("snap-ended");
    let p = f.dir.join("ended.msh");
    let mut c = snapshot_file(
        &f,
        &snapshot_header("s2", 1, 1_000_000_000),
        build_id(&f.bin),
    );
    service(&mut c, 0, 29);
    // Python begins finalizing at 30 s; finalization frees the cache; the process exits.
    push_snapshot(&mut c, 30, 30, Cause::Finalizing, false, truth_at(30));
    push_snapshot(
        &mut c,
        31,
        31,
        Cause::End,
        false,
        vec![site(LEAKY, 31, 31, 31), site(CLEAN, 0, 310, 8)],
    );
    c.end(31_000_000_001);
    c.write(&p);
    let v = report_json(&[p.to_str().unwrap()]);
    assert_eq!(v["snapshots"]["running"], false);
    assert_eq!(v["live_now"].as_array().unwrap().len(), 0);
    let leaks = v["leaks"].as_array().unwrap();
    assert_eq!(func(&leaks[0]), "leaky_alloc", "{leaks:?}");
    assert_eq!(leaks[0]["leaked"], true);
    assert_eq!(mib(&leaks[0]["bytes_est"]), 31.0);
    assert_eq!(mib(&v["sections"]["leaked_bytes_est"]), 31.0);
    let held = v["held_at_exit"].as_array().unwrap();
    assert_eq!(func(&held[0]), "clean_alloc", "{held:?}");
    assert_eq!(mib(&held[0]["bytes_est"]), 8.0);
    assert_eq!(v["process"]["python_finalizing_s"], 30.0);
    assert_eq!(v["process"]["end"], "exit");
    let out = stdout(&run(&["report", p.to_str().unwrap()]));
    assert!(!out.contains("Live now"), "{out}");
    assert!(out.contains("ended: a snapshot at exit"), "{out}");
}

#[test]
fn the_files_of_a_rolled_over_series_read_as_one_run_in_part_order() {
    let f = fixture("snap-parts");
    let one = f.dir.join("svc.msh");
    let two = f.dir.join("svc.part2.msh");
    let mut c = snapshot_file(
        &f,
        &snapshot_header("s3", 1, 1_000_000_000),
        build_id(&f.bin),
    );
    service(&mut c, 0, 14);
    c.write(&one);
    // The next file starts with a complete snapshot.
    let mut c = snapshot_file(
        &f,
        &snapshot_header("s3", 2, 1_000_000_000),
        build_id(&f.bin),
    );
    service(&mut c, 15, 29);
    c.write(&two);
    // Another process's series in the same directory is not part of it.
    let mut c = snapshot_file(
        &f,
        &snapshot_header("other", 1, 1_000_000_000),
        build_id(&f.bin),
    );
    push_snapshot(
        &mut c,
        0,
        0,
        Cause::Interval,
        true,
        vec![site(CLEAN, 500, 500, 500)],
    );
    // Named like a part of it, so that its header is what tells it apart.
    c.write(&f.dir.join("svc.part3.msh"));

    for args in [
        vec![two.to_str().unwrap()],
        vec![one.to_str().unwrap(), two.to_str().unwrap()],
    ] {
        let v = report_json(&args);
        assert_eq!(v["snapshots"]["parts"], 2, "{args:?}: {}", v["snapshots"]);
        assert_eq!(v["snapshots"]["snapshots"], 30);
        assert_eq!(mib(&v["totals"]["peak_heap_bytes"]), 324.0);
        assert_eq!(func(&v["growing"][0]), "leaky_alloc");
        assert_eq!(mib(&v["live_now"][0]["bytes_est"]), 30.0);
        assert_eq!(mib(&v["totals"]["allocated_bytes_est"]), 630.0);
    }
}

#[test]
fn since_and_until_limit_the_snapshots_that_count() {
    let f = fixture("snap-window");
    let p = running(&f, "win.msh");
    let c = p.to_str().unwrap();
    let v = report_json(&[c, "--since", "5s", "--until", "10"]);
    let sn = &v["snapshots"];
    assert_eq!(sn["snapshots"], 6, "{sn}");
    assert_eq!(sn["newest_snapshot_s"], 10.0);
    // Allocated inside the window: from the snapshot at 4 s to the one at 10 s.
    assert_eq!(
        mib(&v["totals"]["allocated_bytes_est"]),
        (11.0 - 5.0) + (110.0 - 50.0)
    );
    // The 300 MiB high at 15 s is outside: the peak is the window's highest heap.
    assert_eq!(mib(&v["totals"]["peak_heap_bytes"]), 11.0 + 8.0);
    assert_eq!(func(&v["peak"][0]), "leaky_alloc");
    assert_eq!(mib(&v["live_now"][0]["bytes_est"]), 11.0);
    let out = stdout(&run(&["report", c, "--since", "5s"]));
    assert!(
        out.contains("window     snapshots from 5.00 s to the end"),
        "{out}"
    );

    let o = run(&["report", c, "--since", "20s", "--until", "10s"]);
    assert!(!o.status.success());
    assert_eq!(stderr(&o), "memshim: error: --since is after --until\n");

    // An event capture has no snapshots to choose from.
    let ev = f.dir.join("events.msh");
    capture(&f, 0, build_id(&f.bin)).write(&ev);
    let o = run(&["report", ev.to_str().unwrap(), "--until", "1s"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.starts_with("memshim: error: ") && e.contains("need a snapshot capture"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn diff_compares_the_newest_snapshots_at_or_before_two_moments() {
    let f = fixture("snap-diff");
    let p = running(&f, "diff.msh");
    let o = run(&[
        "diff",
        "--format",
        "json",
        p.to_str().unwrap(),
        "--at",
        "5.5",
        "--at",
        "20s",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let grew = v["grew"].as_array().unwrap();
    assert_eq!(grew.len(), 1, "the cache is flat: {grew:?}");
    assert_eq!(func(&grew[0]), "leaky_alloc");
    // 6 MiB live at the snapshot at 5 s, 21 MiB at 20 s.
    assert_eq!(mib(&grew[0]["a_bytes_est"]), 6.0);
    assert_eq!(mib(&grew[0]["delta_bytes_est"]), 15.0);
    assert_eq!(v["shrank"].as_array().unwrap().len(), 0);
}

#[test]
fn a_capture_cut_inside_a_chunk_reads_up_to_its_last_whole_snapshot() {
    let f = fixture("snap-killed");
    let p = f.dir.join("killed.msh");
    let mut c = snapshot_file(
        &f,
        &snapshot_header("s4", 1, 1_000_000_000),
        build_id(&f.bin),
    );
    service(&mut c, 0, 28);
    c.flush();
    let before = c.bytes.len();
    push_snapshot(&mut c, 29, 29, Cause::Interval, false, truth_at(29));
    // SIGKILL while the last snapshot's chunk was half written.
    let cut = before + (c.bytes.len() - before) / 2;
    std::fs::write(&p, &c.bytes[..cut]).unwrap();
    let o = run(&["report", "--format", "json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.starts_with("memshim: warning: ") && e.contains("ends inside a chunk"),
        "{e}"
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["snapshots"]["snapshots"], 29);
    assert_eq!(v["snapshots"]["newest_snapshot_s"], 28.0);
    assert_eq!(v["snapshots"]["running"], true);
    assert_eq!(mib(&v["live_now"][0]["bytes_est"]), 29.0);
    assert_eq!(func(&v["growing"][0]), "leaky_alloc");
}

#[test]
fn the_exports_read_a_running_process_as_its_newest_snapshot() {
    let f = fixture("snap-exports");
    let p = running(&f, "exp.msh");
    let c = p.to_str().unwrap();
    let out = |name: &str| f.dir.join(name).display().to_string();
    let o = run(&["pprof", c, "-o", &out("heap.pb.gz")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // In use: the newest snapshot's live set (30 + 8 MiB); allocated: the totals.
    assert!(
        stdout(&o).contains("630.0 MiB allocated, 38.0 MiB in use"),
        "{}",
        stdout(&o)
    );
    let o = run(&["pprof", c, "--until", "9s", "-o", &out("early.pb.gz")]);
    assert!(
        stdout(&o).contains("110.0 MiB allocated, 18.0 MiB in use"),
        "{}",
        stdout(&o)
    );
    for args in [
        vec!["flamegraph", c, "--kind", "peak", "-o", &out("peak.svg")],
        vec!["timeline", c, "-o", &out("t.svg")],
        vec!["html", c, "--since", "2s", "-o", &out("p.html")],
    ] {
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
    let svg = std::fs::read_to_string(out("peak.svg")).unwrap();
    assert!(svg.contains("peak_fn"), "the peak's flamegraph has peak_fn");
}

#[test]
fn a_restarted_recording_says_allocations_before_it_are_not_counted() {
    let f = fixture("snap-restart");
    let p = f.dir.join("restart.msh");
    let mut c = snapshot_file(
        &f,
        &snapshot_header("s5", 1, 1_000_000_000),
        build_id(&f.bin),
    );
    service(&mut c, 0, 9);
    // Stopped at 10 s, started again at 12 s: the counters start over from the restart.
    let s = memshim_format::snapshot::Snapshot {
        t: 12_000_000_000,
        seq: 10,
        cause: Cause::Start,
        complete: true,
        live_bytes: 0,
        high_bytes: 0,
        high_t: 12_000_000_000,
        counted_from: 12_000_000_000,
        sites: vec![site(LEAKY, 2, 2, 2)],
    };
    c.push(s.to_record());
    c.write(&p);
    let v = report_json(&[p.to_str().unwrap()]);
    assert_eq!(v["snapshots"]["counted_from_s"], 12.0, "{}", v["snapshots"]);
    let out = stdout(&run(&["report", p.to_str().unwrap()]));
    assert!(
        out.contains("counted    allocations from before 12.00 s are not counted"),
        "{out}"
    );
}
