//! Micro benchmarks of the capture format, the part of memshim that can be measured from outside
//! the shim (a cdylib whose internals are not importable; its hot path is measured by
//! `benches/malloc_pair.rs` instead).
//!
//! - `decode/*`: `Reader` over an in-memory synthetic capture shaped like a sampled service
//!   (interned stacks of 24 native + 6 Python frames, allocations, frees, ticks): what every
//!   `memshim stats|report` pays per record before any analysis.
//! - `encode/*`: `ChunkBuilder::push` + `finish_into` of the same records: the serialization the
//!   shim's writer thread does per record (postcard + CRC-32), off the application's threads.
//! - `weight`: `sample_weight`, applied by the CLI to every sampled allocation.
//! - `analyze/*`: the CLI's analysis of the same records, decoded (`memshim_cli::analysis`'s
//!   `Analysis::apply` and `finish`): what `memshim report` pays per record after decoding.
//!
//! `cargo bench -p memshim --bench decode` (criterion; `-- --quick` for a short run).
//! Not a timed test: the numbers go to BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use memshim_cli::analysis::Analysis;
use memshim_format::{
    encode_header, sample_weight, AllocKind, ChunkBuilder, Drops, EndKind, Header, Module, PyFrame,
    Reader, Record,
};

/// Distinct stacks in the synthetic capture.
const STACKS: u64 = 2_000;
/// Records per capture (alloc/free/tick/stack records all count).
const RECORDS: usize = 200_000;
/// The writer flushes a chunk at about this many payload bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// The records of a capture like the shim writes for a sampled Python service.
fn records(n: usize, python_frames: bool) -> Vec<Record> {
    let base = 0x5555_0000_0000u64;
    let mut out = Vec::with_capacity(n + 2);
    out.push(Record::Modules(vec![Module {
        path: "/usr/lib/x86_64-linux-gnu/libbench.so".into(),
        base,
        segments: vec![(0, 1 << 24)],
        build_id: vec![0xab; 20],
    }]));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut seen = vec![false; STACKS as usize];
    let mut live: Vec<u64> = Vec::new();
    let (mut t, mut addr) = (0u64, 0x7f00_0000_0000u64);
    while out.len() < n {
        t += 50_000;
        if out.len() % 1000 == 0 {
            out.push(Record::Tick {
                t,
                rss: 300 << 20,
                heap_in_use: 200 << 20,
                sampled_allocated: t,
                sampled_freed: t / 2,
                dropped: Drops::default(),
            });
        }
        let r = next();
        if live.len() > 4096 || (!live.is_empty() && r % 2 == 0) {
            let a = live.swap_remove((r >> 8) as usize % live.len());
            out.push(Record::Free {
                t,
                tid: 7,
                addr: a,
                size: 4096,
            });
            continue;
        }
        let stack = (r >> 16) % STACKS;
        if !seen[stack as usize] {
            seen[stack as usize] = true;
            let frames = (0..24)
                .map(|k| base + 0x1000 + (stack * 7 + k * 131) % 0xf0_0000)
                .collect();
            let python = if python_frames {
                (0..6)
                    .map(|k| PyFrame {
                        code: 0x7f11_0000_0000 + stack * 64 + k,
                        instr: (k * 3) as u32,
                        entry: k == 0,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            out.push(Record::Stack {
                id: stack,
                frames,
                python,
            });
        }
        addr += 4096;
        live.push(addr);
        out.push(Record::Alloc {
            t,
            tid: 7,
            addr,
            size: 16 + (r >> 40) % (1 << 20),
            stack,
            kind: AllocKind::Malloc,
            inherited: false,
        });
    }
    out.push(Record::End {
        t,
        how: EndKind::Exit,
        dropped: Drops::default(),
    });
    out
}

/// The header of the synthetic capture.
fn header() -> Header {
    Header {
        pid: 42,
        exe: "/usr/bin/python3.11".into(),
        argv: vec!["python3".into(), "serve.py".into()],
        rate: 512 * 1024,
        page_size: 4096,
        stack_depth: 128,
        shim_version: "bench".into(),
        ..Default::default()
    }
}

/// Header + chunks of about `CHUNK_BYTES` each, as the writer lays them out.
fn encode(recs: &[Record]) -> Vec<u8> {
    let mut out = encode_header(&header());
    let mut chunk = ChunkBuilder::new();
    for r in recs {
        chunk.push(r);
        if chunk.len() >= CHUNK_BYTES {
            chunk.finish_into(&mut out);
        }
    }
    chunk.finish_into(&mut out);
    out
}

fn decode_all(bytes: &[u8]) -> u64 {
    let mut rd = Reader::new(bytes).expect("header decodes");
    let mut n = 0u64;
    while let Some(r) = rd.next_record().expect("record decodes") {
        black_box(&r);
        n += 1;
    }
    n
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for (name, py) in [("native_stacks", false), ("python_stacks", true)] {
        let recs = records(RECORDS, py);
        let bytes = encode(&recs);
        assert_eq!(decode_all(&bytes), recs.len() as u64);
        g.throughput(Throughput::Elements(recs.len() as u64));
        g.bench_function(name, |b| b.iter(|| decode_all(black_box(&bytes))));
    }
    // Alloc/free records only (stacks already interned): the steady state of a long capture.
    let steady: Vec<Record> = records(RECORDS, false)
        .into_iter()
        .filter(|r| matches!(r, Record::Alloc { .. } | Record::Free { .. }))
        .collect();
    let bytes = encode(&steady);
    g.throughput(Throughput::Elements(steady.len() as u64));
    g.bench_function("alloc_free_only", |b| {
        b.iter(|| decode_all(black_box(&bytes)))
    });
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for (name, py) in [("native_stacks", false), ("python_stacks", true)] {
        let recs = records(RECORDS, py);
        g.throughput(Throughput::Elements(recs.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || Vec::with_capacity(16 << 20),
                |out| {
                    let mut chunk = ChunkBuilder::new();
                    for r in &recs {
                        chunk.push(r);
                        if chunk.len() >= CHUNK_BYTES {
                            chunk.finish_into(out);
                        }
                    }
                    chunk.finish_into(out);
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_weight(c: &mut Criterion) {
    let sizes: Vec<u64> = (0..1024u64).map(|i| 16 + i * i * 37 % (4 << 20)).collect();
    let mut g = c.benchmark_group("weight");
    g.throughput(Throughput::Elements(sizes.len() as u64));
    g.bench_function("sample_weight_512K", |b| {
        b.iter(|| {
            sizes
                .iter()
                .map(|&s| sample_weight(black_box(s), 512 * 1024))
                .sum::<f64>()
        })
    });
    g.finish();
}

fn bench_analyze(c: &mut Criterion) {
    let mut g = c.benchmark_group("analyze");
    for (name, py) in [("native_stacks", false), ("python_stacks", true)] {
        let recs = records(RECORDS, py);
        g.throughput(Throughput::Elements(recs.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                || recs.clone(),
                |recs| {
                    let mut a = Analysis::new(header());
                    for r in recs {
                        a.apply(r);
                    }
                    a.finish(false);
                    black_box(a.live_samples())
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_encode,
    bench_weight,
    bench_analyze
);
criterion_main!(benches);
