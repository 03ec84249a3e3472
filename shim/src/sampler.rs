//! Poisson byte sampling: each thread counts down bytes to its next sample, the gaps drawn from an
//! exponential distribution with mean R (as Go's `nextSample` and jemalloc). An allocation of size
//! s is then sampled with probability 1 - exp(-s/R), the figure the CLI unbiases by.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::thread::ThreadState;

/// Bumped in the child after every fork, so inherited RNG states are reseeded.
pub static FORK_GEN: AtomicU32 = AtomicU32::new(0);
/// Threads seeded so far; with MEMSHIM_SEED it makes each thread's sequence distinct yet fixed.
static THREADS_SEEDED: AtomicU64 = AtomicU64::new(0);

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seeds this thread's generator: from MEMSHIM_SEED and the thread's order when given, otherwise
/// from the clock, the thread id and a stack address.
pub fn seed(t: &mut ThreadState, fixed: Option<u64>, tid: u32) {
    // Relaxed: only uniqueness of the ordinal matters.
    let ordinal = THREADS_SEEDED.fetch_add(1, Ordering::Relaxed);
    let gen = FORK_GEN.load(Ordering::Relaxed);
    let base = match fixed {
        Some(s) => s ^ ordinal.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ ((gen as u64) << 48),
        None => {
            let local = 0u8;
            crate::real::now_ns() ^ ((tid as u64) << 32) ^ (&local as *const u8 as u64)
        }
    };
    t.rng = splitmix(base) | 1;
    t.fork_gen = gen;
}

/// Bytes until the next sample: an exponential draw with mean `mean`, at least 1.
pub fn next_gap(t: &mut ThreadState, mean: u64) -> u64 {
    // xorshift64*: fast, no state beyond one word, good enough for gap lengths.
    let mut x = t.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t.rng = x;
    let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    // u in (0, 1]: never 0, so ln is finite.
    let u = ((r >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let gap = -u.ln() * mean as f64;
    (gap as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_have_the_requested_mean() {
        let mut t = ThreadState {
            countdown: 0,
            rng: 0,
            busy: 0,
            tid: 0,
            fork_gen: 0,
            flags: 0,
        };
        seed(&mut t, Some(7), 1);
        let n = 200_000;
        let mean = 512 << 10;
        let sum: u64 = (0..n).map(|_| next_gap(&mut t, mean)).sum();
        let got = sum as f64 / n as f64;
        assert!((got / mean as f64 - 1.0).abs() < 0.01, "mean gap {got}");
    }
}
