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
    pub rate: u64,
    pub allocated_bytes: f64,
    pub allocations: f64,
    pub peak_bytes: f64,
    pub peak_time_s: f64,
    pub live_at_end_bytes: f64,
    pub dropped: u64,
    pub peak_rss: u64,
    pub peak_rss_time_s: f64,
    pub peak_heap_in_use: u64,
    /// The cgroup's memory limit at capture start, when one was set.
    pub cgroup_memory_max: Option<u64>,
    /// The timeline tick where the estimated live bytes were highest.
    pub tick_at_live_peak: Option<crate::analysis::ticks::Point>,
    pub live_samples: usize,
    pub distinct_stacks: usize,
    pub records: u64,
    pub finalizing_s: Option<f64>,
    /// The headline: leaked plus growing bytes (see `report::sections`).
    pub leaks_bytes: f64,
    /// The program's own bytes live at the end.
    pub leaked_bytes: f64,
    /// Live when Python began finalizing and freed by it.
    pub held_bytes: f64,
    /// Live when Python began finalizing (all of it: held, leaked and the runtime's).
    pub finalizing_live_bytes: f64,
    /// Live at the end, kept by the interpreter (pymalloc arenas) and by the dynamic loader.
    pub interpreter_kept_bytes: f64,
    pub loader_kept_bytes: f64,
    /// How it ended: `exit`, `_exit`, `signal N`, `truncated`.
    pub end: String,
    /// A snapshot capture's run (`None` for an event capture).
    pub snapshots: Option<SnapshotSummary>,
    /// The program's marks (`memshim.mark`) the report saw.
    pub marks: Vec<crate::analysis::Mark>,
}

/// What a report says of a snapshot capture's run.
#[derive(Debug, Clone)]
pub struct SnapshotSummary {
    pub snapshots: u64,
    pub parts: u32,
    /// The process had not ended at its newest snapshot: its live set is live now, not leaks.
    pub running: bool,
    pub newest_s: Option<f64>,
    pub interval_s: f64,
    /// Allocations from before this time are not counted (recording was restarted).
    pub counted_from_s: Option<f64>,
    pub since_s: Option<f64>,
    pub until_s: Option<f64>,
}

pub fn build(a: &Analysis, sec: &super::sections::Sections) -> Summary {
    let (interp, loader) = sec.runtime_totals(a);
    let h = &a.header;
    Summary {
        pid: h.pid,
        ppid: h.ppid,
        forked_from: h.forked_from,
        exe: h.exe.clone(),
        argv: h.argv.clone(),
        duration_s: units::secs(a.last_t),
        rate: h.rate,
        allocated_bytes: a.allocated_bytes,
        allocations: a.allocations,
        peak_bytes: a.peak_bytes,
        peak_time_s: units::secs(a.peak_t),
        live_at_end_bytes: a.live_total.max(0.0),
        dropped: a.dropped.total(),
        peak_rss: a.ticks.peak_rss,
        peak_rss_time_s: units::secs(a.ticks.peak_rss_t),
        peak_heap_in_use: a.ticks.peak_heap_in_use,
        cgroup_memory_max: crate::analysis::cgroup_limit::of(h),
        tick_at_live_peak: a
            .ticks
            .points
            .iter()
            .copied()
            .max_by(|x, y| x.live_est.total_cmp(&y.live_est)),
        live_samples: a.live_samples(),
        distinct_stacks: a.sites.len(),
        records: a.records,
        finalizing_s: a.finalizing_t.map(units::secs),
        leaks_bytes: sec.headline_total(a),
        leaked_bytes: sec.leaked_total(a),
        held_bytes: sec.held_total(a),
        finalizing_live_bytes: a.finalizing_total.max(0.0),
        interpreter_kept_bytes: interp,
        loader_kept_bytes: loader,
        end: a.end.clone(),
        snapshots: a.snap.as_ref().map(|r| SnapshotSummary {
            snapshots: r.snapshots,
            parts: r.parts,
            running: !r.ended,
            newest_s: r.newest_t.map(units::secs),
            interval_s: units::secs(r.interval_ns),
            counted_from_s: (r.counted_from > 0).then(|| units::secs(r.counted_from)),
            since_s: a.times.since.map(units::secs),
            until_s: a.times.until.map(units::secs),
        }),
        marks: a.marks.clone(),
    }
}
