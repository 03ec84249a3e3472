//! The region that serves sampled allocations, under the real shim: memory kept resident for
//! reuse follows the sizes the program uses now.

use memshim_test_support::prelude::shim::*;

/// size_shift.c fills the 64 MiB budget of resident free slots with 3 MiB blocks, idles, then
/// allocates and frees a 6 MiB block 100 times. With the budget stuck on the idle size, each of
/// those frees returned the block's pages to the kernel and each reuse faulted all 1,536 of them
/// back; the idle size's slots now give the budget back, so only the first round faults.
#[test]
fn resident_budget_follows_a_shift_in_sizes() {
    let dir = scratch("size-shift");
    let bin = build_c(&dir, "size_shift.c", &[]);
    let (o, caps) = Program::new(&bin).run_shim(&dir, "shim", None);
    assert!(o.success(), "{}", o.stderr);
    let per_round: u64 = o
        .stdout
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no count in {:?}", o.stdout));
    assert!(per_round < 200, "{per_round} faults per 6 MiB round");
    let caps = captures(&caps);
    let cap = only(&caps);
    // Every block was sampled (3 and 6 MiB against the 512 KiB mean): the region served them.
    let big = cap.allocs().filter(|a| a.size >= 3 << 20).count();
    assert!(big >= 100, "{big} big samples");
}
