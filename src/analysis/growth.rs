//! Leak growth for processes that never exit: which sites' live bytes grow steadily.
//!
//! While loading, the live estimate of every site is taken at checkpoints spaced `interval`
//! apart (starting at 250 ms; when 64 are held, every other one is dropped and the spacing
//! doubles), so memory is bounded by 64 values per site whatever the run's length.
//!
//! Decision ([`RULE`]): with at least 8 checkpoints, a site grows steadily when the mean of its
//! live bytes rises from each quarter of the run to the next, its live bytes did not fall at
//! 70% or more of the checkpoint steps, it still rose over the last quarter (a cache that filled
//! and then stayed bounded is flat there), and it gained at least 64 KiB and 1% of the peak.
//! The rate shown is the least-squares slope over all checkpoints.

/// The rule, printed in reports.
pub const RULE: &str = "a site grows steadily when its live bytes, sampled at up to 64 evenly spaced checkpoints, \
rise in mean from each quarter of the run to the next, do not fall at >= 70% of the steps, still rise over the last quarter \
(last checkpoint above the quarter's first: a bounded cache that filled is flat there), and gain >= 64 KiB and >= 1% of the peak \
(needs >= 8 checkpoints); rate = least-squares slope";

const START_INTERVAL_NS: u64 = 250_000_000;
const MAX_POINTS: usize = 64;
const MIN_POINTS: usize = 8;

#[derive(Debug)]
pub struct Growth {
    interval: u64,
    next_t: u64,
    /// Checkpoint times (ns).
    pub times: Vec<u64>,
    /// Per dense stack: live bytes at each checkpoint (empty until the site first had live bytes).
    series: Vec<Vec<f32>>,
}

impl Default for Growth {
    fn default() -> Self {
        Growth {
            interval: START_INTERVAL_NS,
            next_t: START_INTERVAL_NS,
            times: vec![],
            series: vec![],
        }
    }
}

/// A steadily growing site.
#[derive(Debug, Clone, Copy)]
pub struct Grower {
    pub stack: u32,
    pub bytes_per_s: f64,
    pub gained: f64,
    /// Live bytes at the last checkpoint (for a Python process: when it began finalizing).
    pub last: f64,
}

impl Growth {
    /// True when time `t` has reached the next checkpoint.
    pub fn due(&self, t: u64) -> bool {
        t >= self.next_t
    }

    /// Records a checkpoint at `t` with each site's live bytes.
    pub fn checkpoint(&mut self, t: u64, live: impl Iterator<Item = f64>) {
        let k = self.times.len();
        for (i, v) in live.enumerate() {
            if i >= self.series.len() {
                self.series.push(Vec::new());
            }
            let s = &mut self.series[i];
            if s.is_empty() && v <= 0.0 {
                continue;
            }
            s.resize(k, 0.0);
            s.push(v as f32);
        }
        self.times.push(t);
        if self.times.len() >= MAX_POINTS {
            keep_even(&mut self.times);
            for s in &mut self.series {
                keep_even(s);
            }
            self.interval *= 2;
        }
        self.next_t = t + self.interval;
    }

    /// The sites that grow steadily, fastest first.
    pub fn growers(&self, peak_bytes: f64) -> Vec<Grower> {
        let n = self.times.len();
        if n < MIN_POINTS {
            return vec![];
        }
        let mut out = vec![];
        for (stack, s) in self.series.iter().enumerate() {
            if s.is_empty() {
                continue;
            }
            let v: Vec<f64> = (0..n)
                .map(|i| s.get(i).copied().unwrap_or(0.0) as f64)
                .collect();
            if let Some(g) = judge(&self.times, &v, peak_bytes) {
                out.push(Grower {
                    stack: stack as u32,
                    ..g
                });
            }
        }
        out.sort_by(|a, b| b.bytes_per_s.total_cmp(&a.bytes_per_s));
        out
    }
}

/// Applies [`RULE`] to one site's series.
fn judge(times: &[u64], v: &[f64], peak: f64) -> Option<Grower> {
    let n = v.len();
    let q = |k: usize| {
        let (a, b) = (k * n / 4, (k + 1) * n / 4);
        v[a..b].iter().sum::<f64>() / (b - a).max(1) as f64
    };
    let means = [q(0), q(1), q(2), q(3)];
    if !means.windows(2).all(|w| w[1] > w[0]) {
        return None;
    }
    // Still rising at the end: a cache that filled and then stayed bounded is flat here.
    if v[n - 1] <= v[3 * n / 4] {
        return None;
    }
    let steps = n - 1;
    let not_falling = v.windows(2).filter(|w| w[1] >= w[0]).count();
    if (not_falling as f64) < 0.7 * steps as f64 {
        return None;
    }
    let gained = v[n - 1] - v[0];
    if gained < 64.0 * 1024.0 || gained < 0.01 * peak {
        return None;
    }
    let ts: Vec<f64> = times.iter().map(|&t| t as f64 / 1e9).collect();
    let (mt, mv) = (
        ts.iter().sum::<f64>() / n as f64,
        v.iter().sum::<f64>() / n as f64,
    );
    let cov: f64 = ts.iter().zip(v).map(|(t, x)| (t - mt) * (x - mv)).sum();
    let var: f64 = ts.iter().map(|t| (t - mt) * (t - mt)).sum();
    let slope = if var > 0.0 { cov / var } else { 0.0 };
    Some(Grower {
        stack: 0,
        bytes_per_s: slope,
        gained,
        last: v[n - 1],
    })
}

fn keep_even<T: Copy>(v: &mut Vec<T>) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        (i - 1) % 2 == 0
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    type Curve = (u32, fn(f64) -> f64);

    fn run(series: &[Curve], secs: u64) -> Vec<Grower> {
        let mut g = Growth::default();
        let mut t = 0;
        while t <= secs * 1_000_000_000 {
            if g.due(t) {
                let x = t as f64 / 1e9;
                g.checkpoint(t, series.iter().map(|(_, f)| f(x)));
            }
            t += 10_000_000;
        }
        g.growers(100e6)
    }

    #[test]
    fn a_steady_leak_grows_and_a_flat_or_sawtooth_site_does_not() {
        let found = run(
            &[
                (0, |x| 1e6 * x),                    // leaks 1 MB/s
                (1, |_| 50e6),                       // flat cache
                (2, |x| 20e6 * ((x * 0.7).fract())), // sawtooth: grows then drops
            ],
            120,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].stack, 0);
        assert!((found[0].bytes_per_s - 1e6).abs() < 0.05e6, "{found:?}");
    }

    #[test]
    fn a_cache_that_fills_then_stays_bounded_does_not_grow() {
        // Fills for the first 70% of the run (quarter means rise), then flat at 8 MB.
        let found = run(&[(0, |x| (x / 7.0).min(1.0) * 8e6)], 10);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn checkpoints_stay_bounded_over_a_long_run() {
        let mut g = Growth::default();
        for s in 0..100_000u64 {
            let t = s * 1_000_000_000;
            if g.due(t) {
                g.checkpoint(t, std::iter::once(s as f64));
            }
        }
        assert!(g.times.len() < MAX_POINTS);
        assert!(g.times.len() >= MAX_POINTS / 2);
        assert!(g.series[0].len() == g.times.len());
    }

    #[test]
    fn too_short_a_run_decides_nothing() {
        assert!(run(&[(0, |x| 1e6 * x)], 1).is_empty());
    }
}
