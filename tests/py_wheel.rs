//! `pip install memshim`: the wheel scripts/build-wheel.sh builds (once per test run, shared by
//! these tests), installed into fresh virtualenvs: `memshim run` and `python -m memshim` find
//! the library inside the installed package and the demo's leak; the pytest plugin fails the
//! leaky and over-peak tests naming the native function and its Python caller; the wheel is
//! manylinux_2_28 and its shim links only what a preload may.

use memshim_test_support::prelude::py;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use py::{python, scratch};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The wheel, built once for every test of this file.
fn wheel() -> &'static Path {
    static WHEEL: OnceLock<PathBuf> = OnceLock::new();
    WHEEL.get_or_init(|| {
        let o = Command::new("bash")
            .arg(root().join("scripts/build-wheel.sh"))
            .output()
            .expect("bash runs");
        assert!(o.status.success(), "build-wheel.sh failed:\n{}", text(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        PathBuf::from(out.lines().last().expect("the wheel's path").trim())
    })
}

/// A fresh virtualenv in `dir` with the wheel (and `extra` packages from PyPI) installed.
fn venv(dir: &Path, extra: &[&str]) -> PathBuf {
    let v = dir.join("venv");
    let o = Command::new(python())
        .args(["-m", "venv"])
        .arg(&v)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(v.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(wheel())
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "pip install failed:\n{}", text(&o));
    v
}

/// Builds the demo's extension into `dir` (as scripts/demo.sh does).
fn build_demo(dir: &Path) {
    let py = python();
    let q = |expr: &str| {
        let o = Command::new(&py)
            .args(["-c", &format!("import sysconfig; print({expr})")])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let ext = dir.join(format!(
        "leakyext{}",
        q("sysconfig.get_config_var('EXT_SUFFIX')")
    ));
    let o = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-g"])
        .arg(format!("-I{}", q("sysconfig.get_paths()['include']")))
        .arg(root().join("demo/leakyext.c"))
        .arg("-o")
        .arg(ext)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// Runs the demo with `memshim` (the command and its leading arguments as given) in `dir`, with
/// no MEMSHIM_LIB; checks the report finds tokenize()'s leak near the truth the demo prints.
fn demo_leak_is_found(dir: &Path, memshim: &[PathBuf], report_with: &Path) {
    build_demo(dir);
    let o = Command::new(&memshim[0])
        .args(&memshim[1..])
        .args(["run", "--seed", "1", "-o"])
        .arg(dir.join("memshim.%p.msh"))
        .arg("--")
        .arg(python())
        .arg(root().join("demo/serve.py"))
        .current_dir(dir)
        .env("PYTHONPATH", dir)
        .env_remove("MEMSHIM_LIB")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let truth: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("truth: tokenize() leaked "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no truth line: {out}"));
    let cap = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "msh"))
        .expect("a capture");
    let o = Command::new(report_with)
        .args(["report", "--format", "json"])
        .arg(&cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let top = &r["leaks"][0];
    assert_eq!(top["frames"][0]["function"], "tokenize", "{top:#}");
    let est = top["bytes_est"].as_f64().unwrap() / 1048576.0;
    assert!(
        (est / truth - 1.0).abs() < 0.25,
        "estimate {est:.1} MiB, truth {truth} MiB"
    );
}

#[test]
fn the_installed_memshim_runs_the_demo_with_the_library_from_its_package() {
    let dir = scratch("wheel-run");
    let v = venv(&dir, &[]);
    let exe = v.join("bin/memshim");
    demo_leak_is_found(&dir, std::slice::from_ref(&exe), &exe);
}

#[test]
fn python_dash_m_memshim_does_the_same() {
    let dir = scratch("wheel-dash-m");
    let v = venv(&dir, &[]);
    let py = v.join("bin/python");
    demo_leak_is_found(
        &dir,
        &[py.clone(), "-m".into(), "memshim".into()],
        &v.join("bin/memshim"),
    );
}

#[test]
fn the_pytest_plugin_fails_the_leaky_and_over_peak_tests_naming_the_site() {
    let dir = scratch("wheel-pytest");
    let v = venv(&dir, &["pytest"]);
    let o = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-g", "-o"])
        .arg(dir.join("libcleak.so"))
        .arg(root().join("tests/fixtures/py/cleak.c"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::copy(
        root().join("tests/fixtures/py/pytest_limits.py"),
        dir.join("test_limits.py"),
    )
    .unwrap();
    let o = Command::new(v.join("bin/pytest"))
        .args([
            "--memshim",
            "--memshim-dir",
            "caps",
            "-p",
            "no:cacheprovider",
            "-rA",
        ])
        .arg("test_limits.py")
        .current_dir(&dir)
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "two tests fail:\n{out}");
    assert!(out.contains("2 failed, 1 passed"), "{out}");
    assert!(out.contains("PASSED test_limits.py::test_clean"), "{out}");
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{out}"))
            .to_string()
    };
    let leak = line("memshim: leaked ");
    assert!(
        leak.starts_with(
            "memshim: leaked 16.0 MiB over the limit 10.0 MiB: top site cleak_stash ("
        ) && leak.contains("called from stash_and_forget (")
            && leak.contains("test_limits.py:"),
        "{leak}"
    );
    let peak = line("memshim: peak ");
    assert!(
        peak.starts_with("memshim: peak 32.0 MiB over the limit 20.0 MiB: top site cleak_stash (")
            && peak.contains("called from hold_then_free ("),
        "{peak}"
    );
    // The session ran under the shim: its capture is there.
    assert_eq!(std::fs::read_dir(dir.join("caps")).unwrap().count(), 1);
}

/// The ELF files the wheel installs.
fn installed_elves(v: &Path) -> [PathBuf; 2] {
    let so = std::fs::read_dir(v.join("lib"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .join("site-packages/memshim/libmemshim.so")
        })
        .find(|p| p.exists())
        .expect("libmemshim.so in the package");
    [so, v.join("bin/memshim")]
}

#[test]
fn the_wheel_is_manylinux_2_28_and_its_shim_links_only_what_a_preload_may() {
    let name = wheel().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("-manylinux_2_28_x86_64.whl"), "{name}");
    let audit = std::fs::read_to_string(root().join("target/wheel/auditwheel.txt")).unwrap();
    assert!(audit.contains("\"manylinux_2_28_x86_64\""), "{audit}");
    let dir = scratch("wheel-elf");
    let v = venv(&dir, &[]);
    let [so, bin] = installed_elves(&v);
    let o = Command::new("readelf").arg("-d").arg(&so).output().unwrap();
    let needed: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            l.split('[')
                .nth(1)
                .map(|s| s.trim_end_matches(']').to_string())
        })
        .collect();
    let allowed = [
        "libc.so.6",
        "libgcc_s.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "ld-linux-x86-64.so.2",
    ];
    assert!(!needed.is_empty());
    for n in &needed {
        assert!(
            allowed.contains(&n.as_str()),
            "the shim needs {n}: {needed:?}"
        );
    }
    assert!(
        needed.iter().any(|n| n == "libgcc_s.so.1"),
        "libgcc's unwinder: {needed:?}"
    );
    // No symbol of a glibc newer than the floor, in either file.
    for f in [&so, &bin] {
        let o = Command::new("objdump").arg("-T").arg(f).output().unwrap();
        let t = String::from_utf8_lossy(&o.stdout);
        let newer: Vec<&str> = t
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("GLIBC_"))
                    .and_then(|v| {
                        v.trim_end_matches(')')
                            .split('.')
                            .nth(1)
                            .map(str::to_string)
                    })
                    .and_then(|minor| minor.parse::<u32>().ok())
                    .is_some_and(|minor| minor > 28)
            })
            .collect();
        assert!(newer.is_empty(), "{}: {newer:#?}", f.display());
    }
}

#[test]
fn a_source_build_on_an_unsupported_platform_says_so_in_one_line() {
    wheel(); // its tools' virtualenv has maturin, which the backend imports
    let py = root().join("target/wheel/tools/bin/python");
    for (patch, why) in [
        (
            "platform.machine = lambda: 'aarch64'",
            "aarch64 is not x86-64",
        ),
        (
            "platform.libc_ver = lambda: ('', '')",
            "the C library is not glibc",
        ),
    ] {
        let o = Command::new(&py)
            .arg("-c")
            .arg(format!(
                "import platform, sys; sys.path.insert(0, 'python/build_backend'); {patch}\n\
                 import memshim_build; memshim_build.build_wheel('/nonexistent')"
            ))
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with("memshim: error: the shim supports x86-64 Linux with glibc only: ")
                && e.contains(why),
            "{e}"
        );
    }
}
