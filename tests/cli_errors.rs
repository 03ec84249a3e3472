//! Bad input gets one `memshim: error:` line and exit code 2, never a panic; a truncated capture
//! loads with one warning line.

use memshim_format::Record;
use memshim_test_support::prelude::cli::*;

fn good_capture() -> SyntheticCapture {
    let mut c = SyntheticCapture::new(&header(0));
    c.per_chunk = 2;
    c.push(Record::Modules(vec![fake_module(
        "/opt/libx.so",
        0x7000_0000,
    )]));
    c.push(stack(1, &[0x7000_0100]));
    for i in 0..10 {
        c.push(alloc(i * 1000, 0x1000 + i * 64, 64, 1));
    }
    c.end(20_000);
    c
}

/// Runs each subcommand that reads captures on `path`; each must fail with exactly one line.
fn assert_one_line_error(path: &std::path::Path, expect: &str) {
    for cmd in [&["stats"][..], &["report"], &["report", "--format", "json"]] {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push(path.to_str().unwrap());
        let o = run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line only: {err}");
        assert!(err.starts_with("memshim: error: "), "{err}");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(stdout(&o), "", "nothing on stdout on error");
    }
}

#[test]
fn empty_file() {
    let d = scratch("err-empty");
    let p = d.join("empty.msh");
    std::fs::write(&p, b"").unwrap();
    assert_one_line_error(&p, "empty file");
}

#[test]
fn foreign_file() {
    let d = scratch("err-foreign");
    let p = d.join("foreign.msh");
    std::fs::write(&p, b"\x7fELF this is not a capture at all, just some bytes").unwrap();
    assert_one_line_error(&p, "not a memshim capture");
}

#[test]
fn newer_version() {
    let d = scratch("err-newer");
    let p = d.join("newer.msh");
    let mut bytes = good_capture().bytes.clone();
    bytes[8..10].copy_from_slice(&99u16.to_le_bytes());
    std::fs::write(&p, bytes).unwrap();
    assert_one_line_error(&p, "version 99 is newer");
}

#[test]
fn corrupt_chunk() {
    let d = scratch("err-corrupt");
    let p = d.join("corrupt.msh");
    let mut bytes = good_capture().bytes.clone();
    // The last byte is in the last chunk's payload, whatever its records' encoding.
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    assert_one_line_error(&p, "corrupt capture");
}

#[test]
fn header_cut_short() {
    let d = scratch("err-short");
    let p = d.join("short.msh");
    std::fs::write(&p, &good_capture().bytes[..20]).unwrap();
    assert_one_line_error(&p, "truncated before the end of its header");
}

#[test]
fn missing_file() {
    let d = scratch("err-missing");
    assert_one_line_error(&d.join("nope.msh"), "nope.msh: No such file");
}

#[test]
fn bad_flags_and_unknown_commands() {
    for args in [
        &["report", "--top", "many", "x.msh"][..],
        &["frobnicate"],
        &["report", "--format", "xml", "x"],
    ] {
        let o = run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("memshim: error: "), "{err}");
    }
}

#[test]
fn help_explains_each_command() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    for cmd in ["stats", "report", "flamegraph", "timeline", "pprof", "html"] {
        assert!(out.contains(cmd), "--help lists {cmd}: {out}");
    }
}

#[test]
fn truncated_capture_loads_with_one_warning() {
    let d = scratch("err-trunc");
    let p = d.join("trunc.msh");
    let c = good_capture();
    // Cut inside the last chunk: the End record is lost, the earlier chunks load.
    std::fs::write(&p, &c.bytes[..c.bytes.len() - 5]).unwrap();
    let o = run(&["report", "--format", "json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("memshim: warning: ") && err.contains("truncated"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["process"]["end"], "truncated");
    assert!(v["totals"]["allocations_est"].as_u64().unwrap() >= 8);
}

#[test]
fn capture_cut_between_chunks_warns_too() {
    let d = scratch("err-noend");
    let p = d.join("noend.msh");
    let mut c = SyntheticCapture::new(&header(0));
    c.push(stack(1, &[0x10]));
    c.push(alloc(1, 0x1000, 64, 1));
    c.write(&p);
    let o = run(&["report", p.to_str().unwrap()]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("has no end record"), "{err}");
}
