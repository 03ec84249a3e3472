//! Snapshot mode (`MEMSHIM_MODE=snapshots`): the writer keeps [`Aggregates`] instead of writing
//! each event, and appends a snapshot every `MEMSHIM_INTERVAL`, at each new heap high 10% above
//! the previous snapshot's (at most one a second), when Python begins finalizing, on request,
//! and on every exit path; each is flushed at once, so a SIGKILL leaves every snapshot before it
//! readable. When the file would pass `MEMSHIM_MAX_SIZE`, the series rolls over to its next
//! file (`NAME.partN.msh`), which starts with the module map, the code names, the thread names
//! and a complete snapshot; `MEMSHIM_KEEP` files of the series are kept, the older removed (the
//! only files memshim ever deletes, and only its own series').

use std::collections::VecDeque;

use memshim_format::snapshot::{Cause, EXTRA_CAPTURE, EXTRA_INTERVAL_NS, EXTRA_PART, EXTRA_SERIES};
use memshim_format::{Header, PyCode, Record};
use rustc_hash::FxHashMap;

use super::aggregates::Aggregates;
use super::capture::{Writer, FLUSH_NS};
use crate::sys::real;

/// The shortest time between two snapshots for a new heap high.
const NEW_HIGH_GAP_NS: u64 = 1_000_000_000;

/// What snapshot mode adds to the writer.
pub struct SnapshotState {
    pub agg: Aggregates,
    pub interval_ns: u64,
    keep: u32,
    /// The header of the series' files (each part sets its number).
    header: Header,
    part: u32,
    /// The files of the series this process wrote, oldest first.
    files: VecDeque<String>,
    /// What a new file must carry again: the code names and thread names met so far.
    codes: FxHashMap<u64, PyCode>,
    threads: FxHashMap<u32, String>,
    /// A rollover is under way (its own flush must not roll over again).
    rolling: bool,
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
    /// The state for a capture with `header`, whose file is `path`; adds the snapshot mode's
    /// named values to the header (before it is written).
    pub fn new(
        header: &mut Header,
        path_hint: &str,
        interval_ns: u64,
        keep: u32,
        budget: usize,
    ) -> Self {
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
            files: VecDeque::from([path_hint.to_string()]),
            codes: FxHashMap::default(),
            threads: FxHashMap::default(),
            rolling: false,
            last_tick_ns: 0,
        }
    }

    /// The series' first file, as created (its name may differ from the one asked for).
    pub fn first_file(&mut self, path: &str) {
        self.files = VecDeque::from([path.to_string()]);
    }

    pub fn note_code(&mut self, code: &PyCode) {
        self.codes.entry(code.id).or_insert_with(|| code.clone());
    }

    pub fn note_thread(&mut self, tid: u32, name: &str) {
        self.threads.insert(tid, name.to_string());
    }

    /// Ticks in snapshot mode: four per interval, no more often than the flushes.
    pub fn tick_due(&mut self, now: u64) -> bool {
        let every = (self.interval_ns / 4).max(FLUSH_NS);
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

impl Writer {
    /// Appends a snapshot of the aggregates and flushes it.
    pub(super) fn write_snapshot(&mut self, cause: Cause, complete: bool) {
        let Some(s) = self.snap.as_mut() else { return };
        let now = real::now_ns();
        let t = now.saturating_sub(self.start);
        let snap = s.agg.snapshot(t, now, cause, complete);
        self.chunk.push(&snap.to_record());
        self.flush();
    }

    /// The snapshot-mode part of a writer round: ticks, and a snapshot when one is due.
    pub(super) fn snapshot_step(&mut self, now: u64) {
        let Some(s) = self.snap.as_mut() else { return };
        let tick = s.tick_due(now);
        let due = s.due(now);
        if tick {
            self.tick();
        }
        if let Some(cause) = due {
            self.write_snapshot(cause, false);
        }
    }

    /// The file would pass `MEMSHIM_MAX_SIZE`: the series goes on in its next file. False when
    /// it cannot (not snapshot mode, a rollover already under way, the file cannot be made).
    pub(super) fn roll_over(&mut self) -> bool {
        let Some(s) = self.snap.as_mut() else {
            return false;
        };
        if s.rolling {
            return false;
        }
        s.rolling = true;
        s.part += 1;
        let first = s.files.front().cloned().unwrap_or_default();
        let path = part_path(&first, s.part);
        let mut header = s.header.clone();
        for (k, v) in header.extra.iter_mut() {
            if k == EXTRA_PART {
                *v = s.part.to_string();
            }
        }
        // What the old file had pending names its stacks: the new file starts over.
        self.chunk = memshim_format::ChunkBuilder::new();
        self.out.clear();
        self.cuts.clear();
        if self.reopen(&path, &header).is_err() {
            return false;
        }
        let Some(s) = self.snap.as_mut() else {
            return false;
        };
        s.files.push_back(self.file.path().to_string());
        while s.files.len() > s.keep as usize {
            if let Some(old) = s.files.pop_front() {
                // Only a file this process wrote, of this series.
                let _ = std::fs::remove_file(old);
            }
        }
        // Everything the readers of this file need, again.
        let mut codes: Vec<PyCode> = s.codes.values().cloned().collect();
        codes.sort_by_key(|c| c.id);
        let threads: Vec<(u32, String)> = s.threads.iter().map(|(t, n)| (*t, n.clone())).collect();
        self.chunk.push(&Record::Modules(self.map.clone()));
        for c in codes {
            self.chunk.push(&Record::PyCode(c));
        }
        for (tid, name) in threads {
            self.chunk.push(&Record::Thread { tid, name });
        }
        self.stacks = super::stack_table::StackTable::new(self.stack_budget);
        let mut agg = self.snap.take().expect("snapshot mode");
        agg.agg
            .rewrite_stacks(|words, native| self.intern(words, native));
        self.snap = Some(agg);
        self.tick();
        self.write_snapshot(Cause::Start, true);
        if let Some(s) = self.snap.as_mut() {
            s.rolling = false;
        }
        true
    }
}
