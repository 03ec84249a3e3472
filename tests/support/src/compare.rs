//! A program run plainly and under the shim must behave the same: stdout, stderr, exit status,
//! and the files it wrote.

use std::path::Path;

use crate::capture::{captures, Capture};
use crate::process::Outcome;
use crate::program::Program;

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
