//! Snapshot mode (`MEMSHIM_MODE=snapshots`) on a real C service under the real shim: the
//! capture holds per-stack aggregates instead of events, and they say what the program did;
//! rollover with `MEMSHIM_KEEP`; a SIGKILL leaves every snapshot before it; fork children;
//! `memshim ctl` (snapshot, a paused start, start, stop) on live processes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memshim_format::snapshot::{Cause, Snapshot, EXTRA_CAPTURE, EXTRA_PART, EXTRA_SERIES};
use memshim_format::Record;
use memshim_test_support::prelude::shim;
use shim::*;

fn service(dir: &Path, secs: u32, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let bin = build_c(dir, "snapshot_leak.c", &[]);
    let mut cmd = Command::new(&bin);
    cmd.arg(secs.to_string())
        .args(extra)
        .current_dir(dir)
        .env("LD_PRELOAD", shim_so())
        .env("MEMSHIM_SEED", SEED)
        // 64 KiB: each 256 KiB leak is sampled with probability 0.98, so 20 of them estimate
        // the truth closely (at the default 512 KiB, 8 samples leave a 35% spread).
        .env("MEMSHIM_RATE", "64K")
        .env("MEMSHIM_MODE", "snapshots")
        .env("MEMSHIM_OUTPUT", dir.join("m.%p.msh"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn leaked(stdout: &str, who: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{who} leaked ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no '{who} leaked' line in {stdout:?}"))
}

/// The live bytes the snapshot gives the stacks through `leaky`.
fn leaky_live(cap: &Capture, snap: &Snapshot) -> u64 {
    let bin = cap.header.exe.clone();
    let stacks = cap.stacks_through(&ranges(cap, Path::new(&bin), "leaky"));
    snap.sites
        .iter()
        .filter(|s| stacks.contains(&s.stack))
        .map(|s| s.live_bytes)
        .sum()
}

fn within(got: u64, truth: u64, tol: f64) -> bool {
    memshim_test_support::report_json::within(got as f64, truth as f64, tol)
}

#[test]
fn a_snapshot_capture_holds_the_leak_its_growth_and_no_events() {
    let dir = scratch("snap-basic");
    let cmd = service(&dir, 2, &[], &[("MEMSHIM_INTERVAL", "200ms")]);
    let out = run(cmd, &dir, "basic", TIMEOUT);
    assert!(out.success(), "{out:?}");
    let truth = leaked(&out.stdout, "parent");
    let caps = captures(&dir);
    let cap = only(&caps);
    cap.assert_complete();
    assert_eq!(cap.extra(EXTRA_CAPTURE), Some("snapshots"));
    assert_eq!(cap.extra(EXTRA_PART), Some("1"));
    assert_eq!(
        cap.allocs().count(),
        0,
        "no event records in a snapshot capture"
    );
    assert_eq!(cap.frees().count(), 0);
    let snaps = cap.snapshots();
    assert!(
        snaps.len() >= 6,
        "{} snapshots in 2 s at 200 ms",
        snaps.len()
    );
    assert_eq!(snaps[0].cause, Cause::Start);
    assert!(snaps[0].complete);
    assert_eq!(snaps.last().unwrap().cause, Cause::End);
    let last = leaky_live(cap, snaps.last().unwrap());
    assert!(
        within(last, truth, 0.25),
        "leaky live {last} vs truth {truth}"
    );
    // It grows across the run, and the allocated totals never go down.
    let mid = leaky_live(cap, &snaps[snaps.len() / 2]);
    assert!(mid < last && mid > 0, "growth: mid {mid}, last {last}");
    for w in snaps.windows(2) {
        assert!(w[1].seq == w[0].seq + 1 && w[1].t >= w[0].t);
        for s in &w[1].sites {
            if let Some(prev) = w[0].sites.iter().find(|p| p.stack == s.stack) {
                assert!(s.alloc_bytes >= prev.alloc_bytes, "allocated went down");
            }
        }
        assert!(w[1].high_bytes >= w[1].live_bytes);
    }
}

#[test]
fn snapshot_mode_keeps_the_capture_small() {
    let dir = scratch("snap-size");
    let ev_dir = dir.join("events");
    std::fs::create_dir_all(&ev_dir).unwrap();
    let mut events = service(
        &dir,
        2,
        &[],
        &[("MEMSHIM_MODE", "events"), ("MEMSHIM_RATE", "4K")],
    );
    events.env("MEMSHIM_OUTPUT", ev_dir.join("m.%p.msh"));
    assert!(run(events, &dir, "events", TIMEOUT).success());
    let snaps = service(
        &dir,
        2,
        &[],
        &[("MEMSHIM_RATE", "4K"), ("MEMSHIM_INTERVAL", "1s")],
    );
    assert!(run(snaps, &dir, "snaps", TIMEOUT).success());
    let size = |d: &Path| std::fs::metadata(&capture_paths(d)[0]).unwrap().len();
    let (ev, sn) = (size(&ev_dir), size(&dir));
    // At 4K nearly every churned block is a sample: events grow with them, snapshots do not.
    // (zstd and the delta encoding make the churn's events cheap; the soak benchmark measures
    // the ratio over a long run.)
    assert!(sn * 2 < ev, "snapshots {sn} B vs events {ev} B");
}

#[test]
fn rollover_keeps_the_newest_files_and_each_stands_alone() {
    let dir = scratch("snap-rollover");
    let cmd = service(
        &dir,
        4,
        &[],
        &[
            ("MEMSHIM_INTERVAL", "20ms"),
            ("MEMSHIM_MAX_SIZE", "3K"),
            ("MEMSHIM_KEEP", "2"),
        ],
    );
    let out = run(cmd, &dir, "roll", TIMEOUT);
    assert!(out.success(), "{out:?}");
    let mut caps = captures(&dir);
    assert_eq!(
        caps.len(),
        2,
        "MEMSHIM_KEEP=2 keeps two files: {:?}",
        capture_paths(&dir)
    );
    caps.sort_by_key(|c| c.extra(EXTRA_PART).unwrap().parse::<u32>().unwrap());
    let parts: Vec<u32> = caps
        .iter()
        .map(|c| c.extra(EXTRA_PART).unwrap().parse().unwrap())
        .collect();
    assert!(parts[0] >= 2 && parts[1] == parts[0] + 1, "parts {parts:?}");
    assert_eq!(caps[0].extra(EXTRA_SERIES), caps[1].extra(EXTRA_SERIES));
    for c in &caps {
        assert!(c
            .path
            .to_string_lossy()
            .contains(&format!(".part{}.", c.extra(EXTRA_PART).unwrap())));
        c.assert_stacks_defined();
        let snaps = c.snapshots();
        assert!(snaps[0].complete && snaps[0].cause == Cause::Start);
        // The leak is named in each file on its own: its stack is defined there.
        assert!(leaky_live(c, &snaps[0]) > 0, "{}", c.name());
    }
    let truth = leaked(&out.stdout, "parent");
    let last = caps[1].snapshots().last().cloned().unwrap();
    assert_eq!(last.cause, Cause::End);
    assert!(within(leaky_live(&caps[1], &last), truth, 0.25));
}

/// Runs of several lengths (a rollover can fall on the exit's own snapshot): the parts are named
/// after the first file (never `.part2.part4`), and the last file ends with the End snapshot.
#[test]
fn every_rolled_over_run_ends_with_its_end_snapshot_in_the_last_file() {
    for secs in [2, 3] {
        let dir = scratch(&format!("snap-roll-end-{secs}"));
        let cmd = service(
            &dir,
            secs,
            &[],
            &[
                ("MEMSHIM_INTERVAL", "20ms"),
                ("MEMSHIM_MAX_SIZE", "3K"),
                ("MEMSHIM_KEEP", "3"),
            ],
        );
        let out = run(cmd, &dir, "roll", TIMEOUT);
        assert!(out.success(), "{out:?}");
        let mut caps = captures(&dir);
        caps.sort_by_key(|c| c.extra(EXTRA_PART).unwrap().parse::<u32>().unwrap());
        for c in &caps {
            let name = c.path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.matches(".part").count() <= 1, "{name}");
        }
        let last = caps.last().unwrap();
        last.assert_complete();
        assert_eq!(
            last.snapshots().last().unwrap().cause,
            Cause::End,
            "{}",
            last.name()
        );
    }
}

/// Waits until the capture in `dir` holds at least `n` snapshots; returns how many.
fn wait_for_snapshots(dir: &Path, n: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let got = capture_paths(dir)
            .first()
            .map_or(0, |p| decode(p).snapshots().len());
        if got >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_leaves_every_snapshot_before_it_readable() {
    let dir = scratch("snap-kill");
    let mut child = service(&dir, 30, &[], &[("MEMSHIM_INTERVAL", "100ms")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let seen = wait_for_snapshots(&dir, 5, TIMEOUT);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen >= 5, "only {seen} snapshots before the kill");
    let cap = decode(&capture_paths(&dir)[0]);
    let snaps = cap.snapshots();
    assert!(
        snaps.len() >= seen,
        "{} after the kill, {seen} before",
        snaps.len()
    );
    assert!(cap.end().is_none(), "killed: no End record");
    assert!(leaky_live(&cap, snaps.last().unwrap()) > 0);
}

#[test]
fn a_forked_child_writes_its_own_snapshot_capture() {
    let dir = scratch("snap-fork");
    let cmd = service(&dir, 1, &["fork"], &[("MEMSHIM_INTERVAL", "200ms")]);
    let out = run(cmd, &dir, "fork", TIMEOUT);
    assert!(out.success(), "{out:?}");
    let caps = captures(&dir);
    assert_eq!(caps.len(), 2, "parent and child");
    let truth = leaked(&out.stdout, "child");
    for c in &caps {
        c.assert_complete();
        assert_eq!(c.extra(EXTRA_CAPTURE), Some("snapshots"));
        let last = c.snapshots().last().cloned().unwrap();
        assert_eq!(last.cause, Cause::End);
        let live = leaky_live(c, &last);
        assert!(within(live, truth, 0.25), "{}: {live} vs {truth}", c.name());
    }
    assert!(caps.iter().any(|c| c.header.forked_from.is_some()));
}

fn memshim_ctl(pid: u32, what: &str) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_memshim"));
    Command::new(bin)
        .args(["ctl", &pid.to_string(), what, "--timeout", "10s"])
        .output()
        .unwrap()
}

fn spawn_quiet(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).spawn().unwrap()
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ctl_snapshot_writes_one_now_and_prints_the_capture() {
    let dir = scratch("snap-ctl");
    // A 60 s interval: the only snapshots in the run are the start, the request and the end.
    let child = spawn_quiet(service(&dir, 3, &[], &[("MEMSHIM_INTERVAL", "60s")]));
    assert!(wait_for_snapshots(&dir, 1, TIMEOUT) >= 1);
    let out = memshim_ctl(child.id(), "snapshot");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let path = capture_paths(&dir)[0].clone();
    assert!(text.contains(&path.display().to_string()), "{text}");
    finish(child);
    let snaps = decode(&path).snapshots();
    let causes: Vec<Cause> = snaps.iter().map(|s| s.cause).collect();
    assert!(causes.contains(&Cause::Request), "{causes:?}");
}

#[test]
fn a_paused_start_records_nothing_until_started_then_stops() {
    let dir = scratch("snap-paused");
    let child = spawn_quiet(service(
        &dir,
        4,
        &[],
        &[("MEMSHIM_INTERVAL", "100ms"), ("MEMSHIM_START", "paused")],
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert!(capture_paths(&dir).is_empty(), "paused: no file yet");
    let start = memshim_ctl(child.id(), "start");
    assert!(start.status.success(), "{start:?}");
    std::thread::sleep(Duration::from_millis(800));
    let stop = memshim_ctl(child.id(), "stop");
    assert!(stop.status.success(), "{stop:?}");
    let stdout = finish(child);
    let truth = leaked(&stdout, "parent");
    let cap = decode(&capture_paths(&dir)[0]);
    let snaps = cap.snapshots();
    let stopped = snaps
        .iter()
        .find(|s| s.cause == Cause::Stop)
        .expect("a Stop snapshot");
    assert!(
        stopped.counted_from > 0,
        "allocations before the start are not counted"
    );
    let at_stop = leaky_live(&cap, stopped);
    let at_end = leaky_live(&cap, snaps.last().unwrap());
    // Recorded only between start and stop: well under the run's whole leak, and nothing new
    // after the stop.
    assert!(at_stop > 0 && at_stop < truth / 2, "{at_stop} of {truth}");
    assert_eq!(at_stop, at_end, "nothing sampled after the stop");
    assert!(cap.records.iter().any(|r| matches!(
        r,
        Record::Marker {
            marker: memshim_format::Marker::RecordingStopped,
            ..
        }
    )));
}

#[test]
fn ctl_on_a_process_without_the_shim_says_so() {
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    let out = memshim_ctl(child.id(), "snapshot");
    child.kill().unwrap();
    child.wait().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("does not run under memshim"), "{err}");
}
