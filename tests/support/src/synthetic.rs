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

// A synthetic capture whose stacks point into tests/fixtures/cli/sym_target.c, compiled.

pub const BASE: u64 = 0x5555_0000_0000;
pub const SHIM: u64 = 0x7f00_0000_0000;
pub const MIB: u64 = 1 << 20;

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

pub fn capture(f: &Fixture, interval: u64, build_id: Vec<u8>) -> Capture {
    let mut c = Capture::new(&header(interval));
    c.push(Record::Modules(vec![
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
    ]));
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

/// True when `tool` runs. When it does not: under CI the test fails with what to install;
/// elsewhere the skip is recorded (tests/pythons) and the caller returns.
pub fn have_tool(tool: &str, args: &[&str], package: &str) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        memshim_test_pythons::Missing::new(
            tool,
            format!("not found: scripts/provision.sh installs it, or apt-get install {package}"),
        )
        .skip();
    }
    ok
}
