//! `memshim stats` on synthetic captures: counts, drops, duration, clean end or truncation.

use memshim_format::{Drops, EndKind, Record};
use memshim_test_support::prelude::cli::*;

fn sample_capture() -> SyntheticCapture {
    let mut c = SyntheticCapture::new(&header(0));
    c.push(Record::Modules(vec![fake_module(
        "/opt/app/libfoo.so",
        0x7000_0000,
    )]));
    c.push(stack(1, &[0x7000_1000, 0x7000_2000]));
    c.push(alloc(1_000, 0x1000, 100, 1));
    c.push(alloc(2_000, 0x2000, 200, 1));
    c.push(free(3_000, 0x1000));
    c.push(tick(100_000_000, 1 << 20, 300));
    c.push(Record::End {
        t: 2_500_000_000,
        how: EndKind::Exit,
        dropped: Drops {
            ring_full: 3,
            region_full: 1,
        },
    });
    c
}

#[test]
fn stats_counts_records_by_kind_and_reports_clean_end() {
    let dir = scratch("stats-json");
    let p = dir.join("a.msh");
    sample_capture().write(&p);
    let o = run(&["stats", "--json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "a complete capture loads without a warning");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["records"], 7);
    assert_eq!(v["by_kind"]["alloc"], 2);
    assert_eq!(v["by_kind"]["free"], 1);
    assert_eq!(v["by_kind"]["end"], 1);
    assert_eq!(v["dropped"]["total"], 4);
    assert_eq!(v["duration_s"], 2.5);
    assert_eq!(v["end"], "exit");
    assert_eq!(v["truncated"], false);
    assert_eq!(v["header"]["pid"], 4242);
    assert_eq!(v["header"]["rate"], 0);
}

#[test]
fn stats_text_names_the_process_and_the_end() {
    let dir = scratch("stats-text");
    let p = dir.join("a.msh");
    sample_capture().write(&p);
    let o = run(&["stats", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("pid 4242"), "{out}");
    assert!(out.contains("all (every allocation recorded)"), "{out}");
    assert!(
        out.contains("dropped    4 (ring full 3, region full 1)"),
        "{out}"
    );
    assert!(out.contains("end        exit"), "{out}");
}

#[test]
fn stats_on_a_capture_without_end_warns_once_and_says_truncated() {
    let dir = scratch("stats-trunc");
    let p = dir.join("a.msh");
    let mut c = SyntheticCapture::new(&header(0));
    c.per_chunk = 3;
    c.push(stack(1, &[0x7000_1000]));
    for i in 0..6 {
        c.push(alloc(1_000 + i, 0x1000 + i * 64, 100, 1));
    }
    c.end(2_000);
    // Cut the file inside its last chunk (the one holding the End record); the chunks before it
    // load (a capture cut inside its first chunk has nothing readable: tests/cli_first_run.rs).
    let cut = c.bytes.len() - 3;
    std::fs::write(&p, &c.bytes[..cut]).unwrap();
    let o = run(&["stats", "--json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("memshim: warning: ") && err.contains("truncated"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["end"], "truncated");
}

/// A capture the shim stopped at MEMSHIM_MAX_SIZE ends with a record saying so, not with End:
/// whole, not truncated, and stats and report say why.
#[test]
fn a_capture_stopped_by_the_shim_says_why_instead_of_truncated() {
    let dir = scratch("stats-stopped");
    let p = dir.join("a.msh");
    let mut c = SyntheticCapture::new(&header(0));
    c.push(stack(1, &[0x7000_1000]));
    c.push(alloc(1_000, 0x1000, 100, 1));
    c.push(Record::Extension {
        kind: memshim_format::EXTENSION_STOPPED,
        data: b"reached MEMSHIM_MAX_SIZE".to_vec(),
    });
    c.write(&p);
    let o = run(&["stats", "--json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("memshim: note: ") && err.contains("reached MEMSHIM_MAX_SIZE"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["truncated"], false);
    assert_eq!(v["end"], "stopped early (reached MEMSHIM_MAX_SIZE)");
    let o = run(&["report", "--format", "json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        v["process"]["end"],
        "stopped early (reached MEMSHIM_MAX_SIZE)"
    );
}
