//! Reading a capture away from the host: a real program under the real shim leaks from a shared
//! library the test builds; then the library is moved away, and the capture is symbolized from
//! a `memshim bundle` directory (`--symbols`), and from a real `debuginfod` server on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use memshim_test_support::fleet::*;
use serde_json::Value;

/// `memshim report --format json` with `env` (and no debuginfod unless `env` names one).
fn report(cap: &Path, extra: &[&str], env: &[(&str, &Path)]) -> (Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memshim"));
    cmd.args(["report", "--format", "json", "--top", "20"])
        .args(extra)
        .arg(cap)
        .env_remove("DEBUGINFOD_URLS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    (
        serde_json::from_str(&text(&o.stdout)).unwrap(),
        text(&o.stderr),
    )
}

/// The first leak's innermost frame.
fn first_leak(v: &Value) -> &Value {
    &v["leaks"][0]["frames"][0]
}

fn build_id_hex(path: &Path) -> String {
    let o = Command::new("readelf")
        .arg("-n")
        .arg(path)
        .output()
        .unwrap();
    text(&o.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
        .expect("the library has a build-id")
}

fn objcopy(args: &[&std::ffi::OsStr]) {
    let st = Command::new("objcopy")
        .args(args)
        .status()
        .expect("objcopy runs (binutils)");
    assert!(st.success(), "objcopy {args:?}");
}

/// Runs the fleet program (leaking 16 MiB from lib_leak) under the shim; returns its capture.
fn leaking_run(dir: &Path, f: &Fleet, so: &Path) -> PathBuf {
    capture_run(&f.prog, &["leak", "64"], so, &dir.join("caps"))
}

#[test]
fn a_bundle_symbolizes_a_library_that_is_gone_with_its_separate_debug_file() {
    let Some(so) = shim() else { return };
    let dir = scratch("bundle");
    let f = build_fleet(&dir);
    // Debian's way: the library stripped of its DWARF, which sits in a separate file it links
    // to with .gnu_debuglink.
    let debug = f.lib.with_extension("so.debug");
    objcopy(&[
        "--only-keep-debug".as_ref(),
        f.lib.as_os_str(),
        debug.as_os_str(),
    ]);
    objcopy(&["--strip-debug".as_ref(), f.lib.as_os_str()]);
    let link = format!("--add-gnu-debuglink={}", debug.display());
    objcopy(&[link.as_ref(), f.lib.as_os_str()]);
    let cap = leaking_run(&dir, &f, &so);
    let (here, _) = report(&cap, &[], &[]);
    assert_eq!(first_leak(&here)["function"], "lib_leak", "{here:#}");
    assert!(
        first_leak(&here)["file"]
            .as_str()
            .unwrap_or("")
            .ends_with("fleet_lib.c"),
        "on the host, the debug file next to the library gives file:line: {here:#}"
    );

    let bundle = dir.join("bundle");
    let o = memshim(&[
        "bundle",
        cap.to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with("wrote "), "{}", text(&o.stdout));
    let h = build_id_hex(&f.lib);
    assert!(
        bundle.join(&h).join("executable").is_file(),
        "the library, by build-id"
    );
    assert!(
        bundle.join(&h).join("debuginfo").is_file(),
        "its debug file, by build-id"
    );
    let index = std::fs::read_to_string(bundle.join("modules.txt")).unwrap();
    assert!(
        index.contains(&format!("{h} {}", f.lib.display())),
        "{index}"
    );

    // The pod is gone: no library, no debug file.
    std::fs::rename(f.lib.parent().unwrap(), dir.join("lib.gone")).unwrap();
    let (gone, _) = report(&cap, &[], &[]);
    assert!(first_leak(&gone)["function"].is_null(), "{gone:#}");
    assert!(
        first_leak(&gone)["address"]
            .as_str()
            .unwrap()
            .starts_with("libfleet.so+0x"),
        "{gone:#}"
    );
    let (v, err) = report(&cap, &["--symbols", bundle.to_str().unwrap()], &[]);
    assert_eq!(err, "");
    let frame = first_leak(&v);
    assert_eq!(frame["function"], "lib_leak", "{v:#}");
    assert!(
        frame["file"].as_str().unwrap().ends_with("fleet_lib.c"),
        "{frame}"
    );
    assert!(
        frame["line"].as_u64().is_some(),
        "the DWARF came from the bundle: {frame}"
    );
    assert_eq!(v["leaks"][0]["frames"][1]["function"], "main");
}

/// A debuginfod server on a free loopback port serving `dir`; killed on drop.
struct Debuginfod {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Debuginfod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_debuginfod(work: &Path, serve: &Path) -> Debuginfod {
    let port = free_port();
    let log = work.join("debuginfod.log");
    let child = Command::new("debuginfod")
        .args(["-F", "-t", "0", "-g", "0", "-p", &port.to_string(), "-d"])
        .arg(work.join("debuginfod.sqlite"))
        .arg(serve)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(work.join("debuginfod.err")).unwrap())
        .spawn()
        .expect("debuginfod starts");
    Debuginfod {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    }
}

/// Waits (bounded: 300 tries, 100 ms apart) until the server has scanned `build_id`.
fn wait_until_served(d: &mut Debuginfod, build_id: &str) {
    let url = format!("{}/buildid/{build_id}/debuginfo", d.url);
    for _ in 0..300 {
        if let Some(st) = d.child.try_wait().unwrap() {
            panic!(
                "debuginfod exited ({st}): {}",
                std::fs::read_to_string(&d.log).unwrap_or_default()
            );
        }
        if let Ok(r) = ureq::get(&url).call() {
            if r.status() == 200 {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("debuginfod never served {url}");
}

#[test]
fn debuginfod_symbolizes_a_module_no_longer_at_its_path() {
    let Some(so) = shim() else { return };
    if !cli_tool("debuginfod") {
        return;
    }
    let dir = scratch("debuginfod");
    let f = build_fleet(&dir);
    let cap = leaking_run(&dir, &f, &so);
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::copy(&f.lib, served.join("libfleet.so")).unwrap();
    let h = build_id_hex(&f.lib);
    let mut d = start_debuginfod(&dir, &served);
    wait_until_served(&mut d, &h);

    std::fs::rename(f.lib.parent().unwrap(), dir.join("lib.gone")).unwrap();
    let url = PathBuf::from(&d.url);
    let cache = dir.join("cache");
    let (v, err) = report(
        &cap,
        &[],
        &[("DEBUGINFOD_URLS", &url), ("XDG_CACHE_HOME", &cache)],
    );
    assert_eq!(err, "");
    let frame = first_leak(&v);
    assert_eq!(frame["function"], "lib_leak", "{v:#}");
    assert!(
        frame["file"].as_str().unwrap().ends_with("fleet_lib.c"),
        "{frame}"
    );
    let cached = cache.join("memshim/debuginfod").join(&h).join("debuginfo");
    assert!(cached.is_file(), "kept in the cache: {}", cached.display());

    // Back at its path but stripped of its DWARF (a distribution's library without its debug
    // package): the server's debug file gives file:line.
    std::fs::rename(dir.join("lib.gone"), f.lib.parent().unwrap()).unwrap();
    objcopy(&["--strip-debug".as_ref(), f.lib.as_os_str()]);
    let fresh = dir.join("cache2");
    let (v, _) = report(&cap, &[], &[]);
    assert!(
        first_leak(&v)["file"].is_null(),
        "stripped, no server: no file: {v:#}"
    );
    let (v, err) = report(
        &cap,
        &[],
        &[("DEBUGINFOD_URLS", &url), ("XDG_CACHE_HOME", &fresh)],
    );
    assert_eq!(err, "");
    assert!(
        first_leak(&v)["file"]
            .as_str()
            .unwrap_or("")
            .ends_with("fleet_lib.c"),
        "{v:#}"
    );
    std::fs::rename(f.lib.parent().unwrap(), dir.join("lib.gone")).unwrap();

    // The server gone, the cache answers.
    drop(d);
    let (v, err) = report(
        &cap,
        &[],
        &[("DEBUGINFOD_URLS", &url), ("XDG_CACHE_HOME", &cache)],
    );
    assert_eq!(first_leak(&v)["function"], "lib_leak", "{v:#}");
    assert_eq!(err, "", "a cached file needs no server");
}

#[test]
fn an_unreachable_debuginfod_is_one_warning_not_an_error() {
    let Some(so) = shim() else { return };
    let dir = scratch("debuginfod-down");
    let f = build_fleet(&dir);
    let cap = leaking_run(&dir, &f, &so);
    std::fs::rename(f.lib.parent().unwrap(), dir.join("lib.gone")).unwrap();
    // Nobody listens there.
    let url = PathBuf::from(format!("http://127.0.0.1:{}", free_port()));
    let cache = dir.join("cache");
    let (v, err) = report(
        &cap,
        &[],
        &[("DEBUGINFOD_URLS", &url), ("XDG_CACHE_HOME", &cache)],
    );
    assert!(first_leak(&v)["function"].is_null(), "{v:#}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with(&format!("memshim: warning: debuginfod {}: ", url.display())),
        "{err}"
    );
}

/// True when `tool --version` runs; else fails under CI, skipped elsewhere (tests/pythons).
fn cli_tool(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        memshim_test_pythons::Missing::new(
            tool,
            format!("not found: scripts/provision.sh installs it, or apt-get install {tool}"),
        )
        .skip();
    }
    ok
}
