//! No import cycles among the modules of the CLI and the format crate (the rule: the doc of
//! `memshim_test_support::import_cycles`), and the check itself sees cycles planted in a copy of
//! a small crate (tests/fixtures/module_cycles) in each form a reference takes.

use std::path::{Path, PathBuf};

use memshim_test_support::dirs::{copy_dir, fixtures, repo, scratch};
use memshim_test_support::import_cycles::{import_cycles, references, Cycle};

fn cycles_of(src: &Path, depth: usize) -> Vec<Cycle> {
    import_cycles(src, depth).unwrap_or_else(|e| panic!("memshim: error: {e}"))
}

fn assert_no_cycles(src: &Path, depth: usize) {
    let found = cycles_of(src, depth);
    assert!(
        found.is_empty(),
        "{} has import cycles at depth {depth}:\n{}",
        src.display(),
        found.iter().map(|c| c.to_string()).collect::<String>()
    );
}

#[test]
fn cli_modules_have_no_import_cycle() {
    assert_no_cycles(&repo().join("src"), 1);
}

#[test]
fn cli_submodules_have_no_import_cycle() {
    assert_no_cycles(&repo().join("src"), 2);
}

#[test]
fn format_modules_have_no_import_cycle() {
    assert_no_cycles(&repo().join("format/src"), 1);
    assert_no_cycles(&repo().join("format/src"), 2);
}

#[test]
fn shim_modules_have_no_import_cycle() {
    assert_no_cycles(&repo().join("shim/src"), 1);
    assert_no_cycles(&repo().join("shim/src"), 2);
}

/// The CLI's references are seen at all (a check that found none would pass any crate).
#[test]
fn cli_references_are_found_across_layers() {
    let refs = references(&repo().join("src")).unwrap();
    let from_to = |a: &str, b: &str| refs.iter().any(|r| r.from.starts_with(a) && r.to == b);
    assert!(
        from_to("analysis", "capture::load"),
        "analysis uses capture::load"
    );
    assert!(
        from_to("report", "present::resolve"),
        "report uses present::resolve"
    );
    assert!(from_to("cmd", "analysis"), "the commands load analyses");
}

/// A copy of tests/fixtures/module_cycles in a scratch directory; returns its `src`.
fn synthetic(name: &str) -> PathBuf {
    let dir = scratch(name);
    copy_dir(&fixtures("module_cycles"), &dir);
    dir.join("src")
}

/// Appends `code` to the file `rel` of the synthetic crate at `src`.
fn plant(src: &Path, rel: &str, code: &str) {
    let path = src.join(rel);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(code);
    std::fs::write(&path, text).unwrap();
}

/// The cycles' module sets, for comparing.
fn modules(found: &[Cycle]) -> Vec<Vec<String>> {
    found.iter().map(|c| c.modules.clone()).collect()
}

#[test]
fn synthetic_crate_as_shipped_has_no_cycle_and_its_references_are_seen() {
    let src = synthetic("pristine");
    assert_no_cycles(&src, 1);
    assert_no_cycles(&src, 2);
    let refs = references(&src).unwrap();
    // The brace `use`, the inline path, and the children using their parent.
    for (from, to) in [
        ("a", "b"),
        ("a", "b::inner"),
        ("a", "b::leaf"),
        ("b::inner", "b"),
    ] {
        assert!(
            refs.iter().any(|r| r.from == from && r.to == to),
            "{from} -> {to} not seen in {refs:?}"
        );
    }
}

#[test]
fn planted_inline_path_cycle_is_found_with_where_it_is() {
    let src = synthetic("inline");
    plant(
        &src,
        "b/leaf.rs",
        "\npub fn up() -> u32 {\n    crate::a::top()\n}\n",
    );
    let found = cycles_of(&src, 1);
    assert_eq!(modules(&found), [["a", "b"]]);
    let back = found[0].steps.iter().find(|s| s.to == "a").unwrap();
    assert!(back.file.ends_with("b/leaf.rs"), "{back}");
    assert_eq!(
        (back.line, back.path.as_str()),
        (4, "crate::a::top"),
        "{back}"
    );
}

#[test]
fn planted_use_group_cycle_is_found() {
    let src = synthetic("use-group");
    plant(
        &src,
        "b/inner.rs",
        "\n#[allow(unused_imports)]\nuse crate::{a::{self}, b::leaf};\n",
    );
    assert_eq!(modules(&cycles_of(&src, 1)), [["a", "b"]]);
}

#[test]
fn planted_super_path_cycle_is_found() {
    let src = synthetic("super");
    plant(
        &src,
        "b/leaf.rs",
        "\npub fn up() -> u32 {\n    super::super::a::top()\n}\n",
    );
    assert_eq!(modules(&cycles_of(&src, 1)), [["a", "b"]]);
}

#[test]
fn planted_path_inside_a_macro_call_is_found() {
    let src = synthetic("macro");
    plant(
        &src,
        "b/mod.rs",
        "\npub fn up() {\n    println!(\"{}\", crate::a::top());\n}\n",
    );
    assert_eq!(modules(&cycles_of(&src, 1)), [["a", "b"]]);
}

#[test]
fn planted_cycle_in_a_test_module_is_found() {
    let src = synthetic("tests-module");
    plant(
        &src,
        "b/leaf.rs",
        "\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {\n        crate::a::top();\n    }\n}\n",
    );
    assert_eq!(modules(&cycles_of(&src, 1)), [["a", "b"]]);
}

#[test]
fn doc_links_and_strings_are_not_references() {
    let src = synthetic("docs");
    plant(
        &src,
        "b/leaf.rs",
        "\n/// Like [`crate::a::top`].\npub const NAME: &str = \"crate::a::top\";\n",
    );
    assert_no_cycles(&src, 1);
}

#[test]
fn sibling_cycle_inside_a_folder_is_found_at_depth_two_only() {
    let src = synthetic("siblings");
    // b::inner already uses b::leaf; now b::leaf uses b::inner.
    plant(
        &src,
        "b/leaf.rs",
        "\npub fn back() -> u32 {\n    super::inner::Inner(1).0\n}\n",
    );
    assert_no_cycles(&src, 1);
    assert_eq!(modules(&cycles_of(&src, 2)), [["b::inner", "b::leaf"]]);
}

#[test]
fn a_missing_module_file_is_an_error_naming_it() {
    let src = synthetic("missing");
    plant(&src, "lib.rs", "\nmod gone;\n");
    let e = import_cycles(&src, 1).unwrap_err();
    assert!(e.contains("mod gone;") && e.contains("gone.rs"), "{e}");
}
