//! Timeline ticks: RSS, the heap in use and the sampled totals, every flush and more often in
//! the first seconds.

use memshim_format::Record;

use super::capture::{drops, Writer};
use crate::sys::real;

impl Writer {
    pub(super) fn tick(&mut self) {
        self.last_heap = self.heap.read();
        self.tick_with_heap(self.last_heap);
    }

    /// A tick between flushes: RSS and the sampled totals read now, glibc's heap as last read
    /// (probed only on the flush ticks, so the early ticks add no probe of its cost).
    pub(super) fn early_tick(&mut self) {
        self.tick_with_heap(self.last_heap);
    }

    pub(super) fn tick_with_heap(&mut self, heap_in_use: u64) {
        let now = real::now_ns();
        self.last_tick = now;
        let t = self.rel(now);
        let rss = self.statm.rss(self.page);
        self.chunk.push(&Record::Tick {
            t,
            rss,
            // glibc's heap (0 once probing gave up; between flushes, as last read) plus the
            // region's live blocks.
            heap_in_use: heap_in_use + self.region_live,
            sampled_allocated: self.sampled_allocated,
            sampled_freed: self.sampled_freed,
            dropped: drops(),
        });
    }
}
