//! Poisson byte sampling: each thread counts down bytes to its next sample, the gaps drawn from an
//! exponential distribution with mean R (as Go's `nextSample` and jemalloc). An allocation of size
//! s is then sampled with probability 1 - exp(-s/R), the figure the CLI unbiases by.

use core::sync::atomic::{AtomicU64, Ordering};

/// Threads seeded so far; with MEMSHIM_SEED it makes each thread's sequence distinct yet fixed.
static THREADS_SEEDED: AtomicU64 = AtomicU64::new(0);

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seeds this thread's generator: from MEMSHIM_SEED and the thread's order when given, otherwise
/// from the clock, the thread id and a stack address. Returns the generator's state, for the
/// fork generation `gen`.
pub fn seed(fixed: Option<u64>, tid: u32, gen: u32) -> u64 {
    // Relaxed: only uniqueness of the ordinal matters.
    let ordinal = THREADS_SEEDED.fetch_add(1, Ordering::Relaxed);
    let base = match fixed {
        Some(s) => s ^ ordinal.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ ((gen as u64) << 48),
        None => {
            let local = 0u8;
            crate::sys::real::now_ns() ^ ((tid as u64) << 32) ^ (&local as *const u8 as u64)
        }
    };
    splitmix(base) | 1
}

/// Bytes until the next sample: an exponential draw with mean `rate`, at least 1.
pub fn next_gap(rng: &mut u64, rate: u64) -> u64 {
    // xorshift64*: fast, no state beyond one word, good enough for gap lengths.
    let mut x = *rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    // u in (0, 1]: never 0, so ln is finite.
    let u = ((r >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let gap = -ln(u) * rate as f64;
    (gap as u64).max(1)
}

/// Probability that a sample of `size` bytes is taken at `rate` (1 at rate 0, `all`):
/// `1 - exp(-size/rate)`, as `memshim_format::sample_probability` computes it with libm's
/// `expm1`. Here without libm (a preload links only libc, libgcc_s, libpthread, libdl and the
/// loader): a small `size/rate` by its series, a larger one through [`exp_neg`].
pub fn sample_probability(size: u64, rate: u64) -> f64 {
    if rate == 0 {
        return 1.0;
    }
    let x = size as f64 / rate as f64;
    let p = if x < 1e-3 {
        // -expm1(-x) = x - x^2/2 + x^3/6 - x^4/24: the next term is below 1e-15 of x.
        x * (1.0 - x / 2.0 * (1.0 - x / 3.0 * (1.0 - x / 4.0)))
    } else {
        1.0 - exp_neg(x)
    };
    if p > 0.0 {
        p
    } else {
        1.0 / rate as f64
    }
}

/// `exp(-x)` for `x >= 0`, to about 1e-15 relative: x = k ln2 + r with |r| <= ln2/2, exp(-r) by
/// its Taylor series to r^13, scaled by 2^-k through the exponent bits.
pub fn exp_neg(x: f64) -> f64 {
    const LN2: f64 = core::f64::consts::LN_2;
    if x > 745.0 {
        return 0.0;
    }
    let k = (x / LN2 + 0.5) as i64;
    let r = x - k as f64 * LN2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..=13 {
        term *= -r / n as f64;
        sum += term;
    }
    if k >= 1022 {
        return 0.0;
    }
    sum * f64::from_bits(((1023 - k) as u64) << 52)
}

/// `x` rounded to the nearest whole number, for `x >= 0` (libm's `round` without libm).
pub fn round_u64(x: f64) -> u64 {
    (x + 0.5) as u64
}

/// Natural log of a positive normal `x`, to about 2e-9 relative: x = m * 2^e with m in
/// [sqrt(1/2), sqrt(2)), and ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, summed to
/// s^9. libm's `log` is exact to the last bit and costs several times more; a gap only needs to
/// follow the exponential distribution far closer than sampling noise can tell (the CLI's
/// weights assume that distribution).
fn ln(x: f64) -> f64 {
    const LN2: f64 = core::f64::consts::LN_2;
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e as f64 * LN2 + 2.0 * s * series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_matches_libm() {
        let mut worst = 0f64;
        let mut x = 1.0 / (1u64 << 53) as f64;
        while x <= 1.0 {
            for k in 0..64 {
                let v = (x * (1.0 + k as f64 / 64.0)).min(1.0);
                let (ours, libm) = (ln(v), v.ln());
                let err = if libm == 0.0 {
                    ours.abs()
                } else {
                    ((ours - libm) / libm).abs()
                };
                worst = worst.max(err);
            }
            x *= 2.0;
        }
        assert!(worst < 1e-8, "worst relative error {worst:e}");
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn the_probability_matches_libms() {
        let rate = 512 << 10;
        for size in [
            1u64,
            16,
            100,
            4096,
            65536,
            512 << 10,
            1 << 20,
            8 << 20,
            1 << 30,
        ] {
            let (ours, libm) = (
                sample_probability(size, rate),
                memshim_format::sample_probability(size, rate),
            );
            assert!(
                ((ours - libm) / libm).abs() < 1e-12,
                "{size}: {ours} vs {libm}"
            );
        }
        assert_eq!(sample_probability(5, 0), 1.0);
        assert_eq!(round_u64(2.5), 3);
        assert_eq!(round_u64(2.49), 2);
    }

    #[test]
    fn gaps_have_the_requested_mean() {
        let mut rng = seed(Some(7), 1, 0);
        let n = 200_000;
        let mean = 512 << 10;
        let sum: u64 = (0..n).map(|_| next_gap(&mut rng, mean)).sum();
        let got = sum as f64 / n as f64;
        assert!((got / mean as f64 - 1.0).abs() < 0.01, "mean gap {got}");
    }
}
