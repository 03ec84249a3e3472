//! The shim's exported interface is what it says: exactly the functions it interposes and its
//! documented `memshim_*` entry points (shim/exports.map, enforced at link time), and the
//! build's `panic = "abort"` really reaches the shim.

use memshim_test_support::prelude::shim;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use shim::*;

/// The global names of shim/exports.map.
fn version_script_names(text: &str) -> BTreeSet<String> {
    let no_comments: String = text
        .split("/*")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once("*/").map_or("", |(_, rest)| rest)
            }
        })
        .collect();
    let global = no_comments
        .split_once("global:")
        .expect("exports.map has a global: section")
        .1
        .split_once("local:")
        .expect("exports.map has a local: section")
        .0;
    global
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The names shim/src/exports/mod.rs defines: `forward!` and `setxid_call!` entries and every
/// `#[no_mangle]` function.
fn exports_rs_names(src: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut lines = src.lines().peekable();
    let mut in_macro_call = false;
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t.starts_with("forward! {") || t.starts_with("setxid_call! {") {
            in_macro_call = true;
            continue;
        }
        if in_macro_call {
            if t == "}" {
                in_macro_call = false;
            } else if let Some((name, _)) = t.split_once('(') {
                names.insert(name.to_string());
            }
            continue;
        }
        if t == "#[no_mangle]" {
            // The next `fn NAME(` line (after doc comments or attributes).
            for next in lines.by_ref() {
                if let Some(rest) = next.split_once(" fn ").map(|(_, r)| r) {
                    let name = rest.split('(').next().unwrap();
                    // A macro's template (`fn $name(`) is not a symbol; its entries are.
                    if !name.starts_with('$') {
                        names.insert(name.to_string());
                    }
                    break;
                }
            }
        }
    }
    names
}

/// The symbols the built library defines in its dynamic symbol table.
fn dynamic_symbols(so: &Path) -> BTreeSet<String> {
    need_tool("nm", "binutils");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(so)
        .output()
        .expect("nm runs");
    assert!(out.status.success(), "nm failed on {}", so.display());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        // The version script's own version node, if the linker lists it.
        .filter(|s| !s.starts_with("VERS_"))
        .map(String::from)
        .collect()
}

fn shim_file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn the_library_exports_exactly_the_version_scripts_names() {
    let script = version_script_names(&shim_file("shim/exports.map"));
    let exported = dynamic_symbols(&shim_so());
    let extra: Vec<_> = exported.difference(&script).collect();
    let missing: Vec<_> = script.difference(&exported).collect();
    assert!(
        extra.is_empty(),
        "exported but not in exports.map: {extra:?}"
    );
    assert!(
        missing.is_empty(),
        "in exports.map but not exported: {missing:?}"
    );
}

/// The functions a C file of the shim exports (`visibility("default")`).
fn c_exported_names(src: &str) -> BTreeSet<String> {
    src.lines()
        .filter(|l| l.contains("visibility(\"default\")"))
        .filter_map(|l| {
            l.split('(')
                .rev()
                .nth(1)?
                .split_whitespace()
                .last()
                .map(String::from)
        })
        .collect()
}

#[test]
fn the_version_script_lists_exactly_what_exports_rs_defines() {
    let script = version_script_names(&shim_file("shim/exports.map"));
    let mut defined = exports_rs_names(&shim_file("shim/src/exports/mod.rs"));
    let in_c = c_exported_names(&shim_file("shim/src/sys/thread_start.c"));
    assert_eq!(in_c, BTreeSet::from(["pthread_exit".to_string()]));
    defined.extend(in_c);
    assert!(defined.len() > 30, "parsed only {defined:?}");
    assert_eq!(
        script, defined,
        "exports.map and shim/src/exports/mod.rs disagree"
    );
    // Nothing but interposed C names and documented entry points.
    let readme = shim_file("README.md");
    for name in defined.iter().filter(|n| n.starts_with("memshim_")) {
        assert!(
            name.starts_with("memshim_debug_") || readme.contains(name.as_str()),
            "{name}: a memshim_* entry point must be documented in the README"
        );
    }
}

/// A planted violation: a script that forgets a name, and an exports.rs with one more, are told.
#[test]
fn a_missing_or_extra_name_is_caught() {
    let script = version_script_names("{ global: malloc; free; /* x; */ local: *; };");
    assert_eq!(
        script,
        BTreeSet::from(["malloc".to_string(), "free".to_string()])
    );
    let defined = exports_rs_names(
        "forward! {\n    malloc(size: usize) -> *mut c_void = alloc::malloc;\n}\n#[no_mangle]\npub extern \"C\" fn memshim_debug_x() {}\n",
    );
    assert_ne!(script, defined);
    assert!(defined.contains("memshim_debug_x") && defined.contains("malloc"));
}

#[test]
fn a_panic_in_the_shim_aborts_without_unwinding() {
    let dir = scratch("debug-panic");
    let bin = build_c(&dir, "debug_panic.c", &["-fexceptions", "-ldl"]);
    let mut cmd = Command::new(&bin);
    cmd.env("LD_PRELOAD", shim_so())
        .env("MEMSHIM_OUTPUT", dir.join("m.%p.msh"));
    let out = run(cmd, &dir, "panic", TIMEOUT);
    assert!(out.stderr.contains("calling"), "{}", out.stderr);
    assert_eq!(out.signal, Some(libc::SIGABRT), "stderr: {}", out.stderr);
    assert!(
        !out.stderr.contains("memshim: unwound"),
        "the panic unwound: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("c: unwound"),
        "unwound into C: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("returned"), "{}", out.stderr);
}
