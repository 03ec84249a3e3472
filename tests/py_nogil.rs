//! Python frames for native allocations made with the GIL released (issue 13, part A): real
//! native code (a C extension, a C library through ctypes, a PyO3 extension, a native pthread)
//! run by a real interpreter of each supported version, 3.8 to 3.13, under the real
//! libmemshim.so. A sample carries the Python frames of the thread that allocates, whether or
//! not it holds the GIL, and never another thread's: a thread without a thread state gets
//! native frames only, and once the interpreter finalizes only the finalizing thread's samples
//! carry Python frames.
//!
//! The interpreters are those of tests/py_versions.rs (3.9 and 3.13 from Debian, provisioned by
//! scripts/python-versions.sh, 3.13 run in its chroot; the others pyenv's), found the same way;
//! a missing one is skipped (under CI: fails) in one line. The PyO3 extension uses the stable ABI
//! (abi3, 3.8+): it is built once per test run with `maturin build` (maturin from PyPI, which
//! scripts/provision.sh installs) into the target dir (`target/pyo3leak`, a no-op build when up
//! to date) from tests/fixtures/py/pyo3leak, whose Cargo.lock pins PyO3 from crates.io.

use memshim_test_support::c_build::compile_to;
use memshim_test_support::dirs::{copy_dir, scratch};
use memshim_test_support::prelude::py;
use memshim_test_support::prelude::shim;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use memshim_format::{Marker, Record};
use py::{bytes_in, first_python, frames, names, python_names, within, worker_of, MIB};
use serde_json::Value;
use shim::{decode, run, shim_so, warnings, Capture, Outcome, TIMEOUT};

/// The sampler's seed for these runs (estimates are checked within 25% of the truth; 1 MiB
/// blocks are sampled with probability 0.86 at the default rate, so the draw matters little).
const SEED: &str = "3";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Version {
    Py38,
    Py39,
    Py310,
    Py311,
    Py312,
    Py313,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::Py38 => "3.8",
            Version::Py39 => "3.9",
            Version::Py310 => "3.10",
            Version::Py311 => "3.11",
            Version::Py312 => "3.12",
            Version::Py313 => "3.13",
        }
    }

    /// Debian's builds (3.9 run from its tree, 3.13 in its chroot); the others are pyenv's.
    fn debian(self) -> bool {
        matches!(self, Version::Py39 | Version::Py313)
    }

    fn available(self) -> bool {
        if self.debian() {
            memshim_test_pythons::provisioned_or_skip(self.name()).is_some()
        } else {
            memshim_test_pythons::pyenv_or_skip(self.name()).is_some()
        }
    }

    fn root(self) -> PathBuf {
        memshim_test_pythons::provisioned(self.name())
    }

    /// `-I` flags for this version's C headers.
    fn includes(self) -> Vec<String> {
        if !self.debian() {
            let py = memshim_test_pythons::pyenv(self.name());
            let prefix = py.parent().unwrap().parent().unwrap().to_path_buf();
            return vec![format!(
                "-I{}/include/python{}",
                prefix.display(),
                self.name()
            )];
        }
        let inc = self.root().join("usr/include");
        vec![
            format!("-I{}/python{}", inc.display(), self.name()),
            "-idirafter".into(),
            inc.display().to_string(),
        ]
    }

    /// Runs `script` (a file of `dir`) with `args` under the shim at `rate` (None: the
    /// default), capturing into `dir`, as tests/py_versions.rs does.
    fn run(self, dir: &Path, script: &Path, args: &[&str], rate: Option<&str>) -> Outcome {
        let tmpl = dir.join("memshim.%p.msh");
        let mut c;
        if self == Version::Py313 {
            let root = self.root();
            std::fs::create_dir_all(root.join(dir.strip_prefix("/").unwrap())).unwrap();
            let so = dir.join("libmemshim.so");
            std::fs::copy(shim_so(), &so).unwrap();
            c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(
                    "d=$1 r=$2; shift 2; mount --bind \"$d\" \"$r$d\" && \
                     mount -t proc proc \"$r/proc\" && exec chroot \"$r\" \"$@\"",
                )
                .arg("sh")
                .arg(dir)
                .arg(&root)
                .args(["env", "-i", "PATH=/usr/bin:/bin"])
                .arg(format!("LD_PRELOAD={}", so.display()))
                .arg(format!("MEMSHIM_OUTPUT={}", tmpl.display()))
                .arg(format!("MEMSHIM_SEED={SEED}"))
                .arg(format!("MEMSHIM_RATE={}", rate.unwrap_or("512K")))
                .arg(format!("PYTHONPATH={}", dir.display()))
                .args([
                    "PYTHONHASHSEED=0",
                    "PYTHONDONTWRITEBYTECODE=1",
                    "python3.13",
                ]);
        } else {
            c = Command::new(env!("CARGO_BIN_EXE_memshim"));
            let python = if self == Version::Py39 {
                // bullseye's libffi7 (for ctypes) sits in the tree: scripts/python-versions.sh.
                c.env("PYTHONHOME", self.root().join("usr")).env(
                    "LD_LIBRARY_PATH",
                    self.root().join("usr/lib/x86_64-linux-gnu"),
                );
                self.root().join("usr/bin/python3.9")
            } else {
                memshim_test_pythons::pyenv(self.name())
            };
            c.current_dir(dir)
                .env("PYTHONPATH", dir)
                .env("PYTHONHASHSEED", "0")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .args(["run", "--seed", SEED, "-o"])
                .arg(&tmpl);
            if let Some(r) = rate {
                c.args(["--rate", r]);
            }
            c.arg("--").arg(python);
        }
        for k in [
            "LD_PRELOAD",
            "MEMSHIM_RATE",
            "MEMSHIM_OUTPUT",
            "MEMSHIM_SEED",
        ] {
            c.env_remove(k);
        }
        c.arg(script).args(args);
        let o = run(c, dir, "run", TIMEOUT);
        if self == Version::Py313 {
            let _ = std::fs::remove_dir(self.root().join(dir.strip_prefix("/").unwrap()));
        }
        assert!(o.success(), "{} {}: {o:?}", self.name(), script.display());
        assert_eq!(o.stdout.trim(), "done", "{o:?}");
        assert!(
            !o.stderr.contains("native frames only"),
            "{} refused: {}",
            self.name(),
            o.stderr
        );
        if self == Version::Py313 {
            assert_eq!(warnings(&o.stderr), Vec::<&str>::new());
        }
        o
    }
}

/// Compiles `cc -shared -fPIC -O0 -g FLAGS tests/fixtures/py/SRC -o DIR/OUT`.
fn cc(src: &str, flags: &[String], out: &Path) {
    let base = ["-shared", "-fPIC", "-O0", "-g", "-pthread"].map(String::from);
    compile_to(out, &py::fixture(src), &[&base[..], flags].concat(), &[]);
}

/// tests/fixtures/py/nogil.c built against `v`'s headers as `nogil.so` in `dir`.
fn build_nogil(v: Version, dir: &Path) {
    cc("nogil.c", &v.includes(), &dir.join("nogil.so"));
}

/// The PyO3 extension (abi3: one build for every version), built once per test run with
/// `maturin build` (maturin from PyPI, PyO3 from crates.io, pinned by the fixture's Cargo.lock)
/// into the target dir, and its wheel unpacked: the directory holding the `pyo3leak` package.
/// None (skipped, in one line; under CI a failure) without maturin.
fn pyo3_extension() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let py = py::python();
            let has_maturin = Command::new(&py)
                .args(["-m", "maturin", "--version"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !has_maturin {
                memshim_test_pythons::Missing::new(
                    format!("maturin for {}", py.display()),
                    "pip install maturin; scripts/provision.sh installs it",
                )
                .skip();
                return None;
            }
            let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .join("pyo3leak");
            let wheels = target.join("wheels");
            let _ = std::fs::remove_dir_all(&wheels);
            let o = Command::new(&py)
                .args(["-m", "maturin", "build", "--release", "--locked", "-m"])
                .arg(py::fixture("pyo3leak/Cargo.toml"))
                .arg("-i")
                .arg(&py)
                .arg("--out")
                .arg(&wheels)
                // A no-op build when up to date (a second or two).
                .env("CARGO_TARGET_DIR", &target)
                .env_remove("RUSTFLAGS")
                .output()
                .expect("maturin runs");
            assert!(
                o.status.success(),
                "maturin build of the PyO3 extension failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            let site = target.join("site");
            let _ = std::fs::remove_dir_all(&site);
            // A wheel is a zip file: unpacked with the machine's Python.
            let st = Command::new(&py)
                .args([
                    "-c",
                    "import glob, sys, zipfile; \
                     [w] = glob.glob(sys.argv[1] + '/pyo3leak-*.whl'); \
                     zipfile.ZipFile(w).extractall(sys.argv[2])",
                ])
                .arg(&wheels)
                .arg(&site)
                .status()
                .unwrap();
            assert!(st.success(), "unpacking the pyo3leak wheel failed");
            Some(site)
        })
        .as_deref()
}

/// Runs fixture `name` (copied into a fresh directory, after `prepare`) with `v` at `rate`;
/// returns its one capture.
fn capture_of(
    v: Version,
    tag: &str,
    name: &str,
    args: &[&str],
    rate: Option<&str>,
    prepare: impl FnOnce(&Path),
) -> PathBuf {
    let dir = scratch(&format!("{v:?}-{tag}"));
    let script = dir.join(name);
    std::fs::copy(py::fixture(name), &script).unwrap();
    prepare(&dir);
    v.run(&dir, &script, args, rate);
    let caps = py::capture_paths(&dir);
    assert_eq!(caps.len(), 1, "one process, one capture: {caps:?}");
    caps.into_iter().next().unwrap()
}

/// The JSON report of a capture, with every site.
fn report(cap: &Path) -> Value {
    let o = py::memshim()
        .args(["report", "--format", "json", "--top", "1000"])
        .arg(cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The site of `ranking` holding most of the bytes whose innermost Python frame is `caller`.
fn top_site_of<'a>(ranking: &'a Value, caller: &str) -> &'a Value {
    ranking
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| first_python(s).is_some_and(|f| f["function"] == caller))
        .max_by(|a, b| {
            a["bytes_est"]
                .as_f64()
                .partial_cmp(&b["bytes_est"].as_f64())
                .unwrap()
        })
        .unwrap_or_else(|| panic!("no site with {caller} innermost: {ranking:#}"))
}

/// Checks a leak of 48 MiB from native function `native` (in a file ending with `native_file`,
/// when given), called by Python function `caller` at `file`:`line`: the native function,
/// then the Python caller, and the estimate within 25%.
fn check_native_leak(
    r: &Value,
    tag: &str,
    native: &str,
    native_file: Option<&str>,
    caller: &str,
    file: &str,
    line: u64,
) {
    let site = top_site_of(&r["leaks"], caller);
    let n = names(site);
    let at = |f: &str| {
        n.iter()
            .position(|x| x.contains(f))
            .unwrap_or_else(|| panic!("{tag}: {f} in {n:?}"))
    };
    assert!(at(native) < at(caller), "{tag}: {n:?}");
    if let Some(nf) = native_file {
        let f = &frames(site)[at(native)];
        assert_eq!(f["kind"], "native", "{tag}: {f}");
        assert!(f["file"].as_str().unwrap_or("").ends_with(nf), "{tag}: {f}");
    }
    let py = &frames(site)[at(caller)];
    assert_eq!(py["kind"], "python", "{tag}: {py}");
    assert!(py["file"].as_str().unwrap().ends_with(file), "{tag}: {py}");
    assert_eq!(py["line"], line, "{tag}: the line of the call in {caller}");
    let est = bytes_in(&r["leaks"], caller);
    assert!(
        within(est, 48.0 * MIB, 0.25),
        "{tag}: {caller} leaked {est} vs 48 MiB"
    );
}

/// The Python function names of each stack of a capture (innermost first), from its PyCode and
/// Stack records: what each sample carried, without symbolizing anything.
fn python_stacks(cap: &Capture) -> HashMap<u64, Vec<String>> {
    let codes: HashMap<u64, String> = cap
        .records
        .iter()
        .filter_map(|r| match r {
            Record::PyCode(c) => Some((c.id, c.name.clone())),
            _ => None,
        })
        .collect();
    cap.records
        .iter()
        .filter_map(|r| match r {
            Record::Stack { id, python, .. } => Some((
                *id,
                python
                    .iter()
                    .filter(|f| f.code != memshim_format::PyFrame::NO_FRAME)
                    .map(|f| codes.get(&f.code).cloned().unwrap_or_else(|| "?".into()))
                    .collect(),
            )),
            _ => None,
        })
        .collect()
}

/// Asserts that every sample of `cap` carries the frames of one thread only, and of its own:
/// each thread (tid) is seen with at most one of `funcs` over all its samples, and no sample
/// has two. Returns, per function of `funcs`, the samples that carried it.
fn each_thread_its_own_frames(cap: &Capture, funcs: &[String], tag: &str) -> Vec<usize> {
    let stacks = python_stacks(cap);
    let funcs_ref: Vec<&str> = funcs.iter().map(|s| s.as_str()).collect();
    let mut owner: HashMap<u32, usize> = HashMap::new();
    let mut counts = vec![0; funcs.len()];
    for a in cap.allocs() {
        let pn = &stacks[&a.stack];
        let Some(k) = worker_of(pn, &funcs_ref) else {
            continue;
        };
        counts[k] += 1;
        let first = *owner.entry(a.tid).or_insert(k);
        assert_eq!(
            first, k,
            "{tag}: thread {} carried {} and then {}: {pn:?}",
            a.tid, funcs[first], funcs[k]
        );
    }
    let threads: HashSet<usize> = owner.values().copied().collect();
    assert_eq!(
        threads.len(),
        owner.len(),
        "{tag}: two threads carried the same function's frames: {owner:?}"
    );
    counts
}

// ---- the behaviours, per version ----

/// A C extension that allocates between Py_BEGIN_ALLOW_THREADS and Py_END_ALLOW_THREADS, called
/// at once from the main thread and two named threads: each leak names its own caller.
fn c_extension_with_the_gil_released(v: Version) {
    if !v.available() {
        return;
    }
    let cap = capture_of(v, "nogil", "nogil_threads.py", &[], None, |d| {
        build_nogil(v, d)
    });
    let r = report(&cap);
    let tag = format!("{} nogil_threads", v.name());
    for (caller, line) in [
        ("from_main", 14),
        ("from_loader_a", 20),
        ("from_loader_b", 26),
    ] {
        check_native_leak(
            &r,
            &tag,
            "stash_nogil",
            Some("nogil.c"),
            caller,
            "nogil_threads.py",
            line,
        );
        let n = names(top_site_of(&r["leaks"], caller));
        let at = |f: &str| n.iter().position(|x| x == f);
        assert!(at("nogil_leak") < at(caller), "{tag}: {n:?}");
    }
    // No leak site carries two callers (each thread its own frames).
    for site in r["leaks"].as_array().unwrap() {
        worker_of(
            &python_names(site),
            &["from_main", "from_loader_a", "from_loader_b"],
        );
    }
    let decoded = decode(&cap);
    decoded.assert_complete();
    let callers: Vec<String> = ["from_main", "from_loader_a", "from_loader_b"]
        .map(String::from)
        .to_vec();
    let counts = each_thread_its_own_frames(&decoded, &callers, &tag);
    assert!(counts.iter().all(|&c| c > 0), "{tag}: {counts:?}");
}

/// A plain C library called through ctypes.CDLL (the GIL released around the call) from a
/// worker thread: the leak names the worker's Python function and line.
fn ctypes_call_from_a_worker(v: Version) {
    if !v.available() {
        return;
    }
    if v == Version::Py39 && !v.root().parent().unwrap().join("ok-ffi").exists() {
        // A tree provisioned before libffi7 was part of it.
        memshim_test_pythons::Missing::new(
            "libffi7 in the CPython 3.9 tree",
            "run scripts/provision.sh as root (scripts/python-versions.sh adds it)",
        )
        .skip();
        return;
    }
    let cap = capture_of(v, "ctypes", "ctypes_leak.py", &[], None, |d| {
        cc("cleak.c", &[], &d.join("libcleak.so"));
    });
    let r = report(&cap);
    check_native_leak(
        &r,
        &format!("{} ctypes", v.name()),
        "cleak_stash",
        Some("cleak.c"),
        "ctypes_worker",
        "ctypes_leak.py",
        14,
    );
}

/// A PyO3 extension that allocates inside `allow_threads`: the leak names the Rust function and
/// then the Python caller.
fn rust_extension_inside_allow_threads(v: Version) {
    if !v.available() {
        return;
    }
    let Some(site) = pyo3_extension() else {
        return;
    };
    let cap = capture_of(v, "pyo3", "pyo3_leak.py", &[], None, |d| {
        copy_dir(&site.join("pyo3leak"), &d.join("pyo3leak"));
    });
    let r = report(&cap);
    check_native_leak(
        &r,
        &format!("{} pyo3", v.name()),
        "stash_rust",
        None,
        "from_rust",
        "pyo3_leak.py",
        9,
    );
}

/// A pthread a C extension starts (no thread state) leaks while Python threads allocate, one
/// of them with the GIL released: its samples carry native frames only, theirs their own.
fn native_thread_without_a_thread_state(v: Version) {
    if !v.available() {
        return;
    }
    let cap = capture_of(v, "native", "native_thread.py", &[], None, |d| {
        build_nogil(v, d)
    });
    let r = report(&cap);
    let tag = format!("{} native thread", v.name());
    let native: Vec<&Value> = r["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| names(s).iter().any(|n| n == "native_stash"))
        .collect();
    assert!(!native.is_empty(), "{tag}: no leak from native_stash");
    for s in &native {
        assert_eq!(
            python_names(s),
            Vec::<String>::new(),
            "{tag}: the native thread's sample carries Python frames"
        );
    }
    let est: f64 = native
        .iter()
        .map(|s| s["bytes_est"].as_f64().unwrap())
        .sum();
    assert!(within(est, 48.0 * MIB, 0.25), "{tag}: {est} vs 48 MiB");
    // The Python threads' samples, the one with the GIL released too, carry their own frames.
    let workers = ["work_alpha", "work_beta", "work_gamma"];
    let mut seen = [0.0f64; 3];
    for site in r["allocations"].as_array().unwrap() {
        let pn = python_names(site);
        if let Some(k) = worker_of(&pn, &workers) {
            assert_eq!(pn[0], workers[k], "{tag}: {pn:?}");
            seen[k] += site["bytes_est"].as_f64().unwrap();
        }
    }
    for (k, size) in [40000.0, 50000.0, 60000.0].into_iter().enumerate() {
        assert!(
            within(seen[k], 1500.0 * size, 0.25),
            "{tag}: {} {} vs {}",
            workers[k],
            seen[k],
            1500.0 * size
        );
    }
    let decoded = decode(&cap);
    let workers: Vec<String> = workers.map(String::from).to_vec();
    each_thread_its_own_frames(&decoded, &workers, &tag);
}

/// 8 threads alternating between allocating with the GIL held and released, every allocation
/// recorded: every sample's Python frames are its own thread's, released or not.
fn eight_threads_alternating_gil_at_rate_all(v: Version) {
    if !v.available() {
        return;
    }
    let cap = capture_of(v, "stress", "gil_stress.py", &[], Some("all"), |d| {
        build_nogil(v, d)
    });
    let tag = format!("{} stress", v.name());
    let decoded = decode(&cap);
    decoded.assert_complete();
    let funcs: Vec<String> = (0..8).map(|k| format!("stress_{k}")).collect();
    let counts = each_thread_its_own_frames(&decoded, &funcs, &tag);
    // Each thread's 2500 churn calls (half of them with the GIL released) are all recorded
    // with its frames.
    for (k, c) in counts.iter().enumerate() {
        assert!(*c >= 2500, "{tag}: stress_{k} carried by {c} samples");
    }
    // Both kinds of allocation carry the thread's helper and its caller, in order.
    let r = report(&cap);
    for native in ["churn_released", "churn_held"] {
        let mut found = HashSet::new();
        for site in r["allocations"].as_array().unwrap() {
            let n = names(site);
            if !n.iter().any(|x| x == native) {
                continue;
            }
            let pn = python_names(site);
            let k = worker_of(&pn, &funcs.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                .unwrap_or_else(|| panic!("{tag}: {native} without its thread's frames: {n:?}"));
            assert_eq!(pn[..2], [format!("churn_{k}"), funcs[k].clone()], "{tag}");
            found.insert(k);
        }
        assert_eq!(found.len(), 8, "{tag}: {native} seen in {found:?}");
    }
}

/// Daemon threads allocating with the GIL released (and held) while the interpreter exits, run
/// a few times: the process exits as without the shim, its capture is complete, no sample
/// carries another thread's frames, daemon samples well after finalization began carry none,
/// and the finalizing thread's (in a `__del__` run by finalization) carry its own.
fn daemon_threads_while_exiting(v: Version) {
    if !v.available() {
        return;
    }
    for round in 0..3 {
        let cap = capture_of(
            v,
            &format!("daemon{round}"),
            "daemon_exit.py",
            &[],
            Some("64K"),
            |d| build_nogil(v, d),
        );
        let tag = format!("{} daemons, round {round}", v.name());
        let decoded = decode(&cap);
        decoded.assert_complete();
        let funcs: Vec<String> = (0..4).map(|k| format!("daemon_{k}")).collect();
        let counts = each_thread_its_own_frames(&decoded, &funcs, &tag);
        assert!(counts.iter().all(|&c| c > 0), "{tag}: {counts:?}");
        let stacks = python_stacks(&decoded);
        let main_tid = decoded.header.pid;
        let fin = decoded
            .records
            .iter()
            .find_map(|r| match r {
                Record::Marker {
                    t,
                    marker: Marker::PythonFinalizing,
                } => Some(*t),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{tag}: no finalizing marker"));
        let (mut late, mut finalizer) = (0, 0);
        for a in decoded.allocs() {
            let pn = &stacks[&a.stack];
            if a.tid == main_tid && a.t > fin && pn.first().is_some_and(|n| n == "__del__") {
                // The finalizing thread keeps its frames while it holds the GIL.
                finalizer += 1;
            }
            if a.tid != main_tid {
                assert!(
                    !pn.iter().any(|n| n == "main" || n == "<module>"),
                    "{tag}: a daemon carries the main thread's frames: {pn:?}"
                );
                // 20 ms: far more than a read takes, and than the coarse clock's tick.
                if a.t > fin + 20_000_000 {
                    late += 1;
                    assert!(
                        pn.is_empty(),
                        "{tag}: a daemon's sample after finalization began carries {pn:?}"
                    );
                }
            }
        }
        // The daemons allocate all through the finalizer's 0.15 s.
        assert!(
            late > 0,
            "{tag}: no daemon sample well after finalization began"
        );
        assert!(
            finalizer > 0,
            "{tag}: no sample of the finalizer with its frames"
        );
    }
}

macro_rules! per_version {
    ($($test:ident => $f:ident;)*) => {
        mod py38 { use super::*; $(#[test] fn $test() { $f(Version::Py38) })* }
        mod py39 { use super::*; $(#[test] fn $test() { $f(Version::Py39) })* }
        mod py310 { use super::*; $(#[test] fn $test() { $f(Version::Py310) })* }
        mod py311 { use super::*; $(#[test] fn $test() { $f(Version::Py311) })* }
        mod py312 { use super::*; $(#[test] fn $test() { $f(Version::Py312) })* }
        mod py313 { use super::*; $(#[test] fn $test() { $f(Version::Py313) })* }
    };
}

per_version! {
    c_extension_leak_with_the_gil_released_names_each_threads_own_caller
        => c_extension_with_the_gil_released;
    ctypes_leak_from_a_worker_thread_names_the_worker_function_and_line
        => ctypes_call_from_a_worker;
    rust_extension_leak_inside_allow_threads_names_the_python_caller
        => rust_extension_inside_allow_threads;
    native_thread_without_a_thread_state_gets_native_frames_only
        => native_thread_without_a_thread_state;
    eight_threads_alternating_gil_each_sample_carries_its_own_frames
        => eight_threads_alternating_gil_at_rate_all;
    daemon_threads_allocating_during_exit_no_crash_and_no_wrong_frames
        => daemon_threads_while_exiting;
}
