//! Bad settings and an unwritable output: one `memshim:` warning line on stderr, and the program
//! runs exactly as without the shim otherwise. A capture that stops mid-run (the size bound, a
//! failed write) says nothing on the program's stderr: the capture itself says why.

use memshim_test_support::prelude::shim::*;

/// Runs big_alloc.c (allocates 80 MiB: always sampled) plain and under the shim with `env`;
/// asserts one warning line mentioning `needle`, and identical stdout, exit and other stderr.
fn one_warning(name: &str, env: &[(&str, &str)], needle: &str) -> std::path::PathBuf {
    one_warning_in(name, "big_alloc.c", None, env, needle)
}

/// As [`one_warning`], with C fixture `src` at `rate`.
fn one_warning_in(
    name: &str,
    src: &str,
    rate: Option<&str>,
    env: &[(&str, &str)],
    needle: &str,
) -> std::path::PathBuf {
    warnings_in(name, src, rate, env, Some(needle))
}

/// Runs C fixture `src` at `rate` with `env`, plain and under the shim: identical stdout, exit
/// and stderr, not one `memshim:` line.
fn silent_in(
    name: &str,
    src: &str,
    rate: Option<&str>,
    env: &[(&str, &str)],
) -> std::path::PathBuf {
    warnings_in(name, src, rate, env, None)
}

/// The runs of [`one_warning_in`] and [`silent_in`]: one warning mentioning `needle`, or none.
fn warnings_in(
    name: &str,
    src: &str,
    rate: Option<&str>,
    env: &[(&str, &str)],
    needle: Option<&str>,
) -> std::path::PathBuf {
    let dir = scratch(name);
    let bin = build_c(&dir, src, &[]);
    let mut prog = Program::new(&bin);
    for (k, v) in env {
        prog = prog.env(k, *v);
    }
    let plain = Program::new(&bin).run_plain(&dir);
    let (o, caps) = prog.run_shim(&dir, "shim", rate);
    let w = warnings(&o.stderr);
    let Some(needle) = needle else {
        assert!(w.is_empty(), "{name}: no warning line, got:\n{}", o.stderr);
        assert_same(&plain, &o, name);
        return caps;
    };
    assert_eq!(
        w.len(),
        1,
        "{name}: exactly one warning line, got:\n{}",
        o.stderr
    );
    assert!(
        w[0].contains(needle),
        "{name}: {:?} does not mention {needle}",
        w[0]
    );
    let rest: String = o
        .stderr
        .lines()
        .filter(|l| !l.starts_with("memshim:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let o = Outcome { stderr: rest, ..o };
    assert_same(&plain, &o, name);
    caps
}

#[test]
fn bad_rate_warns_once_and_uses_the_default() {
    for bad in ["banana", "0", "12Q", "-5", "99999999999999999999G"] {
        let caps = one_warning("bad-rate", &[("MEMSHIM_RATE", bad)], "MEMSHIM_RATE");
        let caps = captures(&caps);
        let cap = only(&caps);
        assert_eq!(cap.rate(), 512 << 10, "{bad}: falls back to 512K");
        assert!(cap.allocs().count() > 0);
    }
}

#[test]
fn bad_depth_and_seed_warn_once() {
    let caps = one_warning(
        "bad-depth",
        &[("MEMSHIM_STACK_DEPTH", "0")],
        "MEMSHIM_STACK_DEPTH",
    );
    assert_eq!(only(&captures(&caps)).header.stack_depth, 128);
    let caps = one_warning(
        "bad-depth2",
        &[("MEMSHIM_STACK_DEPTH", "257")],
        "MEMSHIM_STACK_DEPTH",
    );
    assert_eq!(only(&captures(&caps)).header.stack_depth, 128);
    let caps = one_warning("bad-seed", &[("MEMSHIM_SEED", "abc")], "MEMSHIM_SEED");
    assert_eq!(only(&captures(&caps)).header.seed, None);
    for bad in ["0", "lots"] {
        let caps = one_warning(
            "bad-stack-memory",
            &[("MEMSHIM_STACK_MEMORY", bad)],
            "MEMSHIM_STACK_MEMORY",
        );
        assert!(
            only(&captures(&caps)).allocs().count() > 0,
            "{bad}: still records"
        );
    }
}

#[test]
fn good_settings_are_taken_silently() {
    let dir = scratch("good-settings");
    let bin = build_c(&dir, "big_alloc.c", &[]);
    let plain = Program::new(&bin).run_plain(&dir);
    for (rate, interval) in [
        ("2M", 2u64 << 20),
        ("64k", 64 << 10),
        ("4096", 4096),
        ("ALL", 0),
    ] {
        let prog = Program::new(&bin).env("MEMSHIM_STACK_DEPTH", "7");
        let (o, caps) = prog.run_shim(&dir, rate, Some(rate));
        assert_same(&plain, &o, rate);
        let caps = captures(&caps);
        let cap = only(&caps);
        assert_eq!(cap.rate(), interval, "{rate}");
        assert_eq!(cap.header.stack_depth, 7);
        assert_eq!(cap.header.seed, Some(SEED.parse().unwrap()));
        assert!(cap.stacks().values().all(|f| !f.is_empty() && f.len() <= 7));
    }
}

#[test]
fn unwritable_output_warns_once_and_runs_untraced() {
    let dir = scratch("unwritable");
    // A path under a regular file: cannot be created, even by root.
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("memshim.%p.msh");
    one_warning(
        "unwritable",
        &[("MEMSHIM_OUTPUT", out.to_str().unwrap())],
        "not-a-dir",
    );
    // In a missing directory too.
    let out = dir.join("missing/dir/memshim.%p.msh");
    one_warning(
        "unwritable2",
        &[("MEMSHIM_OUTPUT", out.to_str().unwrap())],
        "missing",
    );
}

/// A capture that would pass the process's own file-size limit (64 KiB here, with SIGXFSZ at
/// its default action, which killed the process over our file before) stops below it, as at
/// MEMSHIM_MAX_SIZE: the file decodes whole, its last record says why, and the program behaves
/// as without the shim, its stderr included.
#[test]
fn a_capture_that_stops_being_writable_stops_recording_silently() {
    let caps = silent_in("fsize", "fsize_limit.c", Some("all"), &[]);
    let caps = captures(&caps);
    assert_eq!(caps.len(), 1);
    let cap = &caps[0];
    assert!(!cap.truncated, "whole blocks only, below the limit");
    assert!(
        cap.end().is_none(),
        "no End: recording stopped at the limit"
    );
    let why = cap
        .stop_note()
        .unwrap_or_else(|| panic!("last record {:?} is not a stop note", cap.records.last()));
    assert!(why.contains("RLIMIT_FSIZE"), "{why}");
    cap.assert_stacks_defined();
    assert!(cap.allocs().count() > 1000, "it recorded up to the limit");
    assert!(std::fs::metadata(&cap.path).unwrap().len() <= 64 << 10);
}

/// MEMSHIM_MAX_SIZE bounds the file: the block that would pass it is not written, recording
/// stops (silently: the capture's last record says why), and the capture decodes whole up to
/// there. A bad value warns.
#[test]
fn max_size_bounds_the_capture_and_the_capture_says_so() {
    let caps = silent_in(
        "max-size",
        "pairs.c",
        Some("all"),
        &[("MEMSHIM_MAX_SIZE", "1M")],
    );
    let caps = captures(&caps);
    assert_eq!(caps.len(), 1);
    let cap = &caps[0];
    assert!(!cap.truncated, "whole blocks only");
    assert!(
        cap.end().is_none(),
        "no End: recording stopped at the bound"
    );
    // Its last record says why, so readers do not take the file for cut short.
    let why = cap
        .stop_note()
        .unwrap_or_else(|| panic!("last record {:?} is not a stop note", cap.records.last()));
    assert!(why.contains("MEMSHIM_MAX_SIZE"), "{why}");
    assert!(cap.allocs().count() > 1000, "it recorded up to the bound");
    // All of pairs.c's 800,000 records take some 3.5 MB.
    assert!(std::fs::metadata(&cap.path).unwrap().len() <= 1 << 20);
    cap.assert_stacks_defined();
    let caps = one_warning(
        "bad-max-size",
        &[("MEMSHIM_MAX_SIZE", "huge")],
        "MEMSHIM_MAX_SIZE",
    );
    only(&captures(&caps));
}

/// A parent whose capture stopped at MEMSHIM_MAX_SIZE still has its forked children recorded,
/// each into its own file (the bound is per file).
#[test]
fn a_child_forked_after_the_bound_records_into_its_own_file() {
    let caps = silent_in(
        "max-size-fork",
        "stop_then_fork.c",
        Some("all"),
        &[("MEMSHIM_MAX_SIZE", "1M")],
    );
    let caps = captures(&caps);
    assert_eq!(caps.len(), 2, "the parent's capture and the child's");
    let child = caps
        .iter()
        .find(|c| c.header.forked_from.is_some())
        .expect("the child's capture");
    child.assert_complete();
    let small = child
        .allocs()
        .filter(|a| !a.inherited && (100..1100).contains(&a.size))
        .count();
    assert!(small >= 1000, "the child's 1,000 blocks: {small}");
}

/// An existing file is never overwritten: the capture goes to NAME.1.msh.
#[test]
fn existing_capture_is_not_overwritten() {
    let dir = scratch("exists");
    let bin = build_c(&dir, "big_alloc.c", &[]);
    let target = dir.join("fixed.msh");
    std::fs::write(&target, "precious").unwrap();
    let prog = Program::new(&bin).env("MEMSHIM_OUTPUT", target.to_str().unwrap());
    let (o, _) = prog.run_shim(&dir, "shim", None);
    assert!(o.success());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    let cap = decode(&dir.join("fixed.1.msh"));
    cap.assert_complete();
}
