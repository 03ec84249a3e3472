//! Format version 6 groups a chunk's records by thread and primes each `all`-mode block with
//! the chunks before it (format/src/grouped.rs, prime.rs). Two threads' loops recorded at once
//! must come back in each thread's own order, each free right after its allocation, and the
//! capture must be as small as loops that repeat allow: in arrival order (version 5) the two
//! threads' records never repeated, and this capture was 230-430 KB.

use memshim_format::Record;
use memshim_test_support::prelude::shim;

use shim::*;

const PAIRS: usize = 200_000;
const NSIZES: usize = 512;

/// tests/fixtures/shim/thread_loops.c's size tables.
fn sizes() -> [Vec<u64>; 2] {
    let mut x: u32 = 88_172_645;
    let mut t = [Vec::new(), Vec::new()];
    for table in &mut t {
        for _ in 0..NSIZES {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            table.push(16 + (x % (4096 - 16 + 1)) as u64);
        }
    }
    t
}

#[test]
fn two_interleaved_threads_keep_their_order_in_a_small_capture() {
    let dir = scratch("thread-streams");
    let bin = build_c(&dir, "thread_loops.c", &["-O2", "-pthread"]);
    let prog = Program::new(&bin).arg(PAIRS.to_string());
    let (plain, runs) = compare(&prog, &dir, &[Some("all")]);
    assert!(plain.stdout.starts_with(&format!("pairs {PAIRS} ")));
    let cap = only(&runs[0]);
    cap.assert_complete();
    assert_eq!(cap.end().unwrap().1.total(), 0, "no drops");

    // Each loop thread's allocations and frees, in the capture's order.
    let tables = sizes();
    let mut found = [false; 2];
    let mut hot = 0u64;
    let mut tids = Vec::new();
    for r in &cap.records {
        if let Record::Alloc { tid, .. } | Record::Free { tid, .. } = r {
            hot += 1;
            if !tids.contains(tid) {
                tids.push(*tid);
            }
        }
    }
    for &tid in &tids {
        let mine: Vec<&Record> = cap
            .records
            .iter()
            .filter(|r| matches!(r, Record::Alloc { tid: t, .. } | Record::Free { tid: t, .. } if *t == tid))
            .collect();
        let sizes: Vec<u64> = mine
            .iter()
            .filter_map(|r| match r {
                Record::Alloc { size, .. } => Some(*size),
                _ => None,
            })
            .collect();
        // Which loop this thread ran, and where its first allocation is.
        let Some((k, start)) = (0..2).find_map(|k| {
            let start = sizes.windows(2).position(|w| w == &tables[k][..2])?;
            Some((k, start))
        }) else {
            continue;
        };
        let want: Vec<u64> = (0..PAIRS).map(|i| tables[k][i % NSIZES]).collect();
        assert!(
            sizes[start..].starts_with(&want),
            "thread {tid}: its {PAIRS} allocations are not its loop's sizes in order"
        );
        // From the loop's first allocation on: alloc p, free p, alloc q, free q...
        let at = mine
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Record::Alloc { .. }))
            .nth(start)
            .unwrap()
            .0;
        let loop_records = mine.get(at..at + 2 * PAIRS).unwrap_or_else(|| {
            panic!("thread {tid}: fewer than {PAIRS} frees after its loop's allocations")
        });
        for pair in loop_records.chunks(2) {
            match (pair[0], pair[1]) {
                (Record::Alloc { addr: a, .. }, Record::Free { addr: f, .. }) => assert_eq!(
                    a, f,
                    "thread {tid}: a free that is not of the allocation before it"
                ),
                other => panic!("thread {tid}: not an allocation then its free: {other:?}"),
            }
        }
        found[k] = true;
    }
    assert_eq!(found, [true, true], "both loops are in the capture");

    // The threads ran at once: their records interleave, tens of thousands of times (a reader
    // giving each chunk's streams one after the other would switch a dozen times).
    let loop_tids: Vec<u32> = cap
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Alloc { tid, size, .. } if tables.iter().any(|t| t.contains(size)) => {
                Some(*tid)
            }
            _ => None,
        })
        .collect();
    let switches = loop_tids.windows(2).filter(|w| w[0] != w[1]).count();
    eprintln!("the loops' allocations switch thread {switches} times");
    assert!(
        switches >= 100,
        "the loops' records switch thread {switches} times"
    );

    // Grouped and primed: 37-51 KB in 5 runs for these 800,000 records (0.05-0.06 bytes
    // each); version 5 wrote 230-430 KB.
    let bytes = std::fs::metadata(&cap.path).unwrap().len();
    assert!(
        (bytes as f64) < 0.15 * hot as f64,
        "{bytes} bytes for {hot} allocations and frees"
    );
}
