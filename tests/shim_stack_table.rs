//! The writer's table of written stacks is bounded (`MEMSHIM_STACK_MEMORY`): past the bound it
//! is emptied and stacks met again are written again under new ids. Checked on a real process
//! under the real shim, then through `memshim report`, which must merge the rewritten stacks.

use memshim_test_support::prelude::shim;

use std::process::Command;

use memshim_format::Record;
use serde_json::Value;
use shim::*;

/// 4,096 distinct leaf stacks, each met twice (many_stacks.c).
const STACKS: usize = 4096;

fn report(cap: &Capture) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_memshim"))
        .args(["report", "--format", "json", "--top", "5"])
        .arg(&cap.path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn stack_records(cap: &Capture) -> usize {
    cap.records
        .iter()
        .filter(|r| matches!(r, Record::Stack { .. }))
        .count()
}

#[test]
fn a_small_stack_table_rewrites_stacks_and_the_report_merges_them() {
    let dir = scratch("stack-table");
    let bin = build_c(&dir, "many_stacks.c", &["-fno-optimize-sibling-calls"]);
    let plain = Program::new(&bin).run_plain(&dir);
    assert!(plain.success());
    let mut runs = vec![];
    for (tag, memory) in [("small", Some("64K")), ("default", None)] {
        let mut prog = Program::new(&bin);
        if let Some(m) = memory {
            prog = prog.env("MEMSHIM_STACK_MEMORY", m);
        }
        let (o, caps) = prog.run_shim(&dir, tag, Some("all"));
        assert_same(&plain, &o, tag);
        let caps = captures(&caps);
        let cap = only(&caps);
        cap.assert_stacks_defined();
        runs.push((stack_records(cap), report(cap)));
    }
    let (small, default) = (&runs[0], &runs[1]);
    // The default table keeps every stack: each written once (the leaves, and a few stacks of
    // the C runtime and stdio).
    assert!(
        (STACKS..STACKS + 50).contains(&default.0),
        "default: {} stacks",
        default.0
    );
    // 64 KiB holds some 350 of these stacks: the second pass meets every leaf stack after the
    // table was emptied, so each is written at least twice.
    assert!(
        small.0 >= 2 * STACKS,
        "64K: only {} stacks written",
        small.0
    );
    // The report cannot tell the difference: same sites, same bytes, exact (all mode).
    for key in [
        "distinct_stacks",
        "live_at_end_bytes_est",
        "allocations_est",
    ] {
        assert_eq!(small.1["totals"][key], default.1["totals"][key], "{key}");
    }
    assert_eq!(
        small.1["totals"]["distinct_stacks"].as_u64(),
        default.1["totals"]["distinct_stacks"].as_u64()
    );
    let top = |v: &Value| -> Vec<(u64, u64)> {
        v["leaks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["bytes_est"].as_u64().unwrap(),
                    s["count_est"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // Each leaf stack leaked 2 x 100 bytes (besides stdout's 4 KiB buffer, from printf).
    let leaves: Vec<_> = top(&small.1)
        .into_iter()
        .filter(|&(b, _)| b != 4096)
        .collect();
    assert!(
        leaves.len() >= 4 && leaves.iter().all(|&l| l == (200, 2)),
        "{:?}",
        top(&small.1)
    );
    assert_eq!(top(&small.1), top(&default.1));
}
