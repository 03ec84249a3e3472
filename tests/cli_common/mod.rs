//! Shared helpers of the CLI tests: synthetic captures and running the built `memshim` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use memshim_format::{
    encode_header, AllocKind, ChunkBuilder, Drops, EndKind, Header, Module, Record,
};

/// The `memshim` binary cargo built for these tests.
pub fn memshim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memshim"))
}

/// Runs memshim with `args`; returns its output.
pub fn run(args: &[&str]) -> Output {
    memshim().args(args).output().expect("memshim runs")
}

/// A fresh scratch directory under the target dir, unique per test.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn header(interval: u64) -> Header {
    Header {
        pid: 4242,
        ppid: 1,
        exe: "/usr/bin/synthetic".into(),
        argv: vec!["synthetic".into(), "--leak".into()],
        start_unix_ns: 1_700_000_000_000_000_000,
        start_mono_ns: 0,
        sample_interval: interval,
        page_size: 4096,
        stack_depth: 128,
        seed: Some(7),
        forked_from: None,
        shim_version: "test".into(),
        extra: vec![],
    }
}

/// Builds a capture: header, then records in chunks of `per_chunk`.
pub struct Capture {
    pub bytes: Vec<u8>,
    chunk: ChunkBuilder,
    in_chunk: usize,
    pub per_chunk: usize,
}

impl Capture {
    pub fn new(h: &Header) -> Self {
        Capture {
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

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
