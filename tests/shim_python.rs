//! Python programs under the real shim (the real interpreter, not a pyenv wrapper): threads,
//! os.fork, multiprocessing with fork and with spawn, subprocess. Each behaves exactly as
//! without the shim and leaves one complete capture per process.

use memshim_test_support::prelude::shim;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use memshim_format::EndKind;
use shim::*;

/// Runs a Python fixture plain and under the shim (default rate, fixed seed), asserts identical
/// behaviour, and returns the plain outcome and the captures once every process finished.
fn run_py(name: &str, script: &str, args: &[&str]) -> (Outcome, Vec<Capture>) {
    let dir = scratch(name);
    let mut prog = Program::new(python_resolved()).arg(fixtures().join(script).to_str().unwrap());
    for a in args {
        prog = prog.arg(*a);
    }
    let plain = prog.run_plain(&dir);
    assert!(plain.success(), "{name}: {}", plain.stderr);
    let (o, caps) = prog.run_shim(&dir, "shim", None);
    assert_same(&plain, &o, name);
    (plain, settled(&caps))
}

/// The captures of `dir` once each has its End (helpers such as multiprocessing's resource
/// tracker may outlive the main process by a moment). Past the timeout, returns what is there
/// and the checks below report the capture without End.
fn settled(dir: &Path) -> Vec<Capture> {
    let start = Instant::now();
    loop {
        let caps = captures(dir);
        if caps.iter().all(|c| c.end().is_some()) || start.elapsed() > TIMEOUT {
            return caps;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every capture complete; exactly one per process (a pid shows twice only across an exec).
fn one_per_process(caps: &[Capture]) {
    let mut per_pid: HashMap<u32, Vec<&Capture>> = HashMap::new();
    for c in caps {
        c.assert_complete();
        c.assert_stacks_defined();
        assert!(
            c.allocs().count() > 0,
            "{}: no allocation recorded",
            c.name()
        );
        per_pid.entry(c.header.pid).or_default().push(c);
    }
    for (pid, cs) in per_pid {
        let not_exec = cs
            .iter()
            .filter(|c| c.end().unwrap().0 != EndKind::Exec)
            .count();
        assert_eq!(
            not_exec,
            1,
            "pid {pid}: {:?}",
            cs.iter().map(|c| c.name()).collect::<Vec<_>>()
        );
    }
}

fn main_capture(caps: &[Capture]) -> &Capture {
    let me = std::process::id();
    let mains: Vec<_> = caps.iter().filter(|c| c.header.ppid == me).collect();
    assert_eq!(
        mains.len(),
        1,
        "one capture of the process the test started"
    );
    mains[0]
}

#[test]
fn python_threads() {
    let (plain, caps) = run_py("py-threads", "py_threads.py", &[]);
    assert_eq!(plain.stdout.lines().count(), 4);
    one_per_process(&caps);
    assert_eq!(caps.len(), 1);
    assert_eq!(caps[0].end().unwrap().0, EndKind::Exit);
    let tids: std::collections::HashSet<u32> = caps[0].allocs().map(|a| a.tid).collect();
    assert!(tids.len() >= 3, "samples from the worker threads: {tids:?}");
}

#[test]
fn python_os_fork() {
    let (plain, caps) = run_py("py-fork", "py_fork.py", &[]);
    assert_eq!(plain.stdout, "child 5004950 10\nparent 3 20 30\n");
    one_per_process(&caps);
    assert_eq!(caps.len(), 2);
    let parent = main_capture(&caps);
    assert_eq!(parent.end().unwrap().0, EndKind::Exit);
    let child = caps
        .iter()
        .find(|c| c.header.pid != parent.header.pid)
        .unwrap();
    assert_eq!(child.header.forked_from, Some(parent.header.pid));
    assert_eq!(child.end().unwrap().0, EndKind::QuickExit, "os._exit");
    assert!(
        child.allocs().any(|a| a.inherited),
        "the parent's 4 MB of buffers were sampled and are inherited live"
    );
}

#[test]
fn python_multiprocessing_fork() {
    let (plain, caps) = run_py("py-mp-fork", "py_mp.py", &["fork"]);
    assert!(plain.stdout.ends_with("[0, 0, 0]\n"), "{}", plain.stdout);
    one_per_process(&caps);
    let parent = main_capture(&caps);
    assert_eq!(parent.end().unwrap().0, EndKind::Exit);
    let workers: Vec<_> = caps
        .iter()
        .filter(|c| c.header.forked_from == Some(parent.header.pid))
        .collect();
    assert_eq!(workers.len(), 3, "three forked workers");
    assert_eq!(caps.len(), 4);
    for w in workers {
        // Forked multiprocessing workers leave through os._exit.
        assert_eq!(w.end().unwrap().0, EndKind::QuickExit, "{}", w.name());
    }
}

#[test]
fn python_multiprocessing_spawn() {
    let (plain, caps) = run_py("py-mp-spawn", "py_mp.py", &["spawn"]);
    assert!(plain.stdout.ends_with("[0, 0, 0]\n"), "{}", plain.stdout);
    one_per_process(&caps);
    let parent = main_capture(&caps);
    assert_eq!(parent.end().unwrap().0, EndKind::Exit);
    let others: Vec<_> = caps
        .iter()
        .filter(|c| c.header.pid != parent.header.pid)
        .collect();
    let workers: Vec<_> = others
        .iter()
        .filter(|c| c.header.argv.iter().any(|a| a == "--multiprocessing-fork"))
        .collect();
    assert_eq!(
        workers.len(),
        3,
        "three spawned workers, each exec'd: its own capture"
    );
    for c in &others {
        // Spawned processes are new programs: not forks of the parent's capture.
        assert_eq!(c.header.forked_from, None, "{}", c.name());
        assert_eq!(c.header.ppid, parent.header.pid, "{}", c.name());
        assert_eq!(c.end().unwrap().0, EndKind::Exit, "{}", c.name());
    }
    // Besides the workers, at most multiprocessing's resource tracker.
    assert!(
        others.len() <= 4,
        "{:?}",
        others.iter().map(|c| &c.header.argv).collect::<Vec<_>>()
    );
}

#[test]
fn python_subprocess() {
    let (plain, caps) = run_py("py-subprocess", "py_subprocess.py", &[]);
    assert_eq!(plain.stdout, "child said 5000000 rc 0\n");
    one_per_process(&caps);
    assert_eq!(caps.len(), 2);
    let parent = main_capture(&caps);
    assert_eq!(parent.end().unwrap().0, EndKind::Exit);
    let child = caps
        .iter()
        .find(|c| c.header.pid != parent.header.pid)
        .unwrap();
    assert_eq!(child.header.ppid, parent.header.pid);
    assert_eq!(child.header.forked_from, None, "exec'd: a fresh capture");
    assert!(child.header.argv.iter().any(|a| a == "-c"));
    assert_eq!(child.end().unwrap().0, EndKind::Exit);
}
