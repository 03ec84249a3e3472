//! What a newcomer meets first: the README's sample output and install steps, what the export
//! commands say, usage errors, truncated captures, reports of a run with wrapper processes, and
//! how scripts/test.sh counts and names what it could not test.

use memshim_test_support::c_build::python_extension;
use memshim_test_support::dirs::repo;
use memshim_test_support::prelude::cli::*;
use memshim_test_support::python::python;
use std::path::{Path, PathBuf};
use std::process::Command;

use memshim_format::Record;
use memshim_test_pythons::{or_skip, Missing, SKIP_MARKER};

/// The repository's root.
/// libmemshim.so next to the memshim binary (`cargo build --release --workspace` builds both),
/// or `None` with the test skipped (failed under CI), saying so.
fn shim_beside_memshim() -> Option<PathBuf> {
    let so = Path::new(env!("CARGO_BIN_EXE_memshim")).with_file_name("libmemshim.so");
    if so.exists() {
        return Some(so);
    }
    Missing::new(
        so.display().to_string(),
        "run `cargo build --release --workspace` first",
    )
    .skip();
    None
}

// --- 3. The README's sample output ---------------------------------------------------------

/// The lines of the README's first `text` block.
fn readme_sample() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("```text\n").expect("a text block in README.md") + 8;
    let len = readme[start..].find("```").expect("the block ends");
    readme[start..start + len]
        .lines()
        .map(str::to_string)
        .collect()
}

/// Digits masked: runs of digits become one `0` (numbers differ from run to run).
fn mask(line: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('0');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// A README line matches a line of output when they are equal with digits masked, where the
/// README's `…/` stands for the leading directories of a path (no spaces, ends in `/`).
fn matches(readme: &str, real: &str) -> bool {
    let (readme, real) = (mask(readme), mask(real));
    match readme.split_once("…/") {
        None => readme == real,
        Some((before, after)) => {
            real.len() >= before.len() + after.len()
                && real.starts_with(before)
                && real.ends_with(after)
                && {
                    let mid = &real[before.len()..real.len() - after.len()];
                    mid.ends_with('/') && !mid.contains([' ', '(', ')'])
                }
        }
    }
}

/// Checks that `sample`'s lines are in `real`, in order: each run of lines between `...` lines
/// stands for consecutive lines of the output. Returns what did not match.
fn sample_mismatch(sample: &[String], real: &[&str]) -> Option<String> {
    let mut at = 0;
    for group in sample.split(|l| l.trim() == "...") {
        if group.is_empty() {
            continue;
        }
        let found = (at..real.len()).find(|&i| {
            i + group.len() <= real.len()
                && group
                    .iter()
                    .zip(&real[i..i + group.len()])
                    .all(|(s, r)| matches(s, r))
        });
        match found {
            Some(i) => at = i + group.len(),
            None => {
                return Some(format!(
                    "these README lines are not in the output, in this order:\n{}",
                    group.join("\n")
                ))
            }
        }
    }
    None
}

#[test]
fn readme_sample_lines_match_by_shape_and_path_tail() {
    assert!(matches(
        "  1. 61.5 MiB in 3789 allocations",
        "  1. 63.0 MiB in 3897 allocations"
    ));
    assert!(matches(
        "       cfunction_call (…/Objects/methodobject.c:553)",
        "       cfunction_call (/tmp/python-build.1/Python-3.11.7/Objects/methodobject.c:553)"
    ));
    assert!(!matches(
        "       cfunction_call (…/Objects/methodobject.c:553)",
        "       cfunction_call (/tmp/b/Objects/call.c:553)"
    ));
    assert!(!matches(
        "       handle (…/demo/serve.py:15)",
        "       main (/x/demo/serve.py:15)"
    ));
    let sample: Vec<String> = ["a 1", "...", "b 2", "c 3"].map(String::from).into();
    assert_eq!(sample_mismatch(&sample, &["a 9", "x", "b 1", "c 2"]), None);
    assert!(sample_mismatch(&sample, &["a 9", "b 1", "x", "c 2"]).is_some());
    assert!(sample_mismatch(&sample, &["b 1", "c 2", "a 9"]).is_some());
}

/// The demo's steps (scripts/demo.sh): build demo/leakyext.c for the real interpreter, `memshim
/// run --seed 1 -- python demo/serve.py`, `memshim report --top 5`; the README's sample block
/// must be what they print (numbers aside), so it cannot go stale.
#[test]
fn readme_sample_output_is_what_the_demo_prints() {
    or_skip!(shim_beside_memshim());
    let out = scratch("demo");
    let py = python();
    python_extension(&out, &py, &repo().join("demo/leakyext.c"), "-O1", &[]);
    let ran = memshim()
        .current_dir(&out)
        .env("PYTHONPATH", &out)
        .env_remove("MEMSHIM_OUTPUT")
        .args(["run", "--seed", "1", "--"])
        .arg(&py)
        .arg(repo().join("demo/serve.py"))
        .output()
        .expect("memshim run runs");
    assert!(ran.status.success(), "{}", stderr(&ran));
    let caps: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msh"))
        .collect();
    assert_eq!(caps.len(), 1, "{caps:?}");
    let report = run(&["report", caps[0].to_str().unwrap(), "--top", "5"]);
    assert!(report.status.success(), "{}", stderr(&report));
    let text = format!("{}{}", stdout(&ran), stdout(&report));
    // Whether the steady leak is also called growing depends on how long the run took (the
    // machine's load), and both are true of the demo: the README shows "leaked".
    let text = text.replace(", leaked and growing", ", leaked");
    let real: Vec<&str> = text.lines().collect();
    let sample = readme_sample();
    assert!(
        sample.iter().any(|l| l.starts_with("== Leaks:")) && sample.len() >= 6,
        "the README's sample shows the leak header and its frames: {sample:?}"
    );
    if let Some(why) = sample_mismatch(&sample, &real) {
        panic!("README.md's sample output is stale: {why}\n\nthe demo printed:\n{text}");
    }
}

// --- 4. Getting memshim on PATH --------------------------------------------------------------

/// README: `cargo install --path .` puts memshim in ~/.cargo/bin and the shim goes in
/// ~/.cargo/lib/memshim/; a memshim laid out so (bin/ and lib/memshim/) runs a program under the
/// shim without MEMSHIM_LIB.
#[test]
fn installed_memshim_finds_the_shim_in_lib_memshim_as_the_readme_says() {
    let so = or_skip!(shim_beside_memshim());
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.contains("cargo install --path ."),
        "README says how to install"
    );
    assert!(
        readme
            .contains("install -D target/release/libmemshim.so ~/.cargo/lib/memshim/libmemshim.so"),
        "README says where the shim goes"
    );
    let prefix = scratch("installed");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("lib/memshim")).unwrap();
    let exe = prefix.join("bin/memshim");
    std::fs::copy(env!("CARGO_BIN_EXE_memshim"), &exe).unwrap();
    std::fs::copy(&so, prefix.join("lib/memshim/libmemshim.so")).unwrap();
    let o = Command::new(&exe)
        .current_dir(&prefix)
        .env_remove("MEMSHIM_LIB")
        .env_remove("MEMSHIM_OUTPUT")
        .args(["run", "--rate", "all", "--"])
        .arg(python())
        .args(["-c", "x = [bytes(10000) for _ in range(100)]"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("1 capture written"), "{err}");
    let caps = std::fs::read_dir(&prefix)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "msh")
        })
        .count();
    assert_eq!(caps, 1);
}

// --- 5. Exports say what they wrote ---------------------------------------------------------

fn small_capture(dir: &Path) -> PathBuf {
    let p = dir.join("small.msh");
    let mut c = SyntheticCapture::new(&header(0));
    c.push(Record::Modules(vec![fake_module(
        "/opt/libx.so",
        0x7000_0000,
    )]));
    c.push(stack(1, &[0x7000_0100, 0x7000_0200]));
    c.push(stack(2, &[0x7000_0300, 0x7000_0200]));
    c.push(tick(10, 8 << 20, 4 << 20));
    for i in 0..16 {
        c.push(alloc(100 + i, 0x10_0000 + i * 0x1000, 1 << 20, 1 + i % 2));
    }
    c.push(tick(1_000, 24 << 20, 20 << 20));
    c.end(2_000);
    c.write(&p);
    p
}

#[test]
fn each_export_says_in_one_line_what_it_wrote_where() {
    let d = scratch("exports");
    let cap = small_capture(&d);
    let cap = cap.to_str().unwrap();
    for (args, out, what) in [
        (
            &["flamegraph", cap, "--kind", "leaks"][..],
            "flame.svg",
            "flamegraph of leaks of pid 4242, 2 stacks, 16.0 MiB",
        ),
        (
            &["timeline", cap],
            "timeline.svg",
            "timeline of pid 4242, 2 points over 0.00 s, peak RSS 24.0 MiB, peak live 16.0 MiB",
        ),
        (
            &["pprof", cap],
            "heap.pb.gz",
            "pprof heap profile of pid 4242, 2 stacks, 16.0 MiB allocated, 16.0 MiB in use",
        ),
        (
            &["html", cap],
            "page.html",
            "page of pid 4242: summary, timeline and flamegraphs of leaks (16.0 MiB), peak \
             (16.0 MiB) and allocations (16.0 MiB)",
        ),
    ] {
        let path = d.join(out);
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["-o", path.to_str().unwrap()]);
        let o = run(&a);
        assert!(o.status.success(), "{a:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{a:?}");
        let said = stdout(&o);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size > 0);
        let line = said.strip_suffix('\n').expect("one line");
        assert!(!line.contains('\n'), "one line: {said}");
        let (head, tail) = line.split_once("): ").expect("`wrote PATH (SIZE): WHAT`");
        assert!(
            head.starts_with(&format!("wrote {} (", path.display())),
            "{a:?}: {line}"
        );
        assert!(head.ends_with("B") || head.ends_with("KiB"), "{line}");
        assert_eq!(tail, what, "{a:?}");
    }
}

// --- 6. A missing argument is named -----------------------------------------------------------

#[test]
fn a_missing_argument_is_named_in_the_one_line_error() {
    for (args, named) in [
        (&["flamegraph", "x.msh"][..], "--output <OUTPUT>"),
        (&["report"], "<CAPTURES>..."),
        (&["timeline"], "--output <OUTPUT>, <CAPTURE>"),
        (&["run"], "<COMMAND>"),
    ] {
        let o = run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("memshim: error: the following required arguments were not provided: "),
            "{err}"
        );
        assert!(err.contains(named), "{args:?} names {named}: {err}");
        assert!(err.trim_end().ends_with("(see memshim --help)"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

// --- 7. Truncated captures say how much was readable ----------------------------------------

fn chunked_capture() -> SyntheticCapture {
    let mut c = SyntheticCapture::new(&header(0));
    c.per_chunk = 4;
    c.push(stack(1, &[0x10]));
    for i in 0..12 {
        c.push(alloc(i * 10, 0x1000 + i * 64, 64, 1));
    }
    c.end(1_000);
    c
}

#[test]
fn a_capture_cut_inside_its_first_chunk_is_an_error_saying_nothing_is_readable() {
    let d = scratch("cut-first");
    let header_len = SyntheticCapture::new(&header(0)).bytes.len();
    let c = chunked_capture();
    let p = d.join("cut.msh");
    std::fs::write(&p, &c.bytes[..header_len + 10]).unwrap();
    for cmd in ["report", "stats", "flamegraph"] {
        let mut args = vec![cmd, p.to_str().unwrap()];
        if cmd == "flamegraph" {
            args.extend(["-o", "/dev/null"]);
        }
        let o = run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {err}");
        assert_eq!(err.lines().count(), 1, "{cmd}: {err}");
        assert_eq!(stdout(&o), "", "{cmd}: no empty report");
        assert!(
            err.starts_with("memshim: error: ") && err.contains("nothing readable"),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "only the {header_len}-byte header of the file's {} bytes decodes",
                header_len + 10
            )),
            "{err}"
        );
    }
}

#[test]
fn a_truncated_capture_warns_with_the_bytes_decoded_of_the_files_total() {
    let d = scratch("cut-later");
    let c = chunked_capture();
    let p = d.join("cut.msh");
    let cut = c.bytes.len() - 5;
    std::fs::write(&p, &c.bytes[..cut]).unwrap();
    let stats = run(&["stats", "--json", p.to_str().unwrap()]);
    assert!(stats.status.success(), "{}", stderr(&stats));
    let v: serde_json::Value = serde_json::from_str(&stdout(&stats)).unwrap();
    let decoded = v["bytes_read"].as_u64().unwrap();
    assert_eq!(v["file_bytes"], cut as u64);
    assert!(
        decoded < cut as u64,
        "the chunk cut short is not counted: {decoded}"
    );
    let o = run(&["report", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("using {decoded} of the file's {cut} bytes")),
        "{err}"
    );
}

// --- 2. Reports of several processes hide those with nothing to say -------------------------

#[test]
fn report_of_a_template_hides_processes_with_no_sampled_allocation_and_says_how_many() {
    let d = scratch("hidden");
    let mut h = header(0);
    h.pid = 100;
    h.exe = "/usr/bin/python3.11".into();
    let mut c = SyntheticCapture::new(&h);
    c.push(stack(1, &[0x10]));
    for i in 0..8 {
        c.push(alloc(i * 10, 0x1000 + i * 64, 1 << 20, 1));
    }
    c.end(1_000);
    c.write(&d.join("memshim.100.msh"));
    for pid in [101, 102] {
        let mut h = header(0);
        h.pid = pid;
        h.exe = "/usr/bin/bash".into();
        let mut c = SyntheticCapture::new(&h);
        c.push(tick(10, 4 << 20, 1 << 20));
        c.end(100);
        c.write(&d.join(format!("memshim.{pid}.msh")));
    }
    // A process killed before its first complete chunk: skipped, with one warning.
    let c = chunked_capture();
    let header_len = SyntheticCapture::new(&header(0)).bytes.len();
    std::fs::write(d.join("memshim.103.msh"), &c.bytes[..header_len + 10]).unwrap();
    let tmpl = d.join("memshim.%p.msh");
    let o = run(&["report", tmpl.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("memshim.103.msh: truncated capture with nothing readable")
            && err.ends_with("; skipped\n"),
        "{err}"
    );
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("memshim report: 1 process"));
    assert_eq!(
        lines.next(),
        Some("  2 more processes hidden, with no sampled allocation: bash (pid 101, 102)")
    );
    assert!(out.contains("memshim.100.msh"));
    assert!(
        !out.contains("memshim.101.msh") && !out.contains("memshim.102.msh"),
        "{out}"
    );
    let o = run(&["report", "--format", "json", tmpl.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["processes"].as_array().unwrap().len(), 1);
    assert_eq!(v["hidden"].as_array().unwrap().len(), 2);
    assert_eq!(v["hidden"][0]["pid"], 101);
    // One capture named alone is reported whatever it holds.
    let o = run(&["report", d.join("memshim.101.msh").to_str().unwrap()]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("pid 101"));
}

/// A real wrapper: a shell script that works out a few things (`$(...)`: forked shells with no
/// allocation of their own) and then starts Python is profiled too; the shells that never
/// sampled leave no capture, and the report shows what is left.
#[test]
fn a_run_through_a_shell_wrapper_leaves_no_capture_for_shells_that_never_sampled() {
    or_skip!(shim_beside_memshim());
    let d = scratch("wrapper");
    let py = python();
    let o = memshim()
        .current_dir(&d)
        .env_remove("MEMSHIM_OUTPUT")
        .args(["run", "--seed", "1", "--", "bash", "-c"])
        .arg(format!(
            "x=$(seq 1 200000); n=$(echo \"$x\" | wc -l); v=$(echo a); \
             \"{}\" -c 'x = [bytes(100000) for _ in range(300)]'; true",
            py.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let captures = std::fs::read_dir(&d).unwrap().count();
    let r = run(&["report", d.join("memshim.%p.msh").to_str().unwrap()]);
    assert!(r.status.success(), "{}", stderr(&r));
    let out = stdout(&r);
    let lines: Vec<&str> = out.lines().collect();
    let shown: usize = lines[0]
        .strip_prefix("memshim report: ")
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // The `$(...)` shells never sample, so they leave no file at all (the shim's rule); what
    // is left has something to say, and is shown.
    assert!(!out.contains("hidden"), "{out}");
    assert_eq!(shown, captures, "{out}");
    assert!(
        captures < 5,
        "no capture for the forked shells: {captures}\n{out}"
    );
    assert!(out.contains("python"), "{out}");
}

/// Runs scripts/test-summary.py on a cargo log and a skip file; returns (exit code, output).
fn summary(log: &str, skips: &str, cargo_rc: i32) -> (i32, String) {
    let d = scratch(&format!(
        "summary-{}",
        log.len() + skips.len() + cargo_rc as usize
    ));
    std::fs::write(d.join("log"), log).unwrap();
    std::fs::write(d.join("skips"), skips).unwrap();
    let o = Command::new("python3")
        .arg(repo().join("scripts/test-summary.py"))
        .arg(d.join("log"))
        .arg(d.join("skips"))
        .arg(cargo_rc.to_string())
        .output()
        .expect("python3 runs");
    (o.status.code().unwrap_or(-1), stdout(&o))
}

const LOG: &str = "\
     Running unittests src/lib.rs (target/release/deps/memshim_shim-1a2b)
running 3 tests
test python::layout::tests::py38_layout ... FAILED
test python::layout::tests::py311_layout ... ok
test ring::tests::wraps ... ok
test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out
error: test failed, to rerun pass `-p memshim-shim --lib`
     Running tests/py_versions.rs (target/release/deps/py_versions-3c4d)
running 2 tests
test py37_is_refused ... ok
test py39_leak ... ok
test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out
";

#[test]
fn test_summary_counts_skips_as_skipped_and_ends_with_the_line_ci_reads() {
    let skips = "memshim_shim-1a2b\tpython::layout::tests::py38_layout\tCPython 3.8 from pyenv\t\
                 CPython 3.8 from pyenv is missing (none in /x)\n\
                 py_versions-3c4d\tpy37_is_refused\tCPython 3.7 from pyenv\t\
                 CPython 3.7 from pyenv is missing (none in /x)\n";
    let (rc, out) = summary(LOG, skips, 101);
    assert_eq!(rc, 0, "only skips: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"memshim: 3 passed, 0 failed, 2 skipped"),
        "{out}"
    );
    assert!(lines.contains(&"missing: CPython 3.7 from pyenv, CPython 3.8 from pyenv"));
    assert!(lines.contains(
        &"SKIPPED py_versions-3c4d py37_is_refused: CPython 3.7 from pyenv is missing (none in /x)"
    ));
    // Under CI nothing is recorded: the test that could not find its interpreter failed.
    let (rc, out) = summary(LOG, "", 101);
    assert_eq!(rc, 1);
    assert_eq!(
        out.lines().last(),
        Some("memshim: 4 passed, 1 failed, 0 skipped")
    );
    // A binary that died without its result line is a failure, as is a cargo failure with no
    // failed test to show (a build error).
    let died =
        format!("{LOG}     Running tests/cli_x.rs (target/release/deps/cli_x-9)\nrunning 1 test\n");
    let (rc, out) = summary(&died, skips, 101);
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("FAILED  cli_x-9 (the whole binary)"), "{out}");
    let (rc, _) = summary("error: could not compile `memshim`\n", "", 101);
    assert_eq!(rc, 1);
}

/// .ci/run does nothing the README's test command does not: formatting, then scripts/test.sh
/// (which provisions).
#[test]
fn ci_runs_the_readme_test_command_and_provisioning_lives_there() {
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        commands,
        [
            "set -euo pipefail",
            "cd \"$(dirname \"$0\")/..\"",
            "cargo fmt --all -- --check",
            "if cargo clippy --version >/dev/null 2>&1; then",
            "cargo clippy --workspace --all-targets --release -q -- -D warnings",
            "else",
            "echo \"ci: clippy is not installed with this toolchain; lints not checked\"",
            "fi",
            "scripts/test.sh"
        ]
    );
    let test_sh = std::fs::read_to_string(repo().join("scripts/test.sh")).unwrap();
    assert!(test_sh.contains("scripts/provision.sh"));
    assert!(test_sh.contains("--no-fail-fast"));
    let packages = std::fs::read_to_string(repo().join("scripts/test-packages.txt")).unwrap();
    for pkg in ["golang-go", "chromium", "build-essential"] {
        assert!(packages.contains(pkg), "{pkg} in scripts/test-packages.txt");
    }
}

/// Needs pyenv's CPython 3.7: it runs and says it is 3.7. Also the subject of the two tests
/// below, which run it with no pyenv.
#[test]
fn pyenv_cpython_37_is_found_and_runs() {
    let py = or_skip!(memshim_test_pythons::pyenv_or_skip("3.7"));
    let o = Command::new(&py)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "3.7");
}

/// Runs [`pyenv_cpython_37_is_found_and_runs`] of this binary with no pyenv (an empty
/// PYENV_ROOT), `ci` or not, recording skips in a file; returns (passed, output, skip file).
fn without_pyenv(ci: bool) -> (bool, String, String) {
    let d = scratch(&format!("no-pyenv-{ci}"));
    let skips = d.join("skips");
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "pyenv_cpython_37_is_found_and_runs",
        "--nocapture",
    ])
    .env("PYENV_ROOT", &d)
    .env("MEMSHIM_TEST_SKIPS", &skips)
    .env("RUST_BACKTRACE", "1");
    if ci {
        c.env("CI", "true");
    } else {
        c.env_remove("CI");
    }
    let o = c.output().unwrap();
    let text = format!("{}{}", stdout(&o), stderr(&o));
    let recorded = std::fs::read_to_string(&skips).unwrap_or_default();
    (o.status.success(), text, recorded)
}

#[test]
fn a_missing_cpython_is_skipped_with_one_line_outside_ci() {
    let (passed, out, recorded) = without_pyenv(false);
    assert!(passed, "{out}");
    let marked: Vec<&str> = out.lines().filter(|l| l.starts_with(SKIP_MARKER)).collect();
    assert_eq!(marked.len(), 1, "{out}");
    assert!(
        marked[0].starts_with("memshim-test-skip: CPython 3.7 from pyenv is missing (none in "),
        "{out}"
    );
    let fields: Vec<&str> = recorded.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 4, "{recorded:?}");
    assert!(fields[0].starts_with("cli_first_run-"), "{recorded:?}");
    assert_eq!(fields[1], "pyenv_cpython_37_is_found_and_runs");
    assert_eq!(fields[2], "CPython 3.7 from pyenv");
}

#[test]
fn a_missing_cpython_fails_under_ci_with_one_line_and_no_backtrace() {
    let (passed, out, recorded) = without_pyenv(true);
    assert!(!passed, "{out}");
    assert_eq!(recorded, "", "nothing is skipped under CI");
    let said: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("CPython 3.7 from pyenv is missing (none in "))
        .collect();
    assert_eq!(said.len(), 1, "{out}");
    assert!(!out.contains("panicked at"), "{out}");
    assert!(!out.contains("stack backtrace"), "{out}");
    assert!(!out.contains(SKIP_MARKER), "{out}");
}
