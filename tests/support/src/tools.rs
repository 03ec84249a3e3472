//! Tools and libraries a test needs from the system. Two answers to one that is missing: the
//! CLI's optional viewers (`have_tool`) skip outside CI (tests/pythons' protocol), what the
//! shim's tests cannot run without (`need_tool`, `need_lib`) fails, in one line naming the
//! package.

use std::path::{Path, PathBuf};
use std::process::Command;

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
