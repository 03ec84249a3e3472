//! A snapshot series' state besides the aggregates: its files and header, when the next
//! snapshot and tick are due, and what each new file must carry again.

use std::collections::VecDeque;

use memshim_format::snapshot::{Cause, EXTRA_CAPTURE, EXTRA_INTERVAL_NS, EXTRA_PART, EXTRA_SERIES};
use memshim_format::{Header, PyCode};
use rustc_hash::FxHashMap;

use super::aggregates::Aggregates;
use super::FLUSH_NS;
use crate::sys::real;

/// The shortest time between two snapshots for a new heap high.
const NEW_HIGH_GAP_NS: u64 = 1_000_000_000;

/// What snapshot mode adds to the writer.
pub struct SnapshotState {
    pub agg: Aggregates,
    pub interval_ns: u64,
    pub keep: u32,
    /// The header of the series' files (each part sets its number).
    pub header: Header,
    pub part: u32,
    /// The files of the series this process wrote, oldest first.
    pub files: VecDeque<String>,
    /// The series' first file as created: later parts are named after it.
    pub first: String,
    /// What a new file must carry again: the code names and thread names met so far.
    pub codes: FxHashMap<u64, PyCode>,
    pub threads: FxHashMap<u32, String>,
    /// A rollover is under way (its own flush must not roll over again).
    pub rolling: bool,
    last_tick_ns: u64,
}

/// `/d/memshim.123.msh` part 3 -> `/d/memshim.123.part3.msh`.
pub fn part_path(first: &str, part: u32) -> String {
    match first.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') && !stem.ends_with('/') => {
            format!("{stem}.part{part}.{ext}")
        }
        _ => format!("{first}.part{part}"),
    }
}

/// A series id: the pid, the start time and the fork generation, unique enough across a host.
fn series_id(header: &Header) -> String {
    format!("{:x}-{:x}", header.pid, header.start_unix_ns)
}

impl SnapshotState {
    /// The state for a capture with `header` (its first file is named by [`Self::first_file`]); adds the snapshot mode's
    /// named values to the header (before it is written).
    pub fn new(header: &mut Header, interval_ns: u64, keep: u32, budget: usize) -> Self {
        let series = series_id(header);
        header
            .extra
            .push((EXTRA_CAPTURE.into(), "snapshots".into()));
        header.extra.push((EXTRA_SERIES.into(), series));
        header.extra.push((EXTRA_PART.into(), "1".into()));
        header
            .extra
            .push((EXTRA_INTERVAL_NS.into(), interval_ns.to_string()));
        let now = real::now_ns();
        SnapshotState {
            agg: Aggregates::new(header.rate, budget, now),
            interval_ns,
            keep,
            header: header.clone(),
            part: 1,
            files: VecDeque::new(),
            first: String::new(),
            codes: FxHashMap::default(),
            threads: FxHashMap::default(),
            rolling: false,
            last_tick_ns: 0,
        }
    }

    /// The series' first file, as created (its name may differ from the one asked for).
    pub fn first_file(&mut self, path: &str) {
        self.files = VecDeque::from([path.to_string()]);
        self.first = path.to_string();
    }

    pub fn note_code(&mut self, code: &PyCode) {
        self.codes.entry(code.id).or_insert_with(|| code.clone());
    }

    pub fn note_thread(&mut self, tid: u32, name: &str) {
        self.threads.insert(tid, name.to_string());
    }

    /// Ticks in snapshot mode: two per interval (the timeline of a run of weeks needs no more; each costs a record), no more often than the flushes.
    pub fn tick_due(&mut self, now: u64) -> bool {
        let every = (self.interval_ns / 2).max(FLUSH_NS);
        if now.saturating_sub(self.last_tick_ns) >= every {
            self.last_tick_ns = now;
            return true;
        }
        false
    }

    /// Why a snapshot is due now, if one is.
    pub fn due(&self, now: u64) -> Option<Cause> {
        let since = now.saturating_sub(self.agg.last_snapshot_ns);
        if since >= self.interval_ns {
            Some(Cause::Interval)
        } else if since >= NEW_HIGH_GAP_NS && self.agg.new_high_due() {
            Some(Cause::NewHigh)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_named_after_the_first_file() {
        assert_eq!(part_path("/d/memshim.12.msh", 2), "/d/memshim.12.part2.msh");
        assert_eq!(
            part_path("/d/memshim.12.1.msh", 9),
            "/d/memshim.12.1.part9.msh"
        );
        assert_eq!(part_path("/d.x/capture", 3), "/d.x/capture.part3");
    }
}
