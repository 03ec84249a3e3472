//! A thread's Alloc event leaves its stack out when it repeats the thread's last one
//! (`hooks::alloc::push_alloc`), and stacks start at the program's frame, not the shim's
//! (`unwind::capture_from`). Whatever the pattern of sites, threads that come and go, a fork, or
//! the sampling rate, every allocation must still name its own site, and only the program's
//! frames.

use memshim_test_support::prelude::shim;

use std::path::Path;

use shim::*;

/// Each site's sizes, the function that tells it apart and that function's frame in its stacks
/// (tests/fixtures/shim/stack_repeats.c). site_d's two sizes differ by caller only.
const SITES: [(u64, &str, usize); 6] = [
    (12345, "site_a", 0),
    (23456, "site_b", 0),
    (34567, "site_c", 0),
    (45678, "site_c", 0),
    (56789, "caller_1", 1),
    (67890, "caller_2", 1),
];

/// Pattern iterations per run, and each site's allocations per iteration
/// (`aaababbcacccadeddeee`).
const ROUNDS: u64 = 200;
const PER_ROUND: [u64; 6] = [6, 3, 4, 4, 3, 4];

/// Checks every allocation of a site's sizes has that site's function at its frame; returns
/// the allocations counted per size.
fn check_sites(cap: &Capture, bin: &Path) -> [u64; 6] {
    let stacks = cap.stacks();
    let mut counts = [0; 6];
    for (i, (size, site, at)) in SITES.iter().enumerate() {
        let within = ranges(cap, bin, site);
        for a in cap.allocs().filter(|a| a.size == *size) {
            let frames = &stacks[&a.stack];
            let frame = *frames.get(*at).unwrap_or_else(|| {
                panic!(
                    "{}: a {size} B allocation's stack is short: {frames:x?}",
                    cap.name()
                )
            });
            assert!(
                within.iter().any(|&(lo, hi)| (lo..hi).contains(&frame)),
                "{}: a {size} B allocation's frame {at} {frame:#x} is not in {site} \
                 {within:x?} (stack {frames:x?})",
                cap.name()
            );
            counts[i] += 1;
        }
    }
    counts
}

fn expected(runs: u64, extra_a: u64) -> [u64; 6] {
    let mut e = PER_ROUND.map(|n| n * ROUNDS * runs);
    e[0] += extra_a;
    e
}

#[test]
fn every_allocation_names_its_own_site_when_stacks_repeat_and_alternate() {
    let dir = scratch("stack-repeats");
    let bin = build_c(&dir, "stack_repeats.c", &["-O2", "-pthread"]);
    let rates = [Some("all"), Some("4K")];
    let (plain, runs) = compare(&Program::new(&bin), &dir, &rates);
    // The main thread, 4 threads one after another, then 2 at once: 7 runs of the pattern.
    assert_eq!(plain.stdout, format!("sites {}\n", 7 * ROUNDS * 20));
    for (rate, caps) in rates.iter().zip(&runs) {
        let cap = only(caps);
        let counts = check_sites(cap, &bin);
        if *rate == Some("all") {
            assert_eq!(cap.end().unwrap().1.total(), 0, "no drops");
            assert_eq!(counts, expected(7, 0), "every site allocation is recorded");
        } else {
            assert!(
                counts.iter().all(|&n| n > 100),
                "{rate:?}: samples at every site: {counts:?}"
            );
        }
    }
}

#[test]
fn a_forked_child_sends_the_stack_its_parent_last_sent() {
    // The parent's main thread last allocated at site_a before the fork; the child's first
    // allocation is site_a's from the same call, and its capture (a new writer) must get that
    // stack whole.
    let dir = scratch("stack-repeats-fork");
    let bin = build_c(&dir, "stack_repeats.c", &["-O2", "-pthread"]);
    let (out, caps) = Program::new(&bin)
        .arg("fork")
        .run_shim(&dir, "all", Some("all"));
    assert!(out.success(), "{out:?}");
    let caps = captures(&caps);
    assert_eq!(caps.len(), 2, "parent and child: {caps:?}");
    let child = caps
        .iter()
        .find(|c| caps.iter().any(|p| p.header.pid == c.header.ppid))
        .expect("a capture whose parent made the other");
    let parent = caps
        .iter()
        .find(|c| c.header.pid == child.header.ppid)
        .unwrap();
    for c in [parent, child] {
        c.assert_complete();
        c.assert_stacks_defined();
        assert_eq!(c.end().unwrap().1.total(), 0, "{}: no drops", c.name());
    }
    assert_eq!(check_sites(parent, &bin), expected(7, 2));
    assert_eq!(check_sites(child, &bin), expected(1, 1));
}

#[test]
fn stacks_start_at_the_caller_of_the_allocator() {
    // The walk starts at the caller of malloc: no stack starts in libmemshim.so's own code (the
    // CLI used to strip those frames; the writer no longer gets them). Allocations the shim
    // itself makes through the C library (its writer thread's start) start in the C library.
    let dir = scratch("stack-repeats-noshim");
    let bin = build_c(&dir, "stack_repeats.c", &["-O2", "-pthread"]);
    for unwinder in ["fast", "libgcc"] {
        let (out, caps) = Program::new(&bin).env("MEMSHIM_UNWIND", unwinder).run_shim(
            &dir,
            unwinder,
            Some("all"),
        );
        assert!(out.success(), "{out:?}");
        let caps = captures(&caps);
        let cap = only(&caps);
        let shim = cap
            .module(&shim_so())
            .expect("libmemshim.so is in the module map");
        let in_shim = |f: u64| {
            shim.segments
                .iter()
                .any(|&(vaddr, len)| (shim.base + vaddr..shim.base + vaddr + len).contains(&f))
        };
        let stacks = cap.stacks();
        let mut checked = 0;
        for a in cap.allocs() {
            let frames = &stacks[&a.stack];
            assert!(
                frames.first().is_some_and(|&f| !in_shim(f)),
                "{unwinder}: a {} B allocation's stack starts in the shim: {frames:x?}",
                a.size
            );
            checked += 1;
        }
        assert!(
            checked > 18_000,
            "{unwinder}: {checked} allocations checked"
        );
    }
}
