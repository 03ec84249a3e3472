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

/// Compiles a C fixture from tests/fixtures/cli into `dir`; returns the binary's path.
pub fn build_c(dir: &Path, src: &str, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cli")
        .join(src);
    let out = dir.join(src.file_stem().unwrap());
    let st = Command::new("cc")
        .args(["-g", "-O0", "-o"])
        .arg(&out)
        .arg(&src)
        .args(extra)
        .status()
        .expect("cc runs (install a C compiler)");
    assert!(st.success(), "cc failed on {}", src.display());
    out
}

/// Address of `sym` in the ELF file (file virtual address), from `nm`.
pub fn symbol_addr(bin: &Path, sym: &str) -> u64 {
    let out = Command::new("nm")
        .arg(bin)
        .output()
        .expect("nm runs (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let parts: Vec<_> = line.split_whitespace().collect();
        if parts.len() == 3 && parts[2] == sym {
            return u64::from_str_radix(parts[0], 16).unwrap();
        }
    }
    panic!("{sym} not found in {}", bin.display());
}

/// GNU build-id of an ELF file, from `readelf -n`.
pub fn build_id(bin: &Path) -> Vec<u8> {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(bin)
        .output()
        .expect("readelf runs (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("the fixture has a build-id");
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}
