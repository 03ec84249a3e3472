//! Memory over time, from the writer's `Tick` records (every 80 ms, more often in a run's first 2 s, four per interval in a snapshot capture), bounded: past
//! [`MAX_POINTS`] points, neighbours are merged keeping each series' maximum, so peaks survive.

/// Most points kept for the timeline.
pub const MAX_POINTS: usize = 8192;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Point {
    pub t: u64,
    pub rss: u64,
    /// Allocator-reported heap in use (0 when unknown).
    pub heap_in_use: u64,
    /// Estimated live bytes from the samples (heap and mappings).
    pub live_est: f64,
    /// The estimated live bytes of heap blocks only (no memory mappings): what the allocator's
    /// heap in use holds of the sampled estimate.
    pub live_heap_est: f64,
}

#[derive(Debug, Default)]
pub struct Ticks {
    pub points: Vec<Point>,
    pub peak_rss: u64,
    pub peak_rss_t: u64,
    pub peak_heap_in_use: u64,
    pub peak_heap_in_use_t: u64,
}

impl Ticks {
    pub fn push(&mut self, p: Point) {
        if p.rss > self.peak_rss {
            self.peak_rss = p.rss;
            self.peak_rss_t = p.t;
        }
        if p.heap_in_use > self.peak_heap_in_use {
            self.peak_heap_in_use = p.heap_in_use;
            self.peak_heap_in_use_t = p.t;
        }
        self.points.push(p);
        if self.points.len() >= MAX_POINTS {
            self.points = self
                .points
                .chunks(2)
                .map(|c| {
                    c.iter().fold(
                        Point {
                            t: c[0].t,
                            ..Point::default()
                        },
                        |a, b| Point {
                            t: a.t,
                            rss: a.rss.max(b.rss),
                            heap_in_use: a.heap_in_use.max(b.heap_in_use),
                            live_est: a.live_est.max(b.live_est),
                            live_heap_est: a.live_heap_est.max(b.live_heap_est),
                        },
                    )
                })
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_the_peak() {
        let mut t = Ticks::default();
        for i in 0..(3 * MAX_POINTS as u64) {
            let rss = if i == 12345 { 999 } else { 1 };
            t.push(Point {
                t: i,
                rss,
                heap_in_use: 0,
                live_est: 0.0,
                live_heap_est: 0.0,
            });
        }
        assert!(t.points.len() < MAX_POINTS);
        assert_eq!(t.points.iter().map(|p| p.rss).max(), Some(999));
        assert_eq!((t.peak_rss, t.peak_rss_t), (999, 12345));
    }
}
