//! The timeline's ticks under the real shim: RSS and the sampled totals on every tick, glibc's
//! heap in use as often as reading it stays cheap for the process.

use memshim_test_support::prelude::shim;

use memshim_format::Record;
use shim::*;

/// How many times a tick's value differs from the tick before it.
fn changes(values: &[u64]) -> usize {
    values.windows(2).filter(|w| w[0] != w[1]).count()
}

/// mallinfo2 walks every free chunk under the arena lock: on a heap fragmented into 100,000
/// chunks one call takes some 20 ms, and on every 80 ms tick it kept the program's allocations
/// waiting a quarter of the time. The writer reads it in proportion to what it costs, and not
/// at all once two readings in a row took 10 ms (0 from then on); RSS is read on every tick.
#[test]
fn a_fragmented_heap_is_probed_rarely_and_rss_every_tick() {
    let dir = scratch("fragmented");
    let bin = build_c(&dir, "fragmented.c", &[]);
    let (plain, runs) = compare(&Program::new(&bin), &dir, &[None]);
    assert!(plain.success());
    let cap = only(&runs[0]);
    // Heap in use is glibc's probe plus the region's live blocks (sampled bytes allocated minus
    // freed: fragmented.c only mallocs): the probe's part is what is left.
    let ticks: Vec<(u64, u64)> = cap
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Tick {
                rss,
                heap_in_use,
                sampled_allocated,
                sampled_freed,
                ..
            } => Some((*rss, heap_in_use - (sampled_allocated - sampled_freed))),
            _ => None,
        })
        .collect();
    // 1.6 s of growth: some 20 ticks (fewer on a loaded machine, never a handful).
    assert!(ticks.len() >= 8, "{} ticks", ticks.len());
    let rss: Vec<u64> = ticks.iter().map(|t| t.0).collect();
    let heap: Vec<u64> = ticks.iter().map(|t| t.1).collect(); // the probe's part
    assert!(
        changes(&rss) >= ticks.len() / 2,
        "RSS follows the growth on every tick: {rss:?}"
    );
    // Given up (0) is for good: nothing is read after a 0 that follows a reading.
    if let Some(first_zero) = heap.iter().position(|&h| h == 0) {
        assert!(heap[first_zero..].iter().all(|&h| h == 0), "{heap:?}");
    }
    // Read every tick, the heap would change as often as the RSS. A probe that took milliseconds
    // waits seconds: at most the probes before the heap was fragmented, and one after.
    assert!(
        changes(&heap) <= 3,
        "the heap was read {} times: {heap:?}",
        changes(&heap) + 1
    );
}
