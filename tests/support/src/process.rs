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
    build_c_file(dir, &fixtures().join(src), extra)
}

/// The host-behaviour fixtures (tests/host_*.rs).
pub fn host_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host")
}

/// Compiles the C file `src` (any path) with `cc -O1 -g -pthread` into `dir` (`-shared` in
/// `extra` makes `lib<stem>.so`).
pub fn build_c_file(dir: &Path, src: &Path, extra: &[&str]) -> PathBuf {
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
        .arg(src)
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

/// Starts `cmd` in its own process group, stdout/stderr into files of `dir` named after `tag`;
/// returns the child and the two paths.
fn spawn_logged(
    cmd: &mut Command,
    dir: &Path,
    tag: &str,
) -> (std::process::Child, PathBuf, PathBuf) {
    let out_path = dir.join(format!("{tag}.stdout"));
    let err_path = dir.join(format!("{tag}.stderr"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    (child, out_path, err_path)
}

/// Waits for `child` to end and reads its outcome. Past `timeout`, takes a gdb backtrace of
/// every thread of the process, kills the whole group and panics with `hang` and them.
fn wait_logged(
    mut child: std::process::Child,
    out_path: &Path,
    err_path: &Path,
    timeout: Duration,
    hang: impl FnOnce() -> String,
) -> Outcome {
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
            panic!("{} (hang); backtraces:\n{bt}", hang());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        stdout: read(out_path),
        stderr: read(err_path),
        code: status.code(),
        signal: status.signal(),
    }
}

/// Runs `cmd` to completion in its own process group, stdout/stderr into files of `dir`
/// (named after `tag`). Past `timeout`, takes a gdb backtrace of every thread of the process,
/// kills the whole group and panics with it.
pub fn run(mut cmd: Command, dir: &Path, tag: &str, timeout: Duration) -> Outcome {
    let (child, out_path, err_path) = spawn_logged(&mut cmd, dir, tag);
    wait_logged(child, &out_path, &err_path, timeout, || {
        format!(
            "{tag}: {cmd:?} did not finish within {timeout:?}\nstderr so far:\n{}",
            read(&err_path)
        )
    })
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

    pub fn args_of(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
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

    pub fn cwd(mut self, d: impl Into<PathBuf>) -> Self {
        self.cwd = Some(d.into());
        self
    }

    /// Runs without the shim.
    pub fn run_plain(&self, dir: &Path) -> Outcome {
        run(self.command(), dir, "plain", TIMEOUT)
    }

    /// Runs without the shim, with its own tag and timeout.
    pub fn run_plain_with(&self, dir: &Path, tag: &str, timeout: Duration) -> Outcome {
        run(self.command(), dir, tag, timeout)
    }

    /// Runs under the shim with `MEMSHIM_RATE=rate` (None: unset), the fixed seed, and captures
    /// written into a fresh directory `dir/caps-TAG`.
    pub fn run_shim(&self, dir: &Path, tag: &str, rate: Option<&str>) -> (Outcome, PathBuf) {
        self.run_shim_with(dir, tag, rate, TIMEOUT)
    }

    /// [`Program::run_shim`] with its own timeout.
    pub fn run_shim_with(
        &self,
        dir: &Path,
        tag: &str,
        rate: Option<&str>,
        timeout: Duration,
    ) -> (Outcome, PathBuf) {
        let (c, caps) = self.shim_command(dir, tag, rate);
        (run(c, dir, tag, timeout), caps)
    }

    /// The command that runs the program without the shim.
    pub fn plain_command(&self) -> Command {
        self.command()
    }

    /// The command that runs the program under the shim (as [`Program::run_shim`] does) and the
    /// fresh directory its captures go to.
    pub fn shim_command(&self, dir: &Path, tag: &str, rate: Option<&str>) -> (Command, PathBuf) {
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
        (c, caps)
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
    assert!(
        plain.stdout == shim.stdout,
        "{what}: stdout differs{}\n(the shim run's stderr: {:?})",
        text_diff(&plain.stdout, &shim.stdout),
        brief(&shim.stderr)
    );
    assert!(
        plain.stderr == shim.stderr,
        "{what}: stderr differs{}",
        text_diff(&plain.stderr, &shim.stderr)
    );
}

/// At most 1500 bytes of `s` (on a char boundary), noting how long it was.
pub fn brief(s: &str) -> String {
    if s.len() <= 1500 {
        return s.to_string();
    }
    let mut end = 1500;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &s[..end], s.len())
}

/// Where two texts part: the first differing line and a little of both, shortened.
fn text_diff(plain: &str, shim: &str) -> String {
    let at = plain
        .lines()
        .zip(shim.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(plain.lines().count().min(shim.lines().count()));
    let tail = |t: &str| brief(&t.lines().skip(at).take(20).collect::<Vec<_>>().join("\n"));
    format!(
        " from line {} ({} vs {} bytes)\n  plain: {:?}\n   shim: {:?}",
        at + 1,
        plain.len(),
        shim.len(),
        tail(plain),
        tail(shim)
    )
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
        self.header.rate
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

/// Everything under `root`, by relative path: a file's bytes, a symlink's `-> target`, a
/// directory's `<dir>` (so empty directories and names count too).
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", t.display()).into_bytes());
            } else if md.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                walk(root, &p, out);
            } else if md.is_file() {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            } else {
                out.insert(rel, b"<special>".to_vec());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts two directory snapshots ([`tree`]) are equal, naming the entries that differ.
pub fn assert_same_tree(
    plain: &std::collections::BTreeMap<String, Vec<u8>>,
    shim: &std::collections::BTreeMap<String, Vec<u8>>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (k, v) in plain {
        match shim.get(k) {
            None => diffs.push(format!("  missing under the shim: {k}")),
            Some(w) if w != v => {
                let at = v.iter().zip(w.iter()).position(|(a, b)| a != b);
                diffs.push(format!(
                    "  differs: {k} ({} vs {} bytes, first difference at {at:?}; under the shim it starts {:?})",
                    v.len(),
                    w.len(),
                    String::from_utf8_lossy(&w[..w.len().min(120)])
                ))
            }
            _ => {}
        }
    }
    for k in shim.keys() {
        if !plain.contains_key(k) {
            diffs.push(format!("  only under the shim: {k}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: the files the program wrote differ:\n{}",
        diffs.join("\n")
    );
}

/// What [`compare_in_workdir`] saw.
#[derive(Debug)]
pub struct HostRuns {
    pub plain: Outcome,
    /// The working directory's contents after the plain run.
    pub files: std::collections::BTreeMap<String, Vec<u8>>,
    /// Per rate, the captures (written outside the working directory).
    pub caps: Vec<Vec<Capture>>,
}

/// Runs `prog` in the working directory `dir/work`, emptied and prepared by `setup` before each
/// run: plainly, then under the shim at each rate (captures into `dir/caps-*`, outside it).
/// Asserts every shim run's stdout, stderr (both after `mask`, which may only normalise what
/// legitimately varies between runs), exit status (signal included) and the working
/// directory's contents (names and bytes, except the relative paths in `skip`) equal the plain
/// run's.
pub fn compare_in_workdir(
    prog: &Program,
    dir: &Path,
    rates: &[Option<&str>],
    setup: &dyn Fn(&Path),
    mask: &dyn Fn(&str) -> String,
    skip: &[&str],
) -> HostRuns {
    let work = dir.join("work");
    let prog = prog.clone().cwd(&work);
    let fresh = || {
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        setup(&work);
    };
    let snap = || {
        let mut t = tree(&work);
        t.retain(|k, _| {
            !skip
                .iter()
                .any(|s| k == s || k.starts_with(&format!("{s}/")))
        });
        t
    };
    let masked = |o: &Outcome| Outcome {
        stdout: mask(&o.stdout),
        stderr: mask(&o.stderr),
        ..o.clone()
    };
    fresh();
    let plain = masked(&prog.run_plain(dir));
    let files = snap();
    let mut caps = Vec::new();
    for (i, rate) in rates.iter().enumerate() {
        fresh();
        let tag = format!("shim{i}-{}", rate.unwrap_or("default"));
        let (o, cdir) = prog.run_shim(dir, &tag, *rate);
        let what = format!(
            "{} {:?} under MEMSHIM_RATE={rate:?}",
            prog.exe.display(),
            prog.args
        );
        assert_same(&plain, &masked(&o), &what);
        assert_same_tree(&files, &snap(), &what);
        caps.push(captures(&cdir));
    }
    HostRuns { plain, files, caps }
}

/// Starts `cmd` in its own process group (stdout/stderr into files of `dir` named after `tag`),
/// waits until the file `ready` says `ready`, sends `sig` to the process, and waits for it to
/// end (killing the group and failing past [`TIMEOUT`]).
pub fn kill_when_ready(mut cmd: Command, dir: &Path, tag: &str, ready: &Path, sig: i32) -> Outcome {
    let _ = std::fs::remove_file(ready);
    let (mut child, out_path, err_path) = spawn_logged(&mut cmd, dir, tag);
    wait_for_text(&mut child, ready, "ready", TIMEOUT);
    // Let the threads get going.
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, sig) };
    wait_logged(child, &out_path, &err_path, TIMEOUT, || {
        format!("{tag}: did not end within {TIMEOUT:?} of signal {sig}")
    })
}

/// Fails with one clear line when the program `tool` is not installed (Debian package `pkg`).
pub fn need_tool(tool: &str, pkg: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()));
    assert!(found, "`{tool}` is not installed: apt-get install -y {pkg}");
}

/// The path of a shared library of the system's library directories (Debian package `pkg`),
/// failing with one clear line when it is not installed.
pub fn need_lib(name: &str, pkg: &str) -> PathBuf {
    for d in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
    ] {
        let p = Path::new(d).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: apt-get install -y {pkg}");
}
