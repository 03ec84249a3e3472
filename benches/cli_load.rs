//! Load + report throughput of the CLI on a synthetic capture of several million records, and the
//! CLI's peak RSS (which must follow distinct stacks and live samples, not the file size).
//!
//! `cargo bench -p memshim --bench cli_load [-- RECORDS]` (default 5,000,000 records). Not a
//! timed test: it prints numbers for BENCHMARKS.md.

use std::io::Write;
use std::time::Instant;

use memshim_format::{
    encode_header, AllocKind, ChunkBuilder, Drops, EndKind, Header, Module, Record,
};

const STACKS: u64 = 5_000;
const LIVE_CAP: usize = 50_000;

fn main() {
    let records: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("cli_load_bench.msh");
    let written = write_capture(&path, records);
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "capture: {written} records, {:.1} MiB ({})",
        size as f64 / 1048576.0,
        path.display()
    );

    for args in [&["stats"][..], &["report", "--format", "json"], &["report"]] {
        let start = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_memshim"))
            .args(args)
            .arg(&path)
            .output()
            .expect("memshim runs");
        let secs = start.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "memshim {:<22} {:>6.2} s  {:>6.2} M records/s  {:>6.1} MiB/s  peak RSS of the CLI {:>6.1} MiB",
            args.join(" "),
            secs,
            written as f64 / secs / 1e6,
            size as f64 / 1048576.0 / secs,
            max_child_rss_kib() as f64 / 1024.0
        );
    }
}

/// Peak RSS of the largest child so far (KiB); each later run is at least as big as the last to
/// show up, so the runs above go from the lightest (stats) to the heaviest.
fn max_child_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass; a zeroed rusage is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN is a valid `who`, `ru` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss
}

/// A capture shaped like a busy service: 5,000 distinct stacks of 24 frames, allocations and
/// frees interleaved with a bounded live set, a tick every 2,000 records.
fn write_capture(path: &std::path::Path, records: u64) -> u64 {
    let h = Header {
        pid: 1,
        exe: "/usr/bin/bench".into(),
        argv: vec!["bench".into()],
        rate: 512 * 1024,
        page_size: 4096,
        stack_depth: 128,
        shim_version: "bench".into(),
        ..Default::default()
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&encode_header(&h)).unwrap();
    let mut chunk = ChunkBuilder::new();
    let mut buf = Vec::new();
    let mut n = 0u64;
    let mut push =
        |r: Record, chunk: &mut ChunkBuilder, f: &mut std::io::BufWriter<std::fs::File>| {
            chunk.push(&r);
            if chunk.len() > 256 * 1024 {
                buf.clear();
                chunk.finish_into(&mut buf);
                f.write_all(&buf).unwrap();
            }
        };
    let base = 0x5555_0000_0000u64;
    let m = Module {
        path: "/nonexistent/bench".into(),
        base,
        segments: vec![(0, 1 << 24)],
        build_id: vec![1],
    };
    push(Record::Modules(vec![m]), &mut chunk, &mut f);
    n += 1;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut live: Vec<u64> = Vec::new();
    let mut seen = vec![false; STACKS as usize];
    let mut t = 0u64;
    let mut addr = 0x1000_0000u64;
    while n < records {
        t += 1000;
        if n.is_multiple_of(2000) {
            let tick = Record::Tick {
                t,
                rss: 100 << 20,
                heap_in_use: 50 << 20,
                sampled_allocated: 0,
                sampled_freed: 0,
                dropped: Drops::default(),
            };
            push(tick, &mut chunk, &mut f);
            n += 1;
        }
        let r = next();
        if live.len() >= LIVE_CAP || (!live.is_empty() && r % 2 == 0) {
            let i = (r >> 8) as usize % live.len();
            let a = live.swap_remove(i);
            push(
                Record::Free {
                    t,
                    tid: 1,
                    addr: a,
                    size: 0,
                },
                &mut chunk,
                &mut f,
            );
        } else {
            let stack = (r >> 16) % STACKS;
            if !seen[stack as usize] {
                seen[stack as usize] = true;
                let frames = (0..24)
                    .map(|k| base + 0x1000 + (stack * 7 + k * 131) % 0xf0_0000)
                    .collect();
                push(
                    Record::Stack {
                        id: stack,
                        frames,
                        python: vec![],
                    },
                    &mut chunk,
                    &mut f,
                );
                n += 1;
            }
            addr += 64;
            let size = 16 + (r >> 40) % 65536;
            let rec = Record::Alloc {
                t,
                tid: 1,
                addr,
                size,
                stack,
                kind: AllocKind::Malloc,
                inherited: false,
            };
            push(rec, &mut chunk, &mut f);
            live.push(addr);
        }
        n += 1;
    }
    push(
        Record::End {
            t,
            how: EndKind::Exit,
            dropped: Drops::default(),
        },
        &mut chunk,
        &mut f,
    );
    buf.clear();
    chunk.finish_into(&mut buf);
    f.write_all(&buf).unwrap();
    n + 1
}
