//! Synthetic captures for the CLI's tests: a capture built record by record with the format
//! crate, and one whose stacks point into tests/fixtures/cli/sym_target.c, compiled.

use std::path::Path;

use memshim_format::{
    encode_header, AllocKind, ChunkBuilder, Drops, EndKind, Header, Module, Record,
};

use crate::c_build::cli_fixture as build_c;
use crate::dirs::scratch;
use crate::elf::symbol_addr;
use crate::units::MIB;

pub fn header(interval: u64) -> Header {
    Header {
        pid: 4242,
        ppid: 1,
        exe: "/usr/bin/synthetic".into(),
        argv: vec!["synthetic".into(), "--leak".into()],
        start_unix_ns: 1_700_000_000_000_000_000,
        start_mono_ns: 0,
        rate: interval,
        page_size: 4096,
        stack_depth: 128,
        seed: Some(7),
        forked_from: None,
        shim_version: "test".into(),
        extra: vec![],
    }
}

/// Builds a capture: header, then records in chunks of `per_chunk`.
pub struct SyntheticCapture {
    pub bytes: Vec<u8>,
    chunk: ChunkBuilder,
    in_chunk: usize,
    pub per_chunk: usize,
}

impl SyntheticCapture {
    pub fn new(h: &Header) -> Self {
        SyntheticCapture {
            bytes: encode_header(h),
            chunk: ChunkBuilder::new(),
            in_chunk: 0,
            per_chunk: 64,
        }
    }

    pub fn push(&mut self, r: Record) -> &mut Self {
        self.chunk.push(&r);
        self.in_chunk += 1;
        if self.in_chunk >= self.per_chunk {
            self.flush();
        }
        self
    }

    pub fn flush(&mut self) -> &mut Self {
        self.chunk.finish_into(&mut self.bytes);
        self.in_chunk = 0;
        self
    }

    pub fn end(&mut self, t: u64) -> &mut Self {
        self.push(Record::End {
            t,
            how: EndKind::Exit,
            dropped: Drops::default(),
        });
        self.flush()
    }

    pub fn write(&mut self, path: &Path) {
        self.flush();
        std::fs::write(path, &self.bytes).unwrap();
    }
}

/// A module with no file behind it: frames in it print as `module+0xoffset`.
pub fn fake_module(path: &str, base: u64) -> Module {
    Module {
        path: path.into(),
        base,
        segments: vec![(0, 0x10_0000)],
        build_id: vec![0xab, 0xcd],
    }
}

pub fn alloc(t: u64, addr: u64, size: u64, stack: u64) -> Record {
    Record::Alloc {
        t,
        tid: 1,
        addr,
        size,
        stack,
        kind: AllocKind::Malloc,
        inherited: false,
    }
}

pub fn free(t: u64, addr: u64) -> Record {
    Record::Free {
        t,
        tid: 1,
        addr,
        size: 0,
    }
}

pub fn stack(id: u64, frames: &[u64]) -> Record {
    Record::Stack {
        id,
        frames: frames.to_vec(),
        python: vec![],
    }
}

pub fn tick(t: u64, rss: u64, heap: u64) -> Record {
    Record::Tick {
        t,
        rss,
        heap_in_use: heap,
        sampled_allocated: 0,
        sampled_freed: 0,
        dropped: Drops::default(),
    }
}

pub const BASE: u64 = 0x5555_0000_0000;
pub const SHIM: u64 = 0x7f00_0000_0000;

pub struct Fixture {
    pub bin: std::path::PathBuf,
    pub dir: std::path::PathBuf,
}

pub fn fixture(name: &str) -> Fixture {
    let dir = scratch(name);
    let bin = build_c(&dir, "sym_target.c", &[]);
    Fixture { bin, dir }
}

/// A return address inside `func` (as if it called malloc a few bytes in).
pub fn ret(f: &Fixture, func: &str) -> u64 {
    BASE + symbol_addr(&f.bin, func) + 9
}

/// The module map of a synthetic capture: the shim, then the fixture at [`BASE`].
pub fn module_map(f: &Fixture, build_id: Vec<u8>) -> Record {
    Record::Modules(vec![
        Module {
            path: "/opt/memshim/libmemshim.so".into(),
            base: SHIM,
            segments: vec![(0, 0x10000)],
            build_id: vec![1],
        },
        Module {
            path: f.bin.display().to_string(),
            base: BASE,
            segments: vec![(0, 0x10_0000)],
            build_id,
        },
    ])
}

pub fn capture(f: &Fixture, interval: u64, build_id: Vec<u8>) -> SyntheticCapture {
    let mut c = SyntheticCapture::new(&header(interval));
    c.push(module_map(f, build_id));
    let main = ret(f, "main");
    c.push(stack(
        1,
        &[SHIM + 0x100, SHIM + 0x200, ret(f, "leaky_alloc"), main],
    ));
    c.push(stack(2, &[SHIM + 0x100, ret(f, "clean_alloc"), main]));
    c.push(stack(3, &[SHIM + 0x100, ret(f, "peak_fn"), main]));
    let mut t = 0;
    let mut addr = 0x1000_0000u64;
    // 40 MiB leaked in 40 allocations, 10 MiB allocated and freed 100 times, one 300 MiB peak.
    for i in 0..100 {
        t += 1_000_000;
        if i < 40 {
            addr += 2 * MIB;
            c.push(alloc(t, addr, MIB, 1));
        }
        c.push(alloc(t + 1, 0x9000_0000, 10 * MIB, 2));
        c.push(free(t + 2, 0x9000_0000));
        if i == 50 {
            c.push(alloc(t + 3, 0xa000_0000, 300 * MIB, 3));
            c.push(free(t + 4, 0xa000_0000));
        }
    }
    for k in 0..=10 {
        c.push(tick(k * t / 10, (50 + k * 4) * MIB, 40 * MIB));
    }
    c.end(t + 10);
    c
}
