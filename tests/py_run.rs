//! `memshim run`: exit codes and signals pass through, signals are forwarded, and the captures
//! of the run (forked children included) and the command to report on them are printed.

use memshim_test_support::prelude::py;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use py::*;

fn run_in(dir: &std::path::Path, code: &str) -> std::process::Output {
    memshim()
        .current_dir(dir)
        .args(["run", "--seed", SEED, "--"])
        .arg(python())
        .args(["-c", code])
        .output()
        .unwrap()
}

#[test]
fn exit_code_passes_through_and_captures_are_listed_with_the_report_command() {
    let Some(_) = shim() else { return };
    let dir = scratch("run-exit");
    let o = run_in(
        &dir,
        "import os, sys\nif os.fork() == 0:\n    x = b'z' * (4 << 20)\n    os._exit(0)\nos.wait()\nsys.exit(7)",
    );
    assert_eq!(o.status.code(), Some(7));
    let err = String::from_utf8_lossy(&o.stderr);
    let caps = capture_paths(&dir);
    assert_eq!(caps.len(), 2, "parent and forked child: {caps:?}\n{err}");
    assert!(err.contains("2 captures written"), "{err}");
    for c in &caps {
        let name = c.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name), "{name} listed in {err}");
    }
    // Every capture matching the default template is from this run: the template is given.
    let cmd = err
        .lines()
        .find_map(|l| l.split_once("report with: "))
        .map(|(_, c)| c.to_string())
        .expect("the report command");
    assert!(cmd.ends_with(" report memshim.%p.msh"), "{cmd}");
    // And that command works, from the same directory.
    let words: Vec<&str> = cmd.split(' ').collect();
    let o = Command::new(words[0])
        .current_dir(&dir)
        .args(&words[1..])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 processes"));
}

#[test]
fn a_signal_that_kills_the_child_kills_memshim_run_too() {
    let Some(_) = shim() else { return };
    let dir = scratch("run-signal");
    let o = run_in(
        &dir,
        "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)",
    );
    assert_eq!(o.status.signal(), Some(libc::SIGTERM), "{:?}", o.status);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1 capture written"), "{err}");
}

#[test]
fn signals_sent_to_memshim_run_reach_the_child() {
    let Some(_) = shim() else { return };
    let dir = scratch("run-forward");
    let code = "import signal, sys, time\n\
                signal.signal(signal.SIGUSR1, lambda *a: sys.exit(42))\n\
                print('ready', flush=True)\n\
                time.sleep(60)\n\
                sys.exit(1)";
    let mut child = memshim()
        .current_dir(&dir)
        .args(["run", "--"])
        .arg(python())
        .args(["-c", code])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42), "the handler ran in the child");
}

#[test]
fn settings_reach_the_child() {
    let Some(_) = shim() else { return };
    let dir = scratch("run-settings");
    let tmpl = dir.join("sub.%p.msh");
    let o = memshim()
        .current_dir(&dir)
        .args(["run", "--rate", "all", "--python-allocators", "-o"])
        .arg(&tmpl)
        .arg("--")
        .arg(python())
        .args(["-c", "import os; print(os.environ['PYTHONMALLOC'], os.environ['LD_PRELOAD'].split(':')[0].endswith('libmemshim.so'))"])
        .env("LD_PRELOAD", "")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "malloc True");
    let caps = capture_paths(&dir);
    assert_eq!(caps.len(), 1);
    assert!(caps[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("sub."));
    let v = report(&caps[0], &[]);
    assert_eq!(v["sampling"]["mode"], "all");
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    let dir = scratch("run-errors");
    for (args, what) in [
        (vec!["run", "--rate", "lots", "--", "true"], "--rate"),
        (vec!["run", "--", "/nonexistent/program"], "cannot run"),
        (vec!["run"], "required"),
    ] {
        let o = memshim().current_dir(&dir).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("memshim: error: ") && err.lines().count() == 1,
            "{err}"
        );
        assert!(err.contains(what), "{err}");
    }
    // A memshim with no libmemshim.so beside it says where it looked.
    let lonely = dir.join("memshim");
    std::fs::copy(env!("CARGO_BIN_EXE_memshim"), &lonely).unwrap();
    let o = Command::new(&lonely)
        .env_remove("MEMSHIM_LIB")
        .args(["run", "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("libmemshim.so not found"), "{err}");
    assert!(err.contains("lib/memshim/libmemshim.so"), "{err}");
}
