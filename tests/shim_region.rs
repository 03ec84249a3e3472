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

/// size_cycle.c cycles big blocks through 1 to 8 MiB (four of the region's power-of-two zones),
/// alternating malloc and calloc. A freed slot's resident pages now move to the slot of the
/// next size instead of each zone keeping its own: 12 MiB stays resident at the end, where the
/// zones kept 19 MiB (1 + 3 + 7 + 8 of their largest blocks). Pages moved in from another slot
/// hold its old bytes, so calloc must clear them: every calloc block reads as zeroes.
#[test]
fn resident_pages_follow_the_size_in_use_and_calloc_reads_zeroes() {
    let dir = scratch("size-cycle");
    let bin = build_c(&dir, "size_cycle.c", &[]);
    let (o, caps) = Program::new(&bin).run_shim(&dir, "shim", None);
    assert!(o.success(), "{}", o.stderr);
    let field = |name: &str| -> u64 {
        let mut words = o.stdout.split_whitespace();
        words
            .position(|w| w == name)
            .and_then(|_| words.next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {:?}", o.stdout))
    };
    assert_eq!(field("nonzero"), 0, "calloc returned old bytes");
    let region_kib = field("region_kib");
    assert!(
        region_kib <= 14 << 10,
        "{region_kib} KiB of the region resident"
    );
    let caps = captures(&caps);
    let cap = only(&caps);
    // Nearly every block was sampled (1 to 8 MiB against the 512 KiB mean): the region served them.
    let big = cap.allocs().filter(|a| a.size >= 1 << 20).count();
    assert!(big >= 300, "{big} big samples of 384");
}
