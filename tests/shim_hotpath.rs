//! The hot path allocates nothing: every call the shim makes into glibc's allocator while an
//! application thread is inside malloc/calloc/realloc/memalign/free is the forwarding of that
//! very request, at every rate (see tests/fixtures/shim/hotpath.c for how the calls are seen).

use memshim_test_support::prelude::shim;

use memshim_format::EndKind;
use shim::*;

fn forwarded(path: &std::path::Path) -> u64 {
    let text = read(path);
    text.trim()
        .strip_prefix("forwarded ")
        .unwrap_or_else(|| panic!("bad counts file: {text:?}"))
        .parse()
        .unwrap()
}

#[test]
fn hot_path_makes_no_allocation_of_its_own() {
    let dir = scratch("hotpath");
    let bin = build_c(&dir, "hotpath.c", &["-rdynamic", "-ldl"]);
    let counts = dir.join("counts");
    let prog = Program::new(&bin).arg(counts.to_str().unwrap());
    let plain = prog.run_plain(&dir);
    assert_eq!(plain.stdout, "violations 0\n");
    assert_eq!(
        forwarded(&counts),
        0,
        "without the shim nobody calls __libc_*"
    );
    for rate in [Some("all"), Some("4K"), None] {
        let tag = rate.unwrap_or("default");
        let (o, caps) = prog.run_shim(&dir, tag, rate);
        assert_same(&plain, &o, &format!("hotpath at {tag}"));
        // The interposition worked: (nearly) every measured call reached glibc through the
        // fixture's __libc_* (the rest were served from the shim's region).
        let n = forwarded(&counts);
        assert!(n > 75_000, "{tag}: only {n} forwarded calls seen");
        let caps = captures(&caps);
        let cap = only(&caps);
        assert_eq!(cap.end().unwrap().0, EndKind::Exit);
        // The slow path (unwind, region, ring push) ran many times inside the measurement.
        let stacks = cap.stacks_through(&ranges(cap, &bin, "work"));
        let samples = cap.allocs().filter(|a| stacks.contains(&a.stack)).count();
        let want = if rate.is_none() { 500 } else { 25_000 };
        assert!(
            samples > want,
            "{tag}: only {samples} samples in the measured loop"
        );
    }
}

/// The detector catches a real shim allocation: without the warm-up, the first record of the
/// process starts the writer (a Box and a thread) inside a measured call.
#[test]
fn hot_path_check_sees_the_one_time_writer_start() {
    let dir = scratch("hotpath-cold");
    let bin = build_c(&dir, "hotpath.c", &["-rdynamic", "-ldl"]);
    let counts = dir.join("counts");
    let prog = Program::new(&bin).arg(counts.to_str().unwrap()).arg("cold");
    let (o, _) = prog.run_shim(&dir, "cold", Some("4K"));
    assert!(o.success(), "{}", o.stderr);
    assert!(
        !o.stdout.starts_with("violations 0"),
        "the writer's start allocates on the first recording thread; the check must see it:\n{}",
        o.stdout
    );
}
