//! Helpers of the fleet tests (diff, bundle and symbols, serve, the cgroup limit): the
//! real shim, the fleet fixture (a program and the shared library it leaks from), and running
//! it under the shim.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// libmemshim.so, or None (skipped; fails under CI) when it is not built.
pub fn shim() -> Option<PathBuf> {
    crate::shim_lib::shim_lib_or_skip()
}

/// The fleet fixture, built into `dir`: `fleet_prog` linked with `lib/libfleet.so` (found
/// through its rpath, so moving the library away after a run is up to the test).
pub struct Fleet {
    pub prog: PathBuf,
    pub lib: PathBuf,
}

fn cc(args: &[&std::ffi::OsStr]) {
    let st = Command::new("cc")
        .args(args)
        .status()
        .expect("cc runs (install a C compiler)");
    assert!(st.success(), "cc {args:?} failed");
}

pub fn build_fleet(dir: &Path) -> Fleet {
    let src = crate::dirs::fixtures("cli");
    let libdir = dir.join("lib");
    std::fs::create_dir_all(&libdir).unwrap();
    let lib = libdir.join("libfleet.so");
    let prog = dir.join("fleet_prog");
    cc(&[
        "-g".as_ref(),
        "-O0".as_ref(),
        "-shared".as_ref(),
        "-fPIC".as_ref(),
        "-Wl,--build-id".as_ref(),
        "-o".as_ref(),
        lib.as_os_str(),
        src.join("fleet_lib.c").as_os_str(),
    ]);
    let rpath = format!("-Wl,-rpath,{}", libdir.display());
    let ldir = format!("-L{}", libdir.display());
    cc(&[
        "-g".as_ref(),
        "-O0".as_ref(),
        "-Wl,--build-id".as_ref(),
        "-o".as_ref(),
        prog.as_os_str(),
        src.join("fleet_prog.c").as_os_str(),
        ldir.as_ref(),
        "-lfleet".as_ref(),
        rpath.as_ref(),
    ]);
    Fleet { prog, lib }
}

/// The environment that runs a command under the shim, writing `memshim.%p.msh` into `caps`.
pub fn under_shim(cmd: &mut Command, so: &Path, caps: &Path) {
    std::fs::create_dir_all(caps).unwrap();
    cmd.env("LD_PRELOAD", so)
        .env("MEMSHIM_RATE", "64K")
        .env("MEMSHIM_SEED", "12345")
        .env("MEMSHIM_OUTPUT", caps.join("memshim.%p.msh"));
}

/// The captures in `caps`, sorted.
pub fn captures_in(caps: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(caps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msh"))
        .collect();
    v.sort();
    v
}

/// Runs `prog args` under the shim to its end; returns its one capture.
pub fn capture_run(prog: &Path, args: &[&str], so: &Path, caps: &Path) -> PathBuf {
    let mut cmd = Command::new(prog);
    cmd.args(args);
    under_shim(&mut cmd, so, caps);
    let o = cmd.output().expect("fixture runs");
    assert!(o.status.success(), "fixture failed: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "done");
    let caps = captures_in(caps);
    assert_eq!(caps.len(), 1, "one process, one capture: {caps:?}");
    caps.into_iter().next().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `go tool pprof -top -nodecount=5 URL`'s output, run with `home` as HOME and no local
/// binaries to symbolize from (what the server sends must be enough).
pub fn go_pprof_top(url: &str, home: &Path) -> String {
    let o = Command::new("go")
        .args(["tool", "pprof", "-top", "-nodecount=5"])
        .arg(url)
        .env("PPROF_BINARY_PATH", "/nonexistent")
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
}

/// Runs the built memshim.
pub fn memshim(args: &[&str]) -> Output {
    crate::cli::run(args)
}

pub use crate::dirs::scratch;

/// A loopback port nobody listens on now (the kernel picks it; a race with another program
/// taking it before the server binds is possible but the server then says so).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
