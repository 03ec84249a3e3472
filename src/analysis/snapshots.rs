//! Snapshot captures (`MEMSHIM_MODE=snapshots`) folded into the same [`Analysis`] an event
//! capture makes, so every report and export reads them unchanged:
//!
//! - a site's live bytes and count are the newest snapshot's (a stack a snapshot does not list
//!   has nothing live); its allocations are its cumulative counters, less those of the newest
//!   snapshot before `--since`;
//! - each snapshot is a growth checkpoint, up to the one written when Python began finalizing;
//! - the peak is the snapshot whose `high_bytes` is highest, with the sites' `high_*` (what was
//!   live at that high);
//! - a run with a snapshot of cause `End` ended: leaked is what is live at it, held at exit what
//!   was live at the `Finalizing` snapshot and is no longer. A run without one (still running,
//!   or killed) has no leaks, only its live set now ([`Analysis::live_now`]) and growth.
//!
//! Work per snapshot is linear in the sites it lists plus the sites live before it, and one
//! growth checkpoint (linear in sites).

use memshim_format::snapshot::{Cause, Snapshot};
use memshim_format::Header;

use crate::analysis::Analysis;

/// What a snapshot capture's run holds beyond an event capture's.
#[derive(Debug, Default, Clone)]
pub struct SnapshotRun {
    /// Snapshots counted (inside the window).
    pub snapshots: u64,
    /// Files of the series read.
    pub parts: u32,
    /// A snapshot of cause `End` was counted: the process ended.
    pub ended: bool,
    /// Time of the newest snapshot counted.
    pub newest_t: Option<u64>,
    /// The newest counted snapshot's `counted_from` (ns from the start): allocations before it
    /// were not counted (recording was restarted). 0 when it ran from the start.
    pub counted_from: u64,
    /// The snapshot interval (`interval_ns` in the header), 0 when not said.
    pub interval_ns: u64,
    /// Snapshot records that did not decode (skipped).
    pub undecodable: u64,
    /// Sites with live bytes at the newest snapshot.
    live: Vec<u32>,
    /// Per site: the newest cumulative counters seen, and those before the window (subtracted).
    raw_alloc: Vec<(f64, f64)>,
    base_alloc: Vec<(f64, f64)>,
    /// (site, bytes, count) live at the highest heap.
    at_peak: Vec<(u32, f64, f64)>,
    /// Per site: live (bytes, count) at the `Finalizing` snapshot.
    at_finalizing: Option<Vec<(f64, f64)>>,
    /// Added to the times of the file being read: its start less the series' first file's.
    t_offset: u64,
    first_start_ns: u64,
}

impl SnapshotRun {
    pub fn new(h: &Header) -> Self {
        SnapshotRun {
            parts: 1,
            interval_ns: crate::capture::kind::extra(
                h,
                memshim_format::snapshot::EXTRA_INTERVAL_NS,
            )
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
            first_start_ns: h.start_mono_ns,
            ..Default::default()
        }
    }

    /// Times of a later file of the series are moved to the series' clock.
    pub fn t(&self, t: u64) -> u64 {
        t + self.t_offset
    }
}

impl Analysis {
    /// True for a snapshot capture whose process had not ended at its newest counted
    /// snapshot: its live set is "live now", not leaks.
    pub fn live_now(&self) -> bool {
        self.snap.as_ref().is_some_and(|s| !s.ended)
    }

    /// The next file of a rolled-over series begins: its stack ids are its own.
    pub fn next_file(&mut self, h: &Header) {
        self.stack_ids.clear();
        if let Some(s) = &mut self.snap {
            s.parts += 1;
            s.t_offset = h.start_mono_ns.saturating_sub(s.first_start_ns);
        }
    }

    pub(super) fn snapshot(&mut self, data: &Snapshot) {
        let Some(run) = self.snap.as_ref() else {
            return;
        };
        let off = run.t_offset;
        let t = data.t + off;
        if self.times.after(t) {
            return;
        }
        let idx: Vec<u32> = data.sites.iter().map(|c| self.site_for(c.stack)).collect();
        let n = self.sites.len();
        let run = self.snap.as_mut().expect("checked above");
        run.raw_alloc.resize(n, (0.0, 0.0));
        run.base_alloc.resize(n, (0.0, 0.0));
        if self.times.before(t) {
            // Before the window: only its allocation counters count, as the base.
            for (c, &i) in data.sites.iter().zip(&idx) {
                run.base_alloc[i as usize] = (c.alloc_bytes as f64, c.alloc_count as f64);
            }
            return;
        }
        run.snapshots += 1;
        run.newest_t = Some(t);
        run.counted_from = if data.counted_from > 0 {
            data.counted_from + off
        } else {
            0
        };
        for i in std::mem::take(&mut run.live) {
            let s = &mut self.sites[i as usize];
            s.live_bytes = 0.0;
            s.live_count = 0.0;
        }
        for (c, &i) in data.sites.iter().zip(&idx) {
            let s = &mut self.sites[i as usize];
            s.live_bytes = c.live_bytes as f64;
            s.live_count = c.live_count as f64;
            if c.live_bytes > 0 {
                run.live.push(i);
            }
            let raw = (c.alloc_bytes as f64, c.alloc_count as f64);
            run.raw_alloc[i as usize] = raw;
            let base = run.base_alloc[i as usize];
            let (bytes, count) = ((raw.0 - base.0).max(0.0), (raw.1 - base.1).max(0.0));
            self.allocated_bytes += bytes - s.alloc_bytes;
            self.allocations += count - s.alloc_count;
            s.alloc_bytes = bytes;
            s.alloc_count = count;
        }
        self.live_total = data.live_bytes as f64;
        // The highest heap since the previous snapshot; a writer that did not track it leaves
        // it below the live heap, and then the live set is the high.
        let tracked = data.high_bytes >= data.live_bytes;
        let high = data.high_bytes.max(data.live_bytes) as f64;
        if run.snapshots == 1 || high > self.peak_bytes {
            self.peak_bytes = high;
            self.peak_t = if tracked { data.high_t + off } else { t };
            run.at_peak = data
                .sites
                .iter()
                .zip(&idx)
                .map(|(c, &i)| {
                    let (b, k) = if tracked {
                        (c.high_bytes, c.high_count)
                    } else {
                        (c.live_bytes, c.live_count)
                    };
                    (i, b as f64, k as f64)
                })
                .collect();
        }
        if data.cause == Cause::End {
            run.ended = true;
        }
        self.time(t);
        if self.finalizing_t.is_none() {
            // Growth is judged on the run before finalization frees the globals.
            self.growth
                .checkpoint(t, self.sites.iter().map(|s| s.live_bytes));
            if data.cause == Cause::Finalizing {
                self.finalizing_t = Some(t);
                self.finalizing_total = self.live_total;
                let live = self
                    .sites
                    .iter()
                    .map(|s| (s.live_bytes, s.live_count))
                    .collect();
                if let Some(run) = &mut self.snap {
                    run.at_finalizing = Some(live);
                }
            }
        }
    }

    /// Once every snapshot is read: what was live at the peak, and held at exit.
    pub(super) fn finish_snapshots(&mut self) {
        let Some(run) = self.snap.take() else {
            return;
        };
        for s in &mut self.sites {
            s.since_peak = (s.live_bytes, s.live_count);
            s.held_bytes = 0.0;
            s.held_count = 0.0;
        }
        for &(i, b, c) in &run.at_peak {
            let s = &mut self.sites[i as usize];
            s.since_peak = (s.live_bytes - b, s.live_count - c);
        }
        if let (true, Some(fin)) = (run.ended, &run.at_finalizing) {
            for (s, &(b, c)) in self.sites.iter_mut().zip(fin) {
                s.held_bytes = (b - s.live_bytes).max(0.0);
                s.held_count = (c - s.live_count).max(0.0);
            }
        }
        self.snap = Some(run);
    }
}
