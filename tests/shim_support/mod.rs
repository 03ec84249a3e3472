//! Shared helpers of the shim integration tests: build a C fixture, run a program with and
//! without the real `libmemshim.so` (each run under a timeout, with a gdb backtrace of every
//! thread when it hangs), compare what the program did, and decode the captures it left.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memshim_format::{AllocKind, Drops, EndKind, Header, Module, Reader, Record};

/// Every fixture run is killed (and the test fails, with backtraces) after this long.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The seed every sampled run uses, so a failure reproduces.
pub const SEED: &str = "12345";

/// libmemshim.so, built next to the `memshim` binary by `cargo build --release --workspace`
/// (`MEMSHIM_TEST_SO=/path/libmemshim.so` tests another build).
pub fn shim_so() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMSHIM_TEST_SO") {
        return PathBuf::from(p);
    }
    let so = Path::new(env!("CARGO_BIN_EXE_memshim")).with_file_name("libmemshim.so");
    assert!(
        so.exists(),
        "{} is missing: run `cargo build --release --workspace` (scripts/test.sh does)",
        so.display()
    );
    so
}

/// The real Python interpreter (not a pyenv wrapper script, which would fork bash many times).
pub fn python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    let exe = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let exe = std::fs::canonicalize(&exe).unwrap_or_else(|_| PathBuf::from(&exe));
    assert!(exe.exists(), "python interpreter {exe:?} not found");
    exe
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shim")
}

/// A fresh scratch directory under the target dir, one per test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("shim-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles tests/fixtures/shim/`src` with `cc -O1 -g -pthread` into `dir`.
pub fn build_c(dir: &Path, src: &str, extra: &[&str]) -> PathBuf {
    let src = fixtures().join(src);
    let stem = src.file_stem().unwrap().to_str().unwrap();
    let shared = extra.contains(&"-shared");
    let out = dir.join(if shared {
        format!("lib{stem}.so")
    } else {
        stem.to_string()
    });
    let o = Command::new("cc")
        .args(["-O1", "-g", "-pthread", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .args(extra)
        .output()
        .expect("cc runs (install a C compiler)");
    assert!(
        o.status.success(),
        "cc failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Waits until `path` contains `text`; past `timeout` (or when `child` exits first) takes
/// backtraces, kills the child's group and panics.
pub fn wait_for_text(child: &mut std::process::Child, path: &Path, text: &str, timeout: Duration) {
    let start = Instant::now();
    while !read(path).contains(text) {
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "exited ({st}) before writing {text:?} to {}",
                path.display()
            );
        }
        if start.elapsed() > timeout {
            let bt = backtraces(child.id());
            // SAFETY: kill has no memory-safety preconditions; the group is the child's own.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "no {text:?} in {} within {timeout:?} (hang); backtraces:\n{bt}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `cmd` to completion in its own process group, stdout/stderr into files of `dir`
/// (named after `tag`). Past `timeout`, takes a gdb backtrace of every thread of the process,
/// kills the whole group and panics with it.
pub fn run(mut cmd: Command, dir: &Path, tag: &str, timeout: Duration) -> Outcome {
    let out_path = dir.join(format!("{tag}.stdout"));
    let err_path = dir.join(format!("{tag}.stderr"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > timeout {
            let bt = backtraces(child.id());
            // SAFETY: kill has no memory-safety preconditions; the group is the child's own.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!(
                "{tag}: {cmd:?} did not finish within {timeout:?} (hang); backtraces:\n{bt}\nstderr so far:\n{}",
                read(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        stdout: read(&out_path),
        stderr: read(&err_path),
        code: status.code(),
        signal: status.signal(),
    }
}

pub fn read(p: &Path) -> String {
    let mut s = Vec::new();
    if let Ok(mut f) = std::fs::File::open(p) {
        f.read_to_end(&mut s).unwrap();
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// `thread apply all bt` of process `pid` (best effort, for hang reports).
pub fn backtraces(pid: u32) -> String {
    let o = Command::new("timeout")
        .args(["20", "gdb", "-p", &pid.to_string(), "-batch", "-nx"])
        .args(["-ex", "set pagination off", "-ex", "thread apply all bt"])
        .stdin(Stdio::null())
        .output();
    match o {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("(gdb unavailable: {e})"),
    }
}

/// A program to run: executable, arguments, extra environment.
#[derive(Debug, Clone)]
pub struct Program {
    pub exe: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

impl Program {
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Program {
            exe: exe.into(),
            args: vec![],
            env: vec![],
            cwd: None,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(&self.args);
        // Nothing inherited from the test's own environment may change what the shim does.
        for k in [
            "LD_PRELOAD",
            "MEMSHIM_RATE",
            "MEMSHIM_OUTPUT",
            "MEMSHIM_SEED",
            "MEMSHIM_STACK_DEPTH",
            "MEMSHIM_UNWIND",
        ] {
            c.env_remove(k);
        }
        c.env("PYTHONDONTWRITEBYTECODE", "1");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }

    /// Runs without the shim.
    pub fn run_plain(&self, dir: &Path) -> Outcome {
        run(self.command(), dir, "plain", TIMEOUT)
    }

    /// Runs under the shim with `MEMSHIM_RATE=rate` (None: unset), the fixed seed, and captures
    /// written into a fresh directory `dir/caps-TAG`.
    pub fn run_shim(&self, dir: &Path, tag: &str, rate: Option<&str>) -> (Outcome, PathBuf) {
        let caps = dir.join(format!("caps-{tag}"));
        let _ = std::fs::remove_dir_all(&caps);
        std::fs::create_dir_all(&caps).unwrap();
        let mut c = self.command();
        c.env("LD_PRELOAD", shim_so())
            .env("MEMSHIM_OUTPUT", caps.join("memshim.%p.msh"))
            .env("MEMSHIM_SEED", SEED);
        if let Some(r) = rate {
            c.env("MEMSHIM_RATE", r);
        }
        // The program's own settings win (tests of bad values).
        for (k, v) in &self.env {
            c.env(k, v);
        }
        (run(c, dir, tag, TIMEOUT), caps)
    }
}

/// Runs `prog` without the shim and under it at each rate; asserts every run under the shim
/// behaved exactly as the plain run (stdout, stderr, exit code, signal) and returns the plain
/// outcome and, per rate, the decoded captures.
pub fn compare(prog: &Program, dir: &Path, rates: &[Option<&str>]) -> (Outcome, Vec<Vec<Capture>>) {
    let plain = prog.run_plain(dir);
    let mut all = Vec::new();
    for (i, rate) in rates.iter().enumerate() {
        let tag = format!("shim{i}-{}", rate.unwrap_or("default"));
        let (o, caps) = prog.run_shim(dir, &tag, *rate);
        assert_same(
            &plain,
            &o,
            &format!("{} under MEMSHIM_RATE={rate:?}", prog.exe.display()),
        );
        all.push(captures(&caps));
    }
    (plain, all)
}

/// Asserts two runs behaved identically.
pub fn assert_same(plain: &Outcome, shim: &Outcome, what: &str) {
    assert_eq!(
        (plain.code, plain.signal),
        (shim.code, shim.signal),
        "{what}: exit differs\nplain stderr:\n{}\nshim stderr:\n{}",
        plain.stderr,
        shim.stderr
    );
    assert_eq!(plain.stdout, shim.stdout, "{what}: stdout differs");
    assert_eq!(plain.stderr, shim.stderr, "{what}: stderr differs");
}

/// A decoded capture.
#[derive(Debug)]
pub struct Capture {
    pub path: PathBuf,
    pub header: Header,
    pub records: Vec<Record>,
    /// The stream ended inside a chunk (process killed mid-write).
    pub truncated: bool,
    pub chunks: u64,
}

/// Decodes every `*.msh` file of `dir`, sorted by pid then name; panics on a decoding error.
pub fn captures(dir: &Path) -> Vec<Capture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msh"))
        .collect();
    paths.sort();
    let mut caps: Vec<Capture> = paths.iter().map(|p| decode(p)).collect();
    caps.sort_by_key(|c| (c.header.pid, c.path.clone()));
    caps
}

/// Decodes one capture completely; panics (naming the file) when it does not decode.
pub fn decode(path: &Path) -> Capture {
    let f = std::fs::File::open(path).unwrap();
    let mut r = Reader::new(std::io::BufReader::new(f))
        .unwrap_or_else(|e| panic!("{}: header does not decode: {e}", path.display()));
    let mut records = Vec::new();
    for rec in &mut r {
        records.push(rec.unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    Capture {
        path: path.to_path_buf(),
        header: r.header().clone(),
        truncated: r.truncated(),
        chunks: r.chunks(),
        records,
    }
}

/// One Alloc record, flattened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alloc {
    pub t: u64,
    pub tid: u32,
    pub addr: u64,
    pub size: u64,
    pub stack: u64,
    pub kind: AllocKind,
    pub inherited: bool,
}

impl Alloc {
    /// The allocation an Alloc record describes.
    pub fn of(r: &Record) -> Option<Alloc> {
        match *r {
            Record::Alloc {
                t,
                tid,
                addr,
                size,
                stack,
                kind,
                inherited,
            } => Some(Alloc {
                t,
                tid,
                addr,
                size,
                stack,
                kind,
                inherited,
            }),
            _ => None,
        }
    }
}

impl Capture {
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// The End record: how the process left and the drops it reported.
    pub fn end(&self) -> Option<(EndKind, Drops)> {
        self.records.iter().find_map(|r| match r {
            Record::End { how, dropped, .. } => Some((*how, *dropped)),
            _ => None,
        })
    }

    /// Asserts the capture is complete: decodes, not truncated, ends with exactly one End, last.
    pub fn assert_complete(&self) {
        assert!(!self.truncated, "{}: truncated", self.name());
        let ends = self
            .records
            .iter()
            .filter(|r| matches!(r, Record::End { .. }))
            .count();
        assert_eq!(ends, 1, "{}: {ends} End records", self.name());
        assert!(
            matches!(self.records.last(), Some(Record::End { .. })),
            "{}: End is not the last record",
            self.name()
        );
    }

    pub fn allocs(&self) -> impl Iterator<Item = Alloc> + '_ {
        self.records.iter().filter_map(Alloc::of)
    }

    /// (addr, size) of every Free record.
    pub fn frees(&self) -> impl Iterator<Item = (u64, u64, u32)> + '_ {
        self.records.iter().filter_map(|r| match *r {
            Record::Free {
                addr, size, tid, ..
            } => Some((addr, size, tid)),
            _ => None,
        })
    }

    pub fn stacks(&self) -> HashMap<u64, Vec<u64>> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Stack { id, frames, .. } => Some((*id, frames.clone())),
                _ => None,
            })
            .collect()
    }

    /// Asserts every Alloc names a stack written before it.
    pub fn assert_stacks_defined(&self) {
        let mut seen = std::collections::HashSet::new();
        for r in &self.records {
            match r {
                Record::Stack { id, .. } => {
                    seen.insert(*id);
                }
                Record::Alloc { stack, .. } => {
                    assert!(
                        seen.contains(stack),
                        "{}: Alloc names stack {stack} before it is written",
                        self.name()
                    )
                }
                _ => {}
            }
        }
    }

    /// Every module map the capture recorded, merged (later maps win on equal paths).
    pub fn modules(&self) -> Vec<Module> {
        let mut out: Vec<Module> = Vec::new();
        for r in &self.records {
            if let Record::Modules(ms) = r {
                for m in ms {
                    out.retain(|o| !(o.path == m.path && o.base == m.base));
                    out.push(m.clone());
                }
            }
        }
        out
    }

    /// The module whose file is `path` (compared canonically).
    pub fn module(&self, path: &Path) -> Option<Module> {
        let want = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.modules().into_iter().find(|m| {
            let p = Path::new(&m.path);
            std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()) == want
        })
    }

    /// Ids of the stacks with a frame inside one of `ranges` (runtime address ranges).
    pub fn stacks_through(&self, ranges: &[(u64, u64)]) -> std::collections::HashSet<u64> {
        self.stacks()
            .into_iter()
            .filter(|(_, frames)| {
                frames.iter().any(|&ip| {
                    // A return address points after the call; step back into the call instruction.
                    let a = ip.wrapping_sub(1);
                    ranges.iter().any(|&(lo, hi)| a >= lo && a < hi)
                })
            })
            .map(|(id, _)| id)
            .collect()
    }

    pub fn interval(&self) -> u64 {
        self.header.sample_interval
    }

    /// Unbiased estimate of the bytes that allocations `a` stand for.
    pub fn est_bytes<'a>(&self, a: impl Iterator<Item = &'a Alloc>) -> f64 {
        let iv = self.interval();
        a.map(|a| a.size as f64 * memshim_format::sample_weight(a.size, iv))
            .sum()
    }

    pub fn count(&self, pred: impl Fn(&Record) -> bool) -> usize {
        self.records.iter().filter(|r| pred(r)).count()
    }
}

/// Runtime address range of function `sym` of the ELF file `bin` loaded with bias `base`
/// (from `nm -S`: address and size).
pub fn sym_range(bin: &Path, base: u64, sym: &str) -> (u64, u64) {
    let out = Command::new("nm")
        .arg("-S")
        .arg(bin)
        .output()
        .expect("nm runs (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let p: Vec<_> = line.split_whitespace().collect();
        if p.len() == 4 && p[3] == sym {
            let a = u64::from_str_radix(p[0], 16).unwrap();
            let n = u64::from_str_radix(p[1], 16).unwrap();
            return (base + a, base + a + n);
        }
    }
    panic!("{sym} (with a size) not found by nm in {}", bin.display());
}

/// Lines of `text` starting with `memshim:`.
pub fn warnings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("memshim:")).collect()
}

/// Runtime ranges of `sym` of `bin` in every place the capture saw `bin` loaded.
pub fn ranges(cap: &Capture, bin: &Path, sym: &str) -> Vec<(u64, u64)> {
    let want = std::fs::canonicalize(bin).unwrap();
    let r: Vec<_> = cap
        .modules()
        .iter()
        .filter(|m| std::fs::canonicalize(&m.path).is_ok_and(|p| p == want))
        .map(|m| sym_range(bin, m.base, sym))
        .collect();
    assert!(
        !r.is_empty(),
        "{}: {} is not in any module map",
        cap.name(),
        bin.display()
    );
    r
}

/// Allocations of some stacks followed through the capture, in record order.
#[derive(Debug, Default)]
pub struct Replay {
    /// Alloc records of those stacks (inherited ones included).
    pub allocs: Vec<Alloc>,
    /// How many of them a later Free released.
    pub freed: usize,
    /// How many of those frees came from another thread than the allocation.
    pub cross_thread: usize,
    /// Still live at the end of the capture: addr -> allocation.
    pub live: HashMap<u64, Alloc>,
    /// Allocations at an address still live: their Free was among the capture's ring-full drops.
    pub lost_frees: usize,
}

/// Follows the allocations whose stack is in `stacks` through the Free records.
pub fn replay(cap: &Capture, stacks: &std::collections::HashSet<u64>) -> Replay {
    let mut r = Replay::default();
    for rec in &cap.records {
        if let Some(a) = Alloc::of(rec) {
            // A new allocation at a live address means a Free went missing: only possible
            // when the capture reports dropped records (the replay's users bound them).
            if let Some(old) = r.live.remove(&a.addr) {
                let drops = cap.end().map_or(0, |(_, d)| d.ring_full);
                assert!(
                    drops > 0,
                    "{}: allocation at {:#x} while {old:?} is still live (lost Free)",
                    cap.name(),
                    a.addr
                );
                r.lost_frees += 1;
            }
            if stacks.contains(&a.stack) {
                r.allocs.push(a);
                r.live.insert(a.addr, a);
            }
        } else if let Record::Free { addr, tid, .. } = *rec {
            if let Some(a) = r.live.remove(&addr) {
                r.freed += 1;
                if a.tid != tid {
                    r.cross_thread += 1;
                }
            }
        }
    }
    r
}

/// The one capture of a single-process run, checked complete.
pub fn only(caps: &[Capture]) -> &Capture {
    assert_eq!(
        caps.len(),
        1,
        "one process, one capture: {:?}",
        caps.iter().map(|c| c.name()).collect::<Vec<_>>()
    );
    caps[0].assert_complete();
    caps[0].assert_stacks_defined();
    &caps[0]
}
