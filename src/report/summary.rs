//! Summary: process, duration, sampling, estimated totals, peak, live at end, drops.

use crate::analysis::Analysis;
use crate::units;

#[derive(Debug, Clone)]
pub struct Summary {
    pub pid: u32,
    pub ppid: u32,
    pub forked_from: Option<u32>,
    pub exe: String,
    pub argv: Vec<String>,
    pub duration_s: f64,
    /// 0 in `all` mode.
    pub interval: u64,
    pub allocated_bytes: f64,
    pub allocations: f64,
    pub peak_bytes: f64,
    pub peak_time_s: f64,
    pub live_at_end_bytes: f64,
    pub dropped: u64,
    pub peak_rss: u64,
    pub peak_rss_time_s: f64,
    pub peak_heap_in_use: u64,
    pub live_samples: usize,
    pub distinct_stacks: usize,
    pub records: u64,
    pub finalizing_s: Option<f64>,
    /// Which live set the leaks ranking shows: `python_finalizing` or `end`.
    pub leaks_at: &'static str,
    /// Estimated live bytes at the leaks point.
    pub leaked_bytes: f64,
    /// How it ended: `exit`, `_exit`, `signal N`, `truncated`.
    pub end: String,
}

pub fn build(a: &Analysis) -> Summary {
    let h = &a.header;
    Summary {
        pid: h.pid,
        ppid: h.ppid,
        forked_from: h.forked_from,
        exe: h.exe.clone(),
        argv: h.argv.clone(),
        duration_s: units::secs(a.last_t),
        interval: h.sample_interval,
        allocated_bytes: a.allocated_bytes,
        allocations: a.allocations,
        peak_bytes: a.peak_bytes,
        peak_time_s: units::secs(a.peak_t),
        live_at_end_bytes: a.live_total.max(0.0),
        dropped: a.dropped.total(),
        peak_rss: a.ticks.peak_rss,
        peak_rss_time_s: units::secs(a.ticks.peak_rss_t),
        peak_heap_in_use: a.ticks.peak_heap_in_use,
        live_samples: a.live_samples(),
        distinct_stacks: a.sites.len(),
        records: a.records,
        finalizing_s: a.finalizing_t.map(units::secs),
        leaks_at: a.leaks_at().name(),
        leaked_bytes: a.leaked_total(),
        end: a.end.clone(),
    }
}
