//! Running a program to completion or to a signal, each run under a timeout: in its own process
//! group, its stdout and stderr into files, and on a hang a gdb backtrace of every thread before
//! the group is killed and the test fails.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every fixture run is killed (and the test fails, with backtraces) after this long.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The seed every sampled run uses, so a failure reproduces.
pub const SEED: &str = "12345";

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `cmd` to completion in its own process group, stdout/stderr into files of `dir`
/// (named after `tag`). Past `timeout`, takes a gdb backtrace of every thread of the process,
/// kills the whole group and panics with it.
pub fn run(mut cmd: Command, dir: &Path, tag: &str, timeout: Duration) -> Outcome {
    let (child, out_path, err_path) = spawn_logged(&mut cmd, dir, tag);
    wait_logged(child, &out_path, &err_path, timeout, || {
        format!(
            "{tag}: {cmd:?} did not finish within {timeout:?}\nstderr so far:\n{}",
            read(&err_path)
        )
    })
}

/// Starts `cmd` in its own process group, stdout/stderr into files of `dir` named after `tag`;
/// returns the child and the two paths.
fn spawn_logged(
    cmd: &mut Command,
    dir: &Path,
    tag: &str,
) -> (std::process::Child, PathBuf, PathBuf) {
    let out_path = dir.join(format!("{tag}.stdout"));
    let err_path = dir.join(format!("{tag}.stderr"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    (child, out_path, err_path)
}

/// Waits for `child` to end and reads its outcome. Past `timeout`, takes a gdb backtrace of
/// every thread of the process, kills the whole group and panics with `hang` and them.
fn wait_logged(
    mut child: std::process::Child,
    out_path: &Path,
    err_path: &Path,
    timeout: Duration,
    hang: impl FnOnce() -> String,
) -> Outcome {
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > timeout {
            let bt = backtraces(child.id());
            // SAFETY: kill has no memory-safety preconditions; the group is the child's own.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{} (hang); backtraces:\n{bt}", hang());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        stdout: read(out_path),
        stderr: read(err_path),
        code: status.code(),
        signal: status.signal(),
    }
}

/// Waits until `path` contains `text`; past `timeout` (or when `child` exits first) takes
/// backtraces, kills the child's group and panics.
pub fn wait_for_text(child: &mut std::process::Child, path: &Path, text: &str, timeout: Duration) {
    let start = Instant::now();
    while !read(path).contains(text) {
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "exited ({st}) before writing {text:?} to {}",
                path.display()
            );
        }
        if start.elapsed() > timeout {
            let bt = backtraces(child.id());
            // SAFETY: kill has no memory-safety preconditions; the group is the child's own.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "no {text:?} in {} within {timeout:?} (hang); backtraces:\n{bt}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `cmd` in its own process group (stdout/stderr into files of `dir` named after `tag`),
/// waits until the file `ready` says `ready`, sends `sig` to the process, and waits for it to
/// end (killing the group and failing past [`TIMEOUT`]).
pub fn kill_when_ready(mut cmd: Command, dir: &Path, tag: &str, ready: &Path, sig: i32) -> Outcome {
    let _ = std::fs::remove_file(ready);
    let (mut child, out_path, err_path) = spawn_logged(&mut cmd, dir, tag);
    wait_for_text(&mut child, ready, "ready", TIMEOUT);
    // Let the threads get going.
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, sig) };
    wait_logged(child, &out_path, &err_path, TIMEOUT, || {
        format!("{tag}: did not end within {TIMEOUT:?} of signal {sig}")
    })
}

pub fn read(p: &Path) -> String {
    let mut s = Vec::new();
    if let Ok(mut f) = std::fs::File::open(p) {
        f.read_to_end(&mut s).unwrap();
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// `thread apply all bt` of process `pid` (best effort, for hang reports).
pub fn backtraces(pid: u32) -> String {
    let o = Command::new("timeout")
        .args(["20", "gdb", "-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt"])
        .stdin(Stdio::null())
        .output();
    match o {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("(gdb unavailable: {e})"),
    }
}

/// Lines of `text` starting with `memshim:`.
pub fn warnings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("memshim:")).collect()
}
