//! Known truth through the sampler: big_alloc.c allocates exactly 64 MiB from `big_allocator`
//! (many sizes, 16 B to 256 KiB) and 16 MiB from `other_allocator`. At the default rate with a
//! fixed seed, the unbiased estimates attributed to stacks through each function are within 25%
//! of the truth (from the raw capture and from `memshim report --format json`); in `all` mode
//! the counts and bytes are exact.

use memshim_test_support::prelude::shim;

use std::process::Command;

use memshim_format::EndKind;
use shim::*;

use memshim_test_support::units::MIB_F64 as MIB;

/// At rate R an estimate of B bytes of small allocations rests on about B/R samples: its
/// relative standard deviation is about sqrt(R/B): 9% for 64 MiB, 18% for 16 MiB at 512 KiB.
/// `tol` is about 2.8 standard deviations.
fn within(got: f64, want: f64, tol: f64, what: &str) {
    let err = (got - want).abs() / want;
    assert!(
        err <= tol,
        "{what}: estimated {:.1} MiB, truth {:.1} MiB ({:.0}% off)",
        got / MIB,
        want / MIB,
        err * 100.0
    );
}

fn count(out: &str, func: &str) -> usize {
    let line = out.lines().find(|l| l.starts_with(func)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn known_64mib_from_big_allocator() {
    let dir = scratch("sampling");
    let bin = build_c(&dir, "big_alloc.c", &[]);
    let rates = [None, Some("all")];
    let (plain, runs) = compare(&Program::new(&bin), &dir, &rates);
    let nbig = count(&plain.stdout, "big_allocator");
    let nother = count(&plain.stdout, "other_allocator");
    assert!(nbig > 1000 && nother > 1000, "{}", plain.stdout);
    for (rate, caps) in rates.iter().zip(&runs) {
        let cap = only(caps);
        assert_eq!(cap.end().unwrap().0, EndKind::Exit);
        assert_eq!(cap.end().unwrap().1.total(), 0, "{rate:?}: drops");
        let big = cap.stacks_through(&ranges(cap, &bin, "big_allocator"));
        let other = cap.stacks_through(&ranges(cap, &bin, "other_allocator"));
        assert!(big.is_disjoint(&other));
        let b: Vec<Alloc> = cap.allocs().filter(|a| big.contains(&a.stack)).collect();
        let o: Vec<Alloc> = cap.allocs().filter(|a| other.contains(&a.stack)).collect();
        if rate.is_none() {
            assert_eq!(cap.rate(), 512 << 10);
            within(cap.est_bytes(b.iter()), 64.0 * MIB, 0.25, "big_allocator");
            within(cap.est_bytes(o.iter()), 16.0 * MIB, 0.5, "other_allocator");
            // And the same through the CLI's report (symbolized by the CLI, not by nm here).
            let json = cli_report(&cap.path);
            let (b2, o2) = (
                site_bytes(&json, "big_allocator"),
                site_bytes(&json, "other_allocator"),
            );
            within(b2, 64.0 * MIB, 0.25, "report: big_allocator");
            within(o2, 16.0 * MIB, 0.5, "report: other_allocator");
        } else {
            assert_eq!(cap.rate(), 0);
            assert_eq!(b.len(), nbig, "all mode: one record per allocation");
            assert_eq!(o.len(), nother);
            assert_eq!(b.iter().map(|a| a.size).sum::<u64>(), 64 << 20);
            assert_eq!(o.iter().map(|a| a.size).sum::<u64>(), 16 << 20);
            // Everything is freed before exit.
            let all = big.union(&other).copied().collect();
            assert!(replay(cap, &all).live.is_empty());
        }
    }
}

fn cli_report(cap: &std::path::Path) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_memshim"))
        .args(["report", "--format", "json", "--top", "100000"])
        .arg(cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Estimated bytes of the "allocations" sites with `func` among their frames.
fn site_bytes(json: &serde_json::Value, func: &str) -> f64 {
    json["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["frames"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["function"].as_str() == Some(func))
        })
        .map(|s| s["bytes_est"].as_f64().unwrap())
        .sum()
}
