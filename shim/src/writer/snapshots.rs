//! Snapshot mode (`MEMSHIM_MODE=snapshots`): the writer keeps [`Aggregates`] instead of writing
//! each event, and appends a snapshot every `MEMSHIM_INTERVAL`, at each new heap high 10% above
//! the previous snapshot's (at most one a second), when Python begins finalizing, on request,
//! and on every exit path; each is flushed at once, so a SIGKILL leaves every snapshot before it
//! readable. When the file would pass `MEMSHIM_MAX_SIZE`, the series rolls over to its next
//! file (`NAME.partN.msh`), which starts with the module map, the code names, the thread names
//! and a complete snapshot; `MEMSHIM_KEEP` files of the series are kept, the older removed (the
//! only files memshim ever deletes, and only its own series').

use memshim_format::snapshot::{Cause, EXTRA_PART};
use memshim_format::{PyCode, Record};

use super::capture::Writer;
use super::series::part_path;
use crate::sys::real;

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
