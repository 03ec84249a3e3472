//! The reading commands on snapshot captures of a real C service under the real shim
//! (`MEMSHIM_MODE=snapshots MEMSHIM_INTERVAL=200ms`; tests/fixtures/shim/snapshot_leak.c leaks
//! 256 KiB in `leaky` every 50 ms and prints the truth): the ended run's report and diff, a
//! running one's live now and growth and what a SIGKILL leaves, a rolled-over series read as
//! one run, and `go tool pprof -top` against `memshim serve`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use memshim_test_support::c_build::shim_fixture;
use memshim_test_support::fleet::{free_port, go_pprof_top, memshim, scratch, shim, text};
use memshim_test_support::report_json::within;
use memshim_test_support::tools::have_tool;
use serde_json::Value;

const MIB: f64 = 1048576.0;

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn service(so: &Path, dir: &Path, secs: u32, env: &[(&str, &str)]) -> Command {
    let bin = shim_fixture(dir, "snapshot_leak.c", &[]);
    let mut cmd = Command::new(bin);
    cmd.arg(secs.to_string())
        .current_dir(dir)
        .env("LD_PRELOAD", so)
        .env("MEMSHIM_SEED", "12345")
        // Each 256 KiB leak is sampled with probability 0.98 at 64 KiB.
        .env("MEMSHIM_RATE", "64K")
        .env("MEMSHIM_MODE", "snapshots")
        .env("MEMSHIM_INTERVAL", "200ms")
        .env("MEMSHIM_OUTPUT", dir.join("m.%p.msh"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The bytes the service says it leaked.
fn truth(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("parent leaked "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 'parent leaked' line in {stdout:?}"))
}

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msh"))
        .collect();
    v.sort();
    v
}

fn report(cap: &str) -> Value {
    let o = memshim(&["report", "--format", "json", cap]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_str(&text(&o.stdout)).unwrap()
}

fn func(site: &Value) -> &str {
    site["frames"][0]["function"].as_str().unwrap_or("<null>")
}

/// Polls the report of the running service's capture (bounded: 300 tries, 50 ms apart) until
/// it holds `n` snapshots.
fn report_once(dir: &Path, n: u64) -> Value {
    for _ in 0..300 {
        if let Some(c) = captures(dir).first() {
            let o = memshim(&["report", "--format", "json", c.to_str().unwrap()]);
            if o.status.success() {
                let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
                if v["snapshots"]["snapshots"].as_u64().unwrap_or(0) >= n {
                    return v;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the running service's capture never held {n} snapshots");
}

#[test]
fn an_ended_snapshot_run_reports_its_leak_as_leaked_and_growing_and_diffs_it() {
    let Some(so) = shim() else { return };
    let dir = scratch("snapruns-ended");
    let o = service(&so, &dir, 3, &[]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let truth = truth(&text(&o.stdout));
    let caps = captures(&dir);
    assert_eq!(caps.len(), 1, "{caps:?}");
    let cap = caps[0].to_str().unwrap();
    let v = report(cap);
    assert_eq!(v["snapshots"]["running"], false, "{}", v["snapshots"]);
    assert!(v["snapshots"]["snapshots"].as_u64().unwrap() >= 8);
    let top = &v["leaks"][0];
    assert_eq!(func(top), "leaky", "{:#}", v["leaks"]);
    assert_eq!(
        (top["leaked"].as_bool(), top["growing"].as_bool()),
        (Some(true), Some(true))
    );
    let est = top["bytes_est"].as_f64().unwrap();
    assert!(within(est, truth, 0.25), "leaked {est}, truth {truth}");
    assert_eq!(func(&v["growing"][0]), "leaky");
    // The rate: the truth over the run's length, per hour.
    let per_hour = v["growing"][0]["growth_bytes_per_hour"].as_f64().unwrap();
    let truth_per_hour = truth / v["process"]["duration_s"].as_f64().unwrap() * 3600.0;
    assert!(
        within(per_hour, truth_per_hour, 0.25),
        "{per_hour} B/h, truth {truth_per_hour}"
    );
    assert_eq!(v["live_now"].as_array().unwrap().len(), 0);

    // diff from before the first snapshot to the end: what grew is the leak.
    let o = memshim(&[
        "diff", "--format", "json", cap, "--at", "0.1", "--at", "end",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let d: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(func(&d["grew"][0]), "leaky", "{d:#}");
    let delta = d["grew"][0]["delta_bytes_est"].as_f64().unwrap();
    assert!(within(delta, truth, 0.25), "grew {delta}, truth {truth}");
}

#[test]
fn a_running_snapshot_run_is_live_now_with_its_leak_growing_and_a_sigkill_leaves_it_readable() {
    let Some(so) = shim() else { return };
    let dir = scratch("snapruns-running");
    let child = Running(
        service(&so, &dir, 60, &[])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let v = report_once(&dir, 12);
    assert_eq!(v["snapshots"]["running"], true, "{}", v["snapshots"]);
    assert_eq!(
        v["sections"]["leaked_bytes_est"], 0,
        "nothing is leaked while it runs"
    );
    assert_eq!(func(&v["live_now"][0]), "leaky", "{:#}", v["live_now"]);
    assert_eq!(func(&v["growing"][0]), "leaky", "{:#}", v["growing"]);
    assert_eq!(func(&v["leaks"][0]), "leaky");
    assert_eq!(v["leaks"][0]["leaked"], false);
    let seen = v["snapshots"]["snapshots"].as_u64().unwrap();

    drop(child); // SIGKILL
    let cap = captures(&dir).remove(0);
    let o = memshim(&["report", "--format", "json", cap.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert!(v["snapshots"]["snapshots"].as_u64().unwrap() >= seen);
    assert_eq!(
        v["snapshots"]["running"], true,
        "killed: no snapshot at exit"
    );
    assert_eq!(func(&v["growing"][0]), "leaky");
}

#[test]
fn a_rolled_over_series_with_keep_reads_as_one_run() {
    let Some(so) = shim() else { return };
    let dir = scratch("snapruns-rollover");
    let o = service(
        &so,
        &dir,
        3,
        &[
            ("MEMSHIM_INTERVAL", "20ms"),
            ("MEMSHIM_MAX_SIZE", "3K"),
            ("MEMSHIM_KEEP", "2"),
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let truth = truth(&text(&o.stdout));
    let caps = captures(&dir);
    assert_eq!(caps.len(), 2, "{caps:?}");
    // The template finds the series though its first file is gone; one process either way.
    let template = dir.join("m.%p.msh");
    for arg in [caps[1].to_str().unwrap(), template.to_str().unwrap()] {
        let v = report(arg);
        assert_eq!(v["snapshots"]["parts"], 2, "{arg}: {}", v["snapshots"]);
        assert_eq!(v["snapshots"]["running"], false);
        let top = &v["leaks"][0];
        assert_eq!(func(top), "leaky", "{:#}", v["leaks"]);
        let est = top["bytes_est"].as_f64().unwrap();
        assert!(within(est, truth, 0.25), "leaked {est}, truth {truth}");
    }
}

/// The flat column of `go tool pprof -top`'s first row, in MiB, and the row.
fn pprof_top(url: &str, home: &Path) -> (f64, String) {
    let top = go_pprof_top(url, home);
    let row = top
        .split("flat%")
        .nth(1)
        .and_then(|t| t.lines().nth(1))
        .unwrap_or_else(|| panic!("a -top table: {top}"))
        .to_string();
    let flat = row.split_whitespace().next().unwrap_or_default();
    let mb = flat
        .strip_suffix("MB")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    (mb, row)
}

/// The live now bytes of `leaky` in the report of `cap`.
fn leaky_now(cap: &Path) -> f64 {
    let v = report(cap.to_str().unwrap());
    let row = &v["live_now"][0];
    assert_eq!(func(row), "leaky", "{:#}", v["live_now"]);
    row["bytes_est"].as_f64().unwrap()
}

#[test]
fn go_tool_pprof_reads_a_running_snapshot_run_from_serve() {
    let Some(so) = shim() else { return };
    if !have_tool("go", &["version"], "golang-go") {
        return;
    }
    let dir = scratch("snapruns-serve");
    let child = Running(
        service(&so, &dir, 60, &[])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    report_once(&dir, 10);
    let cap = dir.join(format!("m.{pid}.msh"));

    let port = free_port();
    let mut serve = Running(
        Command::new(env!("CARGO_BIN_EXE_memshim"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg(dir.join("m.%p.msh"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("memshim: serving "), "{line}");

    // In use is the newest snapshot's live set: between what the report said just before
    // the request and just after it (the service goes on leaking).
    let before = leaky_now(&cap) / MIB;
    let (mb, row) = pprof_top(
        &format!("http://127.0.0.1:{port}/debug/pprof/heap?pid={pid}"),
        &dir,
    );
    let after = leaky_now(&cap) / MIB;
    assert!(row.contains("leaky"), "{row}");
    assert!(
        mb >= before * 0.95 && mb <= after * 1.05,
        "{mb} MiB in use, live now {before}..{after} MiB: {row}"
    );
}
