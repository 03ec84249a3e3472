//! Greenlets (gevent's base: gunicorn's gevent workers, many Python services) under the real
//! shim. Each greenlet's frames are copied in and out of the thread's C stack as it switches, and
//! the interpreter's frame chain is swapped with them: the native walk and the Python walk of a
//! sample taken inside a greenlet must read only the greenlet that runs.

use memshim_test_support::prelude::py;
use memshim_test_support::prelude::shim;

use memshim_format::Record;
use py::{first_python, fixture, python_names, report_of, within, MIB};
use shim::{assert_same, captures, only, python_resolved, scratch, Program};

/// True when the machine's Python has greenlet (scripts/provision.sh installs it from PyPI);
/// when not, the test is skipped (failed under CI), saying so in one line.
fn have_greenlet() -> bool {
    let ok = std::process::Command::new(python_resolved())
        .args(["-c", "import greenlet"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        memshim_test_pythons::Missing::new(
            format!("the greenlet package for {}", python_resolved().display()),
            "scripts/provision.sh installs it, or pip install greenlet",
        )
        .skip();
    }
    ok
}

/// Every allocation walked both ways (check mode): the compact-rule unwinder and libgcc agree
/// on every stack taken inside a greenlet, and the program runs as without the shim.
#[test]
fn greenlet_stacks_unwind_alike_both_ways_and_run_as_without_the_shim() {
    if !have_greenlet() {
        return;
    }
    let dir = scratch("greenlet-check");
    let script = fixture("greenlets.py");
    let plain = Program::new(python_resolved())
        .arg(script.to_str().unwrap())
        .run_plain(&dir);
    assert_eq!(plain.stdout, "done\n", "{plain:?}");
    let prog = Program::new(python_resolved()).arg(script.to_str().unwrap());
    let (o, _) = prog.run_shim(&dir, "all", Some("all"));
    assert_same(&plain, &o, "greenlets at rate all");
    let (o, caps) =
        prog.arg("check")
            .env("MEMSHIM_UNWIND", "check")
            .run_shim(&dir, "check", Some("all"));
    assert!(o.success(), "{o:?}");
    assert_eq!(o.stdout, "mismatches 0\ndone\n", "fast and libgcc disagree");
    let caps = captures(&caps);
    let cap = only(&caps);
    cap.assert_complete();
    let samples = cap.allocs().count();
    assert!(samples > 4_000, "{samples} samples compared");
    assert!(
        cap.records
            .iter()
            .any(|r| matches!(r, Record::PyCode(c) if c.name == "grow")),
        "Python frames of the greenlets' function"
    );
}

/// What 16 greenlets keep is named by the function that allocates it, at its line, with the
/// greenlet's own callers (its recursion, then the function the greenlet runs) and nothing of
/// the hub's or the other greenlets' frames. Section: held at exit (`kept` is a module global,
/// freed by finalization).
#[test]
fn a_leak_inside_greenlets_is_named_by_the_greenlets_frames() {
    if !have_greenlet() {
        return;
    }
    let Some(v) = report_of("greenlets.py", &[], &[], &[]) else {
        return;
    };
    let top = &v["held_at_exit"][0];
    let py = first_python(top).expect("the leak has Python frames");
    assert_eq!(py["function"], "grow", "{top:#}");
    assert_eq!(py["line"], 16, "the line of the append");
    let names = python_names(top);
    let callers: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "grow")
        .collect();
    assert_eq!(callers, ["worker"], "{names:?}");
    let kept: f64 = v["held_at_exit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| first_python(s).is_some_and(|f| f["function"] == "grow"))
        .map(|s| s["bytes_est"].as_f64().unwrap())
        .sum();
    assert!(
        within(kept, 40.0 * MIB, 0.25),
        "kept by grow: {kept} vs 40 MiB"
    );
}
