//! The malloc/free pair through libmemshim.so, measured by a C program's own clocks.
//!
//! The shim is a cdylib whose internals cannot be imported here, so its hot path is measured from
//! outside: `benches/malloc_pair.c` (built with `cc -O2`) runs malloc/free pairs of 16 B-4 KiB in
//! 1 and 2 threads and prints wall ns, thread-CPU ns and TSC ticks per pair. Each configuration
//! runs as its own process, the configurations interleaved round by round (so drift in the
//! machine's load hits them alike); the table gives medians and the ratio / difference of CPU ns
//! per pair against no preload:
//!
//! - `no preload`
//! - `MEMSHIM_RATE=off`: interposed, sampling off (the forwarding cost)
//! - `1G (unsampled)`: the sampler's countdown runs but (practically) never fires: the cost of
//!   an unsampled pair
//! - `512K (default)`: the default rate (about one pair in 256 is sampled; the cost of those is
//!   spread over all pairs)
//! - `64K`, `4K`: sampled more often (unwinding + ring push on the sampled ones)
//! - `all`: every allocation and free recorded
//! - `1`: every allocation sampled (the cost of one sampled pair)
//!
//! The slow configurations (`4K`, `all`, `1`) run 1/50 of the pairs.
//!
//! `cargo bench -p memshim --bench malloc_pair [-- ROUNDS PAIRS] [--callgrind]`
//! (defaults 7 rounds, 4,000,000 pairs per thread). Needs `target/release/libmemshim.so`
//! (`cargo build --release -p memshim-shim`) or `MEMSHIM_LIB`. `--callgrind` adds instructions
//! per pair from `valgrind --tool=callgrind` (exact and repeatable on a noisy machine): the
//! difference between runs of 200,000 and 400,000 pairs, so start-up cancels out.
//! Not a timed test: the numbers go to BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const CONFIGS: &[(&str, Option<&str>, u64)] = &[
    // (label, MEMSHIM_RATE (None = no preload), divisor of the pair count)
    ("no preload", None, 1),
    ("MEMSHIM_RATE=off", Some("off"), 1),
    ("1G (unsampled)", Some("1G"), 1),
    ("512K (default)", Some("512K"), 1),
    ("64K", Some("64K"), 1),
    ("4K", Some("4K"), 50),
    ("all", Some("all"), 50),
    ("1 (every alloc)", Some("1"), 50),
];

#[derive(Default, Clone, Copy)]
struct Run {
    wall: f64,
    cpu: f64,
    tsc: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let rounds = nums.first().copied().unwrap_or(7).max(1) as usize;
    let pairs = nums.get(1).copied().unwrap_or(4_000_000).max(1000);
    let callgrind = args.iter().any(|a| a == "--callgrind");

    // MEMSHIM_LIB, else the build's own (the test-support crate's one lookup).
    let lib = memshim_test_support::shim_lib::shim_lib();
    let tmp = memshim_test_support::dirs::scratch("malloc_pair");
    let exe = tmp.join("malloc_pair");
    let src = memshim_test_support::dirs::repo().join("benches/malloc_pair.c");
    memshim_test_support::c_build::compile_to(&exe, &src, &["-O2", "-g", "-pthread"], &[]);

    println!(
        "malloc/free pairs of 16 B-4 KiB; {rounds} interleaved rounds; {pairs} pairs per thread \
         (1/50 of that for the slow rows); medians; lib {}",
        lib.display()
    );
    for threads in [1u32, 2] {
        let mut runs: BTreeMap<usize, Vec<Run>> = BTreeMap::new();
        for r in 0..rounds {
            // Rotate the starting configuration every round.
            for k in 0..CONFIGS.len() {
                let i = (k + r) % CONFIGS.len();
                let (_, rate, div) = CONFIGS[i];
                let run = run_once(&exe, &lib, &tmp, rate, threads, pairs / div, None);
                runs.entry(i).or_default().push(run);
                clean(&tmp, &exe);
            }
        }
        let base = median(runs[&0].iter().map(|r| r.cpu));
        println!("\nthreads: {threads}");
        println!(
            "  {:<18} {:>10} {:>10} {:>10} {:>12} {:>12}",
            "config", "wall ns", "CPU ns", "TSC ticks", "CPU ratio", "CPU delta ns"
        );
        for (i, (label, _, _)) in CONFIGS.iter().enumerate() {
            let v = &runs[&i];
            let cpu = median(v.iter().map(|r| r.cpu));
            println!(
                "  {:<18} {:>10.2} {:>10.2} {:>10.1} {:>11.3}x {:>+12.2}",
                label,
                median(v.iter().map(|r| r.wall)),
                cpu,
                median(v.iter().map(|r| r.tsc)),
                cpu / base,
                cpu - base
            );
        }
    }

    if callgrind {
        println!("\ninstructions per pair (callgrind, 1 thread, (Ir(400k) - Ir(200k)) / 200k):");
        let mut base = None;
        for (label, rate, _) in CONFIGS.iter().filter(|c| c.2 == 1) {
            let ir = |n: u64| {
                let out = tmp.join(format!("callgrind.{n}.out"));
                run_once(&exe, &lib, &tmp, *rate, 1, n, Some(&out));
                let ir = callgrind_total(&out);
                clean(&tmp, &exe);
                ir
            };
            let per = (ir(400_000) as f64 - ir(200_000) as f64) / 200_000.0;
            let b = *base.get_or_insert(per);
            println!(
                "  {label:<18} {per:>8.1} Ir/pair  ({:+.1} vs no preload)",
                per - b
            );
        }
    }
}

fn run_once(
    exe: &Path,
    lib: &Path,
    tmp: &Path,
    rate: Option<&str>,
    threads: u32,
    pairs: u64,
    callgrind_out: Option<&Path>,
) -> Run {
    let mut cmd = match callgrind_out {
        Some(out) => {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.arg(threads.to_string()).arg(pairs.to_string());
    cmd.env_remove("LD_PRELOAD");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MEMSHIM_") {
            cmd.env_remove(k);
        }
    }
    if let Some(rate) = rate {
        cmd.env("LD_PRELOAD", lib)
            .env("MEMSHIM_RATE", rate)
            .env("MEMSHIM_SEED", "1")
            .env("MEMSHIM_OUTPUT", tmp.join("pairs.%p.msh"));
    }
    let out = cmd.output().expect("benchmark program runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "malloc_pair failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |k: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {k}= in {text:?}"))
    };
    Run {
        wall: field("wall_ns"),
        cpu: field("cpu_ns"),
        tsc: field("tsc"),
    }
}

/// Removes captures and callgrind files, keeps the program.
fn clean(tmp: &Path, exe: &Path) {
    for e in std::fs::read_dir(tmp).unwrap().flatten() {
        if e.path() != exe {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// `summary:` / `totals:` line of a callgrind output file (instructions executed).
fn callgrind_total(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).expect("callgrind wrote its file");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("callgrind summary line")
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
