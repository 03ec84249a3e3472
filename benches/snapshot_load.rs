//! `memshim report` on snapshot captures (`MEMSHIM_MODE=snapshots`) of a long-running service:
//! 300 and 600 snapshots (600 = ten hours at the default 60 s) of 5,000 distinct stacks, 2,000
//! of them listed in each snapshot, one leaking. Issue 14's target: under 1 s for 600; the
//! 600/300 ratio shows loading is linear in snapshots.
//!
//! `cargo bench -p memshim --bench snapshot_load`. Not a timed test: it prints numbers for
//! BENCHMARKS.md.

use std::io::Write;
use std::time::Instant;

use memshim_format::snapshot::{
    Cause, SiteCounters, Snapshot, EXTRA_CAPTURE, EXTRA_INTERVAL_NS, EXTRA_PART, EXTRA_SERIES,
};
use memshim_format::{encode_header, ChunkBuilder, Header, Module, Record};

const STACKS: u64 = 5_000;
const ACTIVE: u64 = 2_000;
const INTERVAL_NS: u64 = 60_000_000_000;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut secs = vec![];
    for snapshots in [300u64, 600] {
        let path = dir.join(format!("snapshot_load_{snapshots}.msh"));
        write_capture(&path, snapshots);
        let size = std::fs::metadata(&path).unwrap().len();
        let start = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_memshim"))
            .args(["report", "--format", "json"])
            .arg(&path)
            .output()
            .expect("memshim runs");
        let s = start.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = String::from_utf8_lossy(&out.stdout);
        assert!(v.contains("\"growing_sites\": 1"), "the leak is found");
        assert!(
            v.contains(&format!("\"snapshots\": {snapshots},")),
            "every snapshot is read"
        );
        println!(
            "memshim report --format json, {snapshots} snapshots ({:.1} MiB): {s:.3} s",
            size as f64 / 1048576.0
        );
        secs.push(s);
    }
    println!(
        "600 / 300 snapshots: {:.2}x the time (2.00 = linear)",
        secs[1] / secs[0]
    );
}

/// A series' one file: the stacks, then `snapshots` snapshots a minute apart, each listing
/// `ACTIVE` stacks (a rotating window of them), the first complete; stack 0 leaks 1 MiB a
/// snapshot.
fn write_capture(path: &std::path::Path, snapshots: u64) {
    let h = Header {
        pid: 1,
        exe: "/usr/bin/bench".into(),
        argv: vec!["bench".into()],
        rate: 512 * 1024,
        page_size: 4096,
        stack_depth: 128,
        shim_version: "bench".into(),
        extra: vec![
            (EXTRA_CAPTURE.into(), "snapshots".into()),
            (EXTRA_SERIES.into(), format!("bench-{snapshots}")),
            (EXTRA_PART.into(), "1".into()),
            (EXTRA_INTERVAL_NS.into(), INTERVAL_NS.to_string()),
        ],
        ..Default::default()
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&encode_header(&h)).unwrap();
    let mut chunk = ChunkBuilder::new();
    let mut buf = Vec::new();
    let mut flush = |chunk: &mut ChunkBuilder, f: &mut std::io::BufWriter<std::fs::File>| {
        buf.clear();
        chunk.finish_into(&mut buf);
        f.write_all(&buf).unwrap();
    };
    let base = 0x5555_0000_0000u64;
    chunk.push(&Record::Modules(vec![Module {
        path: "/nonexistent/bench".into(),
        base,
        segments: vec![(0, 1 << 24)],
        build_id: vec![1],
    }]));
    for stack in 0..STACKS {
        let frames = (0..24)
            .map(|k| base + 0x1000 + (stack * 7 + k * 131) % 0xf0_0000)
            .collect();
        chunk.push(&Record::Stack {
            id: stack,
            frames,
            python: vec![],
        });
    }
    flush(&mut chunk, &mut f);
    for k in 0..snapshots {
        let sites: Vec<SiteCounters> = std::iter::once(0)
            .chain((1..ACTIVE).map(|i| 1 + (k * 37 + i) % (STACKS - 1)))
            .map(|stack| {
                let live = if stack == 0 { (k + 1) << 20 } else { 64 << 10 };
                SiteCounters {
                    stack,
                    live_bytes: live,
                    live_count: live >> 12,
                    alloc_bytes: (k + 1) * (4 << 20),
                    alloc_count: (k + 1) * 1024,
                    high_bytes: live,
                    high_count: live >> 12,
                }
            })
            .collect();
        let t = k * INTERVAL_NS;
        let s = Snapshot {
            t,
            seq: k,
            cause: Cause::Interval,
            complete: k == 0,
            live_bytes: sites.iter().map(|s| s.live_bytes).sum(),
            high_bytes: sites.iter().map(|s| s.high_bytes).sum(),
            high_t: t,
            counted_from: 0,
            sites,
        };
        chunk.push(&s.to_record());
        flush(&mut chunk, &mut f);
    }
}
