//! Everyday programs under the real shim, at rates that sample a lot: shells that fork and
//! pipe, `timeout` with its signals, sort, gzip, find, a Python program whose threads allocate
//! while a signal handler allocates too. Each must behave exactly as without the shim (output,
//! exit status) and finish (a hang is killed after a minute and fails with backtraces), and
//! every capture it leaves must decode. (A process that allocates less than the rate before it
//! ends leaves no capture; one killed by SIGPIPE or SIGTERM, which the shim leaves alone, ends
//! without an End record but decodes up to its last write.)

use memshim_test_support::prelude::shim::*;

const RATES: [Option<&str>; 3] = [Some("4K"), Some("all"), None];

fn check(name: &str, prog: Program) {
    let dir = scratch(&format!("everyday-{name}"));
    let (plain, runs) = compare(&prog, &dir, &RATES);
    assert!(
        plain.code.is_some() || plain.signal.is_some(),
        "{name}: the plain run ended somehow"
    );
    // `compare` decoded every capture (it panics on one that does not decode).
    let ended = runs[1].iter().filter(|c| c.end().is_some()).count();
    assert!(
        ended > 0,
        "{name}: in all mode the shell's capture ends normally"
    );
}

fn sh(script: &str) -> Program {
    Program::new("/bin/sh").arg("-c").arg(script)
}

#[test]
fn shell_pipelines_that_fork() {
    check(
        "pipeline",
        sh("for i in $(seq 1 300); do echo $((i * 7919 % 1000)); done | sort -n | uniq -c | sort -rn | head -5"),
    );
}

#[test]
fn timeout_kills_its_child_on_time() {
    let dir = scratch("everyday-timeout");
    let prog = Program::new("timeout").arg("0.5").arg("sleep").arg("5");
    let (plain, runs) = compare(&prog, &dir, &RATES);
    assert_eq!(
        plain.code,
        Some(124),
        "timeout's own status for a killed child"
    );
    // In all mode: timeout's own capture (ended) and sleep's (killed by SIGTERM: no End); the
    // child between fork and exec allocates only inside execvp, which starts no capture (one
    // started there used to be cut by the exec, leaving an empty file). All of them decode.
    let all = &runs[1];
    let exes: Vec<_> = all.iter().map(|c| c.header.exe.as_str()).collect();
    assert_eq!(exes.len(), 2, "{exes:?}");
    assert!(exes.iter().any(|e| e.ends_with("/timeout")), "{exes:?}");
    assert!(exes.iter().any(|e| e.ends_with("/sleep")), "{exes:?}");
    let timeout = all
        .iter()
        .find(|c| c.header.exe.ends_with("/timeout"))
        .unwrap();
    assert_eq!(timeout.end().unwrap().0, memshim_format::EndKind::Exit);
}

#[test]
fn compress_and_sort_data() {
    check(
        "gzip",
        sh("seq 1 200000 | gzip -c | gunzip -c | sort -r | md5sum"),
    );
}

#[test]
fn walk_a_directory_tree() {
    check(
        "find",
        sh("find /usr/share/doc -type f 2>/dev/null | sort | head -50 | wc -l"),
    );
}

#[test]
fn python_threads_with_an_allocating_signal_handler() {
    let script = r#"
import signal, threading
hits = []
def on_alarm(sig, frame):
    hits.append(bytearray(4096))   # allocates inside the handler, between any two bytecodes
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
def work(n):
    for i in range(20000):
        d = {str(j): [j] * 8 for j in range(20)}
        del d
threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
for t in threads: t.start()
for t in threads: t.join()
signal.setitimer(signal.ITIMER_REAL, 0, 0)
print("done", len(hits) > 0)
"#;
    check(
        "py-signals",
        Program::new(python_resolved()).arg("-c").arg(script),
    );
}

#[test]
fn cxx_exceptions_through_deep_stacks_in_two_threads() {
    // The program's own unwinding (C++ throw, through libgcc on its stack) while the shim
    // samples, exception objects included, and unwinds for itself.
    let dir = scratch("everyday-cxx");
    let bin = build_c(&dir, "cxx_exceptions.cpp", &["-lstdc++"]);
    let (plain, _) = compare(&Program::new(&bin), &dir, &RATES);
    assert_eq!(plain.stdout, "caught 5442800 5442800\n");
}
