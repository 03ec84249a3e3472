//! `MEMSHIM_GLIBC_FLOOR=1`: the shim as it runs on glibc 2.28 (the wheel's floor), forced on
//! this newer glibc. Without `_dl_find_object` every stack is walked by libgcc's unwinder and
//! still names the right functions; without `mallinfo2` the heap in use is read with `mallinfo`.

use memshim_test_support::prelude::shim;

use std::path::{Path, PathBuf};
use std::process::Command;

use memshim_format::Record;
use shim::*;

const LEAK_BLOCKS: usize = 10240;

struct Run {
    cap: Capture,
    /// The shim's counter of walks libgcc did (unwind_probe.c).
    fallbacks: u64,
    bin: PathBuf,
}

fn run_leak_prog(dir: &Path, floor: bool) -> Run {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cli/leak_prog.c");
    let bin = build_c_file(dir, &src, &[]);
    let probe = build_c(dir, "unwind_probe.c", &["-shared", "-fPIC", "-ldl"]);
    let mut cmd = Command::new(&bin);
    cmd.env(
        "LD_PRELOAD",
        format!("{} {}", shim_so().display(), probe.display()),
    )
    .env("MEMSHIM_RATE", "all")
    .env("MEMSHIM_OUTPUT", dir.join("memshim.%p.msh"));
    if floor {
        cmd.env("MEMSHIM_GLIBC_FLOOR", "1");
    }
    let out = run(cmd, dir, if floor { "floor" } else { "default" }, TIMEOUT);
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "done\n");
    assert!(warnings(&out.stderr).is_empty(), "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("mismatches "))
        .unwrap_or_else(|| panic!("no counters: {}", out.stderr));
    let fallbacks = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    let caps = captures(dir);
    assert_eq!(caps.len(), 1);
    Run {
        cap: caps.into_iter().next().unwrap(),
        fallbacks,
        bin,
    }
}

/// How many 4 KiB allocations have a stack through leak_here and then main.
fn leak_here_allocs(r: &Run) -> usize {
    let stacks = r.cap.stacks();
    let leak = ranges(&r.cap, &r.bin, "leak_here");
    let main = ranges(&r.cap, &r.bin, "main");
    let inside = |ip: u64, rs: &[(u64, u64)]| {
        let a = ip.wrapping_sub(1);
        rs.iter().any(|&(lo, hi)| a >= lo && a < hi)
    };
    r.cap
        .allocs()
        .filter(|a| a.size == 4096)
        .filter(|a| {
            let f = &stacks[&a.stack];
            let l = f.iter().position(|&ip| inside(ip, &leak));
            let m = f.iter().position(|&ip| inside(ip, &main));
            matches!((l, m), (Some(l), Some(m)) if l < m)
        })
        .count()
}

fn heap_readings(cap: &Capture) -> Vec<u64> {
    cap.records
        .iter()
        .filter_map(|r| match r {
            Record::Tick { heap_in_use, .. } => Some(*heap_in_use),
            _ => None,
        })
        .collect()
}

#[test]
fn at_the_glibc_floor_libgcc_walks_every_stack_and_names_the_same_functions() {
    let floor = run_leak_prog(&scratch("floor-unwind"), true);
    let default = run_leak_prog(&scratch("floor-default"), false);
    assert_eq!(leak_here_allocs(&floor), LEAK_BLOCKS);
    assert_eq!(leak_here_allocs(&default), LEAK_BLOCKS);
    // The forced fallback is taken: every walk is libgcc's, where by default almost none is.
    assert!(
        floor.fallbacks as usize >= LEAK_BLOCKS,
        "libgcc walks at the floor: {}",
        floor.fallbacks
    );
    assert!(
        default.fallbacks < 100,
        "fast walks by default: {}",
        default.fallbacks
    );
}

#[test]
fn at_the_glibc_floor_the_heap_is_still_read() {
    let floor = run_leak_prog(&scratch("floor-heap"), true);
    let heap = heap_readings(&floor.cap);
    // Read at all (0 is "not read"): glibc's own count, through mallinfo (the region serves no
    // block in `all` mode). How much it shows depends on when the writer's probe ran.
    assert!(heap.iter().any(|&h| h > 0), "heap readings {heap:?}");
}
