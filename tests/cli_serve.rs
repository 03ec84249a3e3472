//! `memshim serve` against real processes under the real shim: one still running (its capture
//! still being written) and one that ended; `go tool pprof -top` on the heap endpoint names the
//! leaking function first; the index lists both; a request cannot reach a file outside the
//! template (a path, a non-numeric pid, a symlink in the directory, another pid).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use memshim_test_support::fleet::*;
use memshim_test_support::report_json::within;
use memshim_test_support::tools::have_tool;

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A raw HTTP/1.0 request to 127.0.0.1:port (no client normalizes the path); the status
/// code and body.
fn raw(port: u16, request_line: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "{request_line}\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (code, body)
}

fn get(port: u16, path: &str) -> (u16, String) {
    raw(port, &format!("GET {path} HTTP/1.0"))
}

/// Starts the fixture with `wait`: it leaks 32 MiB from lib_leak, says "ready" and waits for
/// its stdin to close.
fn start_waiting(
    f: &Fleet,
    so: &Path,
    caps: &Path,
) -> (Running, ChildStdin, BufReader<ChildStdout>) {
    let mut cmd = Command::new(&f.prog);
    cmd.args(["wait", "128"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    under_shim(&mut cmd, so, caps);
    let mut child = cmd.spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    (Running(child), stdin, out)
}

/// Waits (bounded: 200 tries, 50 ms apart) until the running process's capture has flushed
/// its leak: the report of it (read up to its last complete chunk) names lib_leak.
fn wait_for_flush(cap: &Path) {
    for _ in 0..200 {
        let o = memshim(&["report", "--format", "json", cap.to_str().unwrap()]);
        if text(&o.stdout).contains("\"lib_leak\"") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the running process's capture never showed its leak");
}

fn start_serve(template: &Path, port: u16) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_memshim"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg(template)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("memshim: serving ")
            && line.contains(&format!("http://127.0.0.1:{port}/")),
        "{line}"
    );
    Running(child)
}

fn first_row(top: &str) -> String {
    let after = top.split("flat%").nth(1).expect("a -top table");
    after.lines().nth(1).unwrap_or_default().to_string()
}

/// The flat column of a -top row, in MB (pprof's MB are MiB).
fn flat_mb(row: &str) -> f64 {
    let flat = row.split_whitespace().next().unwrap_or_default();
    flat.strip_suffix("MB")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn go_tool_pprof_reads_the_heap_of_a_running_process_from_serve() {
    let Some(so) = shim() else { return };
    if !have_tool("go", &["version"], "golang-go") {
        return;
    }
    let dir = scratch("serve");
    let f = build_fleet(&dir);
    let caps = dir.join("caps");
    let (mut running, stdin, mut out) = start_waiting(&f, &so, &caps);
    let running_pid = running.0.id();
    let live_cap = caps.join(format!("memshim.{running_pid}.msh"));
    wait_for_flush(&live_cap);
    // A second process, ended: 2 MiB from lib_leak.
    let mut other = Command::new(&f.prog);
    other.args(["leak", "8"]);
    under_shim(&mut other, &so, &caps);
    assert!(other.output().unwrap().status.success());
    // A symlink named like a capture, pointing out of the directory.
    std::os::unix::fs::symlink("/etc/passwd", caps.join("memshim.999999.msh")).unwrap();

    let port = free_port();
    let _serve = start_serve(&caps.join("memshim.%p.msh"), port);
    let base = format!("http://127.0.0.1:{port}");

    // One process: 32 MiB in use from lib_leak, still running.
    let top = go_pprof_top(&format!("{base}/debug/pprof/heap?pid={running_pid}"), &dir);
    assert!(first_row(&top).contains("lib_leak"), "{top}");
    assert!(
        within(flat_mb(&first_row(&top)), 32.0, 0.25),
        "32 MiB leaked: {top}"
    );
    assert!(top.contains("Type: inuse_space"), "{top}");
    // Every process merged: 32 + 2 MiB.
    let top = go_pprof_top(&format!("{base}/debug/pprof/heap"), &dir);
    assert!(first_row(&top).contains("lib_leak"), "{top}");
    assert!(
        within(flat_mb(&first_row(&top)), 34.0, 0.25),
        "32 + 2 MiB leaked: {top}"
    );
    let top = go_pprof_top(&format!("{base}/debug/pprof/allocs"), &dir);
    assert!(top.contains("Type: alloc_space"), "{top}");
    assert!(
        top.contains("main_churn"),
        "allocations count what was freed too: {top}"
    );

    let (code, html) = get(port, "/");
    assert_eq!(code, 200);
    assert!(html.contains(&format!("<td>{running_pid}</td>")), "{html}");
    assert!(
        html.contains("running (or killed)") && html.contains("exit"),
        "{html}"
    );
    assert!(html.contains("fleet_prog wait 128"), "{html}");
    assert!(
        !html.contains("999999"),
        "the symlink is not a capture: {html}"
    );

    // Nothing outside the template, whatever the request says.
    for (path, want) in [
        ("/../../../../etc/passwd", 404),
        ("/debug/pprof/../../../../etc/passwd", 404),
        ("/debug/pprof/heap?pid=../../../../etc/passwd", 400),
        ("/debug/pprof/heap?pid=%2e%2e%2fetc%2fpasswd", 400),
        ("/debug/pprof/heap?pid=999999", 404),
        ("/debug/pprof/heap?pid=1", 404),
    ] {
        let (code, body) = get(port, path);
        assert_eq!(code, want, "{path}: {body}");
        assert!(!body.contains("root:"), "{path}: {body}");
    }
    let (code, _) = raw(port, "POST /debug/pprof/heap HTTP/1.0");
    assert_eq!(code, 405, "read-only");

    drop(stdin);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(rest.trim(), "done");
    assert!(running.0.wait().unwrap().success());
}

#[test]
fn serve_refuses_a_template_without_p_in_one_line() {
    let dir = scratch("serve-bad");
    let t = dir.join("memshim.msh");
    let o = memshim(&["serve", t.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("memshim: error: ") && err.contains("%p"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
