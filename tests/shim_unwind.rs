//! The fast unwinder (cached compact CFI rules) against libgcc's `_Unwind_Backtrace`: the same
//! program, run twice with address randomisation off and every allocation recorded, must give
//! exactly the same native stack for every allocation with either unwinder.

use memshim_test_support::prelude::shim;

use std::path::Path;

use memshim_format::Record;
use shim::*;

/// The size and native stack of each allocation, in the order they happened.
fn alloc_stacks(cap: &Capture) -> Vec<(u64, Vec<u64>)> {
    let stacks = cap.stacks();
    cap.allocs()
        .map(|a| (a.size, stacks[&a.stack].clone()))
        .collect()
}

/// Runs `exe args` under the shim at `all`, without ASLR, with `MEMSHIM_UNWIND=unwinder`.
fn run(dir: &Path, unwinder: &str, exe: &Path, args: &[&str]) -> (Outcome, Capture) {
    let mut p = Program::new("setarch")
        .arg("x86_64")
        .arg("-R")
        .arg(exe.to_str().unwrap());
    for a in args {
        p = p.arg(*a);
    }
    // Values of one length, so the environment (which Python copies) is the same size.
    let p = p
        .env("MEMSHIM_UNWIND", format!("{unwinder:6}"))
        .env("PYTHONHASHSEED", "0");
    let (out, caps) = p.run_shim(dir, unwinder, Some("all"));
    assert!(out.success(), "{unwinder}: {out:?}");
    // setarch runs under the shim too, then execs the program (a second capture, same pid).
    let caps = captures(&caps);
    let mut ours = caps
        .into_iter()
        .filter(|c| !c.header.exe.ends_with("/setarch"));
    let cap = ours.next().expect("a capture of the program");
    assert!(
        ours.next().is_none(),
        "{unwinder}: one capture of the program"
    );
    cap.assert_complete();
    (out, cap)
}

fn fallbacks(out: &Outcome) -> i64 {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("fallbacks "))
        .unwrap();
    line[10..].trim().parse().unwrap()
}

#[test]
fn fast_unwinder_gives_libgcc_stacks_on_c_shapes() {
    let dir = scratch("unwind-c");
    let bin = build_c(
        &dir,
        "unwind_shapes.c",
        &["-O2", "-fomit-frame-pointer", "-ldl"],
    );
    let (fast_out, fast) = run(&dir, "fast", &bin, &[]);
    let (gcc_out, gcc) = run(&dir, "libgcc", &bin, &[]);
    assert_eq!(
        fallbacks(&fast_out),
        0,
        "every shape here fits the compact rules"
    );
    assert_eq!(
        fallbacks(&gcc_out),
        0,
        "libgcc mode never counts a fallback"
    );
    let (f, g) = (alloc_stacks(&fast), alloc_stacks(&gcc));
    assert!(f.len() > 300 * 2 + 200, "{} allocations recorded", f.len());
    let deepest = f.iter().map(|(_, s)| s.len()).max().unwrap();
    assert!(
        deepest > 60,
        "the 59-deep recursion is walked: deepest {deepest}"
    );
    for (i, (a, b)) in f.iter().zip(&g).enumerate() {
        assert_eq!(a, b, "allocation {i}: fast and libgcc stacks differ");
    }
    assert_eq!(f.len(), g.len());
}

#[test]
fn frames_beyond_the_compact_rules_fall_back_to_libgcc() {
    let dir = scratch("unwind-big");
    let bin = build_c(
        &dir,
        "unwind_shapes.c",
        &["-O2", "-fomit-frame-pointer", "-ldl"],
    );
    let (fast_out, fast) = run(&dir, "fast", &bin, &["big"]);
    let (_, gcc) = run(&dir, "libgcc", &bin, &["big"]);
    // 300 allocations sit under the 16 KiB frame (plus the frees' own walks are not sampled).
    assert!(
        fallbacks(&fast_out) >= 300,
        "fallbacks: {}",
        fallbacks(&fast_out)
    );
    assert_eq!(alloc_stacks(&fast), alloc_stacks(&gcc));
}

#[test]
fn fast_unwinder_agrees_with_libgcc_on_every_python_sample() {
    // Check mode walks each sample both ways in the process itself, so the interpreter (whose
    // allocations vary a little from run to run) is compared sample by sample.
    let dir = scratch("unwind-py");
    let script = "import ctypes, json, re, threading\n\
                  def work():\n    \
                      rows = [{'k': i, 'v': str(i) * 10} for i in range(2000)]\n    \
                      back = json.loads(json.dumps(rows))\n    \
                      return len(back), len(re.findall(r'[0-9]+', json.dumps(back)))\n\
                  t = threading.Thread(target=work); t.start(); t.join()\n\
                  print(work())\n\
                  shim = ctypes.CDLL(None)\n\
                  shim.memshim_debug_unwind_mismatches.restype = ctypes.c_uint64\n\
                  print('mismatches', shim.memshim_debug_unwind_mismatches())\n";
    let (out, caps) = Program::new(python_resolved())
        .arg("-c")
        .arg(script)
        .env("MEMSHIM_UNWIND", "check")
        .run_shim(&dir, "check", Some("all"));
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.starts_with("(2000, 4000)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("mismatches 0\n"),
        "fast and libgcc disagree: {}",
        out.stdout
    );
    let caps = captures(&caps);
    let cap = &caps[0];
    let samples = cap.allocs().count();
    assert!(samples > 10_000, "{samples} samples compared");
    let with_python = cap
        .records
        .iter()
        .filter(|r| matches!(r, Record::Stack { python, .. } if !python.is_empty()))
        .count();
    assert!(
        with_python > 0,
        "Python frames ride along with fast native stacks"
    );
}

#[test]
fn fast_unwinder_agrees_with_libgcc_through_cxx_exceptions() {
    // Every allocation of a C++ program that throws through deep stacks in two threads is
    // walked both ways (check mode); a probe preloaded after the shim prints the counters.
    let dir = scratch("unwind-cxx");
    let bin = build_c(&dir, "cxx_exceptions.cpp", &["-O2", "-lstdc++"]);
    let probe = build_c(&dir, "unwind_probe.c", &["-shared", "-fPIC", "-ldl"]);
    let mut cmd = std::process::Command::new(&bin);
    cmd.env(
        "LD_PRELOAD",
        format!("{} {}", shim_so().display(), probe.display()),
    )
    .env("MEMSHIM_RATE", "all")
    .env("MEMSHIM_UNWIND", "check")
    .env("MEMSHIM_OUTPUT", dir.join("memshim.%p.msh"));
    let out = shim::run(cmd, &dir, "cxx-check", TIMEOUT);
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "caught 5442800 5442800\n");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("mismatches "))
        .unwrap_or_else(|| panic!("no counters: {}", out.stderr));
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(v[0], 0, "fast and libgcc disagree: {line}");
    assert!(v[1] < 100, "almost every walk is the fast one: {line}");
}
