//! Folds a capture's records, as they stream by, into per-site estimates: totals allocated,
//! short-lived, live at the end, live at the peak, and checkpoints for leak growth.
//!
//! Memory grows with distinct stacks and live samples only: a record is applied and dropped.
//! Estimates weigh each sample by the unbiased weight `1 / (1 - exp(-size / rate))`
//! (`memshim_format::sample_weight`); in `all` mode every weight is 1.
//!
//! The peak is the highest estimated live total (heap and mappings) reached at any record. What
//! was live then is kept without snapshots: `since_peak` holds, per site, the change since the
//! last peak (cleared at each new peak), so at the end `at_peak = live - since_peak`.

pub mod cgroup_limit;
mod from_file;
pub mod growth;
pub mod live;
pub mod live_at;
pub mod snapshots;
pub mod ticks;
pub mod time_window;
pub mod window;

pub use from_file::{analyze, analyze_any, analyze_window, analyze_windows};

use std::collections::HashMap;

use memshim_format::{
    sample_weight, AllocKind, Drops, EndKind, Header, Marker, PyCode, PyFrame, Record,
};

use crate::analysis::growth::Growth;
use crate::analysis::live::{Live, LiveAlloc};
use crate::analysis::ticks::{Point, Ticks};
use crate::capture::modules::{Addr, ModuleTable};

/// An allocation freed within this long of its allocation counts as short-lived.
pub const SHORT_LIVED_NS: u64 = 100_000_000;

/// A mark the program made: when, what it said, which thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub t: u64,
    pub label: String,
    pub thread: u32,
}

/// What one distinct stack (a site) did.
#[derive(Debug, Default, Clone)]
pub struct Site {
    pub frames: Vec<Addr>,
    pub python: Vec<PyFrame>,
    pub alloc_bytes: f64,
    pub alloc_count: f64,
    pub short_lived_count: f64,
    pub short_lived_bytes: f64,
    pub live_bytes: f64,
    pub live_count: f64,
    /// Held at exit: allocated before Python began finalizing and freed by finalization (or
    /// after it, by a library's destructor), in bytes and count.
    pub held_bytes: f64,
    pub held_count: f64,
    /// Its allocations are memory mappings.
    pub mmap: bool,
    /// Change since the peak, in bytes and count (see the module docs).
    since_peak: (f64, f64),
}

impl Site {
    /// Live bytes and count when the estimated heap was at its peak.
    pub fn at_peak(&self) -> (f64, f64) {
        (
            self.live_bytes - self.since_peak.0,
            self.live_count - self.since_peak.1,
        )
    }
}

#[derive(Debug, Default)]
pub struct Analysis {
    pub header: Header,
    pub modules: ModuleTable,
    pub sites: Vec<Site>,
    stack_ids: HashMap<u64, u32>,
    /// Site of each distinct stack (resolved frames, Python frames) written so far.
    site_of_stack: HashMap<(Vec<Addr>, Vec<PyFrame>), u32>,
    live: Live,
    pub pycodes: HashMap<u64, PyCode>,
    pub threads: HashMap<u32, String>,
    pub ticks: Ticks,
    pub growth: Growth,
    /// Sites touched since the last peak (their `since_peak` is non-zero).
    touched: Vec<u32>,
    pub live_total: f64,
    /// The part of `live_total` in memory mappings (sites whose allocations are mappings).
    pub live_maps_total: f64,
    pub peak_bytes: f64,
    pub peak_t: u64,
    pub allocated_bytes: f64,
    pub allocations: f64,
    pub inherited_bytes: f64,
    pub dropped: Drops,
    pub last_t: u64,
    pub finalizing_t: Option<u64>,
    /// Estimated live total when Python began finalizing.
    pub finalizing_total: f64,
    /// Sites with a frame outside every module of the map in force when their stack was read
    /// (a library whose constructor allocates while `dlopen` is still loading it: the map that
    /// has it comes after): resolved against the next map that has the address.
    unresolved: Vec<u32>,
    pub forks: Vec<u32>,
    /// The program's own marks (`memshim.mark`), in order.
    pub marks: Vec<Mark>,
    pub records: u64,
    /// How the capture ended: `exit`, `_exit`, `signal N`; `truncated` when it did not.
    pub end: String,
    /// A snapshot capture's run (`None` for an event capture).
    pub snap: Option<snapshots::SnapshotRun>,
    /// The snapshots that count (`--since`, `--until`).
    pub times: time_window::TimeWindow,
}

impl Analysis {
    pub fn new(header: Header) -> Self {
        Analysis {
            snap: crate::capture::kind::is_snapshots(&header)
                .then(|| snapshots::SnapshotRun::new(&header)),
            header,
            ..Default::default()
        }
    }

    pub fn rate(&self) -> u64 {
        self.header.rate
    }

    pub fn apply(&mut self, r: Record) {
        self.records += 1;
        match r {
            Record::Modules(map) => {
                self.modules.set_map(map);
                self.resolve_pending();
            }
            Record::Stack { id, frames, python } => {
                // The shim's own frames: those that lead every stack (the hook), and the start
                // routine it runs each program thread in (at the bottom).
                let addrs: Vec<Addr> = frames
                    .iter()
                    .map(|&a| self.modules.resolve(a))
                    .filter(|&a| !self.modules.is_shim(a))
                    .collect();
                // The same stack under a new id: the writer emptied its bounded table (or two
                // raw stacks differ only in the shim's own frames). One site either way.
                let key = (addrs, python);
                if !self.stack_ids.contains_key(&id) {
                    if let Some(&idx) = self.site_of_stack.get(&key) {
                        self.stack_ids.insert(id, idx);
                        return;
                    }
                }
                let idx = self.site_for(id);
                if key.0.iter().any(|a| a.module == Addr::NO_MODULE) {
                    self.unresolved.push(idx);
                }
                let site = &mut self.sites[idx as usize];
                site.frames = key.0.clone();
                site.python = key.1.clone();
                self.site_of_stack.insert(key, idx);
            }
            Record::Alloc {
                t,
                addr,
                size,
                stack,
                kind,
                inherited,
                ..
            } => {
                self.time(t);
                let stack = self.site_for(stack);
                if kind == AllocKind::Mmap {
                    self.sites[stack as usize].mmap = true;
                }
                let weight = sample_weight(size, self.rate());
                let a = LiveAlloc {
                    size,
                    weight,
                    stack,
                    t,
                };
                let bytes = a.bytes();
                if inherited {
                    self.inherited_bytes += bytes;
                } else {
                    self.allocated_bytes += bytes;
                    self.allocations += weight;
                    let s = &mut self.sites[stack as usize];
                    s.alloc_bytes += bytes;
                    s.alloc_count += weight;
                }
                if let Some(old) = self.live.alloc(addr, a, kind == AllocKind::Mmap) {
                    // Its free went unrecorded (dropped): it is gone now.
                    self.change(old.stack, -old.bytes(), -old.weight);
                }
                self.change(stack, bytes, weight);
            }
            Record::Free { t, addr, .. } => {
                self.time(t);
                if let Some(a) = self.live.free(addr) {
                    self.freed(a, t);
                    self.held(a, a.bytes(), a.weight, t);
                    self.change(a.stack, -a.bytes(), -a.weight);
                }
            }
            Record::Munmap { t, addr, len, .. } => {
                self.time(t);
                let mut changes = vec![];
                self.live
                    .munmap(addr, len, |a, left| changes.push((a, left)));
                for (a, left) in changes {
                    let after = left as f64 * a.weight;
                    let gone = if left == 0 { a.weight } else { 0.0 };
                    self.held(a, a.bytes() - after, gone, t);
                    if left == 0 {
                        self.freed(a, t);
                        self.change(a.stack, -a.bytes(), -a.weight);
                    } else {
                        self.change(a.stack, after - a.bytes(), 0.0);
                    }
                }
            }
            Record::Thread { tid, name } => {
                self.threads.insert(tid, name);
            }
            Record::Tick {
                t,
                rss,
                heap_in_use,
                dropped,
                ..
            } => {
                let t = self.snap.as_ref().map_or(t, |s| s.t(t));
                if self.snap.is_some() && (self.times.before(t) || self.times.after(t)) {
                    return;
                }
                self.time(t);
                self.dropped = dropped;
                self.ticks.push(Point {
                    t,
                    rss,
                    heap_in_use,
                    live_est: self.live_total,
                    live_heap_est: self.live_total - self.live_maps_total,
                });
            }
            Record::PyCode(c) => {
                self.pycodes.insert(c.id, c);
            }
            Record::Marker { t, marker } => {
                let t = self.snap.as_ref().map_or(t, |s| s.t(t));
                if !self.times.after(t) {
                    self.time(t);
                }
                match marker {
                    // A snapshot capture's finalizing is its `Finalizing` snapshot.
                    Marker::PythonFinalizing if self.snap.is_some() => {}
                    Marker::PythonFinalizing if self.finalizing_t.is_none() => {
                        self.finalizing_t = Some(t);
                        self.finalizing_total = self.live_total;
                        // Growth is judged on the run before finalization frees the globals.
                        if self.growth.times.last() != Some(&t) {
                            self.growth
                                .checkpoint(t, self.sites.iter().map(|s| s.live_bytes));
                        }
                    }
                    Marker::PythonFinalizing => {}
                    Marker::Forked { child } => self.forks.push(child),
                    // Recording paused and resumed: the gap's allocations are simply not seen.
                    Marker::RecordingStopped | Marker::RecordingStarted => {}
                    Marker::User { label, thread } => self.marks.push(Mark { t, label, thread }),
                }
            }
            Record::End { t, dropped, how } => {
                let t = self.snap.as_ref().map_or(t, |s| s.t(t));
                if !self.times.after(t) {
                    self.time(t);
                    // The process ended even if its snapshot at exit is missing (a rollover at
                    // exit can lose it): its newest snapshot is what it left.
                    if let Some(s) = &mut self.snap {
                        s.ended = true;
                    }
                }
                self.dropped = dropped;
                self.end = match how {
                    EndKind::Exit => "exit".into(),
                    EndKind::QuickExit => "_exit".into(),
                    EndKind::Exec => "exec".into(),
                    EndKind::Signal(s) => format!("signal {s}"),
                };
            }
            Record::Extension { .. } => {
                match memshim_format::snapshot::Snapshot::from_record(&r) {
                    Some(Ok(snap)) => return self.snapshot(&snap),
                    Some(Err(_)) => {
                        if let Some(s) = &mut self.snap {
                            s.undecodable += 1;
                        }
                        return;
                    }
                    None => {}
                }
                if let Some(why) = crate::capture::load::stop_reason(&r) {
                    self.end = crate::capture::load::stopped_early(&why);
                }
            }
        }
    }

    /// [`Analysis::finish`] for a stream that ended as `e` says. A snapshot capture whose
    /// chunks are whole but has no end record was written by a process still running (or
    /// killed between two writes): that, not `truncated`, is how it ended.
    pub fn finish_after(&mut self, e: &crate::capture::load::Ending) {
        self.finish(e.truncated());
        if self.snap.is_some() && !e.ended && !e.partial_chunk && e.stopped.is_none() {
            self.end = "not yet (running at its newest snapshot, or killed after it)".into();
        }
    }

    /// Call once the stream is over: takes the last growth checkpoint.
    pub fn finish(&mut self, truncated: bool) {
        if truncated || self.end.is_empty() {
            self.end = "truncated".into();
        }
        if self.snap.is_some() {
            return self.finish_snapshots();
        }
        let t = self.last_t;
        if self.finalizing_t.is_none() && self.growth.times.last() != Some(&t) {
            self.growth
                .checkpoint(t, self.sites.iter().map(|s| s.live_bytes));
        }
    }

    /// Leaked (bytes, count) of site `idx`: still live at the end of the capture, after the
    /// interpreter finalized and every library's destructor ran (nothing can free it any more).
    /// A snapshot capture of a process still running at its newest snapshot has none: its
    /// live set is live now ([`Analysis::live_now`]).
    pub fn leaked(&self, idx: u32) -> (f64, f64) {
        if self.live_now() {
            return (0.0, 0.0);
        }
        let s = &self.sites[idx as usize];
        (s.live_bytes.max(0.0), s.live_count.max(0.0))
    }

    /// Held at exit (bytes, count) of site `idx`: live when Python began finalizing and freed
    /// by it (see [`Site::held_bytes`]). Zero for a process that never began finalizing.
    pub fn held_at_exit(&self, idx: u32) -> (f64, f64) {
        let s = &self.sites[idx as usize];
        (s.held_bytes, s.held_count)
    }

    /// Re-resolves the frames of [`Analysis::unresolved`] sites against the map just read.
    fn resolve_pending(&mut self) {
        let mut still = vec![];
        for idx in std::mem::take(&mut self.unresolved) {
            let site = &self.sites[idx as usize];
            let old = site.frames.clone();
            let frames: Vec<Addr> = old
                .iter()
                .map(|&a| {
                    if a.module == Addr::NO_MODULE {
                        self.modules.resolve(a.addr)
                    } else {
                        a
                    }
                })
                .collect();
            if frames.iter().any(|a| a.module == Addr::NO_MODULE) {
                still.push(idx);
            }
            if frames != old {
                let python = site.python.clone();
                self.site_of_stack.remove(&(old, python.clone()));
                self.site_of_stack
                    .entry((frames.clone(), python))
                    .or_insert(idx);
                self.sites[idx as usize].frames = frames;
            }
        }
        self.unresolved = still;
    }

    /// Number of live samples now.
    pub fn live_samples(&self) -> usize {
        self.live.len()
    }

    fn time(&mut self, t: u64) {
        if t > self.last_t {
            self.last_t = t;
        }
        if self.snap.is_none() && self.finalizing_t.is_none() && self.growth.due(t) {
            self.growth
                .checkpoint(t, self.sites.iter().map(|s| s.live_bytes));
        }
    }

    fn site_for(&mut self, id: u64) -> u32 {
        let next = self.sites.len() as u32;
        let idx = *self.stack_ids.entry(id).or_insert(next);
        if idx == next {
            self.sites.push(Site::default());
        }
        idx
    }

    /// `bytes` and `count` of live allocation `a` went at `t`: held at exit when `a` was live
    /// when Python began finalizing.
    fn held(&mut self, a: LiveAlloc, bytes: f64, count: f64, t: u64) {
        if let Some(f) = self.finalizing_t {
            if a.t < f && t >= f {
                let s = &mut self.sites[a.stack as usize];
                s.held_bytes += bytes;
                s.held_count += count;
            }
        }
    }

    fn freed(&mut self, a: LiveAlloc, t: u64) {
        if t.saturating_sub(a.t) <= SHORT_LIVED_NS {
            let s = &mut self.sites[a.stack as usize];
            s.short_lived_count += a.weight;
            s.short_lived_bytes += a.bytes();
        }
    }

    /// Applies a change of live bytes/count to a site and tracks the peak.
    fn change(&mut self, stack: u32, bytes: f64, count: f64) {
        let s = &mut self.sites[stack as usize];
        s.live_bytes += bytes;
        s.live_count += count;
        if s.mmap {
            self.live_maps_total += bytes;
        }
        self.live_total += bytes;
        if self.live_total > self.peak_bytes {
            self.peak_bytes = self.live_total;
            self.peak_t = self.last_t;
            for i in self.touched.drain(..) {
                self.sites[i as usize].since_peak = (0.0, 0.0);
            }
        } else {
            let s = &mut self.sites[stack as usize];
            if s.since_peak == (0.0, 0.0) {
                self.touched.push(stack);
            }
            s.since_peak.0 += bytes;
            s.since_peak.1 += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(t: u64, addr: u64, size: u64, stack: u64) -> Record {
        Record::Alloc {
            t,
            tid: 1,
            addr,
            size,
            stack,
            kind: AllocKind::Malloc,
            inherited: false,
        }
    }

    fn free(t: u64, addr: u64) -> Record {
        Record::Free {
            t,
            tid: 1,
            addr,
            size: 0,
        }
    }

    #[test]
    fn all_mode_is_exact_and_the_peak_is_what_was_live_then() {
        let mut a = Analysis::new(Header::default());
        a.apply(alloc(1, 0x10, 100, 1)); // stays (leak)
        a.apply(alloc(2, 0x20, 1000, 2)); // the peak's big one
        a.apply(alloc(3, 0x30, 50, 3));
        a.apply(free(4, 0x20));
        a.apply(free(5, 0x30));
        a.apply(alloc(6, 0x40, 300, 3));
        a.finish(false);
        assert_eq!(a.allocated_bytes, 1450.0);
        assert_eq!(a.allocations, 4.0);
        assert_eq!(a.peak_bytes, 1150.0);
        assert_eq!(a.peak_t, 3);
        let [s1, s2, s3] = [0, 1, 2].map(|i| a.sites[i].clone());
        assert_eq!(s1.at_peak(), (100.0, 1.0));
        assert_eq!(s2.at_peak(), (1000.0, 1.0));
        assert_eq!(s3.at_peak(), (50.0, 1.0));
        assert_eq!(
            (s1.live_bytes, s2.live_bytes, s3.live_bytes),
            (100.0, 0.0, 300.0)
        );
        assert_eq!(s2.short_lived_count, 1.0);
    }

    #[test]
    fn sampled_mode_weighs_each_sample() {
        let h = Header {
            rate: 1000,
            ..Default::default()
        };
        let mut a = Analysis::new(h);
        a.apply(alloc(1, 0x10, 1000, 1));
        let w = 1.0 / (1.0 - (-1.0f64).exp());
        assert!((a.allocations - w).abs() < 1e-9);
        assert!((a.sites[0].live_bytes - 1000.0 * w).abs() < 1e-6);
    }

    #[test]
    fn leaked_is_live_at_the_end_and_held_is_what_finalization_freed() {
        let mut a = Analysis::new(Header::default());
        a.apply(alloc(1, 0x10, 100, 1)); // a global, freed by finalization: held
        a.apply(alloc(2, 0x20, 7, 2)); // a real leak
        a.apply(alloc(2, 0x28, 9, 4)); // freed before finalization: neither
        a.apply(free(2, 0x28));
        a.apply(Record::Marker {
            t: 3,
            marker: Marker::PythonFinalizing,
        });
        a.apply(free(4, 0x10));
        a.apply(alloc(5, 0x30, 50, 3)); // allocated while finalizing, never freed: leaked
        a.finish(false);
        assert_eq!(a.held_at_exit(0), (100.0, 1.0));
        assert_eq!(a.leaked(0), (0.0, 0.0));
        assert_eq!(a.leaked(1), (7.0, 1.0));
        assert_eq!(a.held_at_exit(1), (0.0, 0.0));
        assert_eq!(a.leaked(2), (0.0, 0.0));
        assert_eq!(a.held_at_exit(2), (0.0, 0.0));
        assert_eq!(a.leaked(3), (50.0, 1.0));
        assert_eq!(a.finalizing_total, 107.0);
        assert_eq!(a.live_total, 57.0);
    }

    #[test]
    fn a_frame_in_a_library_still_loading_resolves_with_the_next_map() {
        let module = |path: &str, base: u64| memshim_format::Module {
            path: path.into(),
            base,
            segments: vec![(0, 0x1000)],
            build_id: vec![],
        };
        let mut a = Analysis::new(Header::default());
        a.apply(Record::Modules(vec![module("/python", 0x10000)]));
        // A sample in /libctor.so's constructor, read before the map that has it.
        a.apply(Record::Stack {
            id: 1,
            frames: vec![0x50010, 0x10020],
            python: vec![],
        });
        assert_eq!(a.sites[0].frames[0].module, Addr::NO_MODULE);
        a.apply(Record::Modules(vec![
            module("/python", 0x10000),
            module("/libctor.so", 0x50000),
        ]));
        let f = a.sites[0].frames[0];
        assert_eq!(a.modules.get(f.module).unwrap().path, "/libctor.so");
        assert_eq!(f.addr, 0x10);
        // Resolved once: a later map with something else there changes nothing.
        a.apply(Record::Modules(vec![module("/other.so", 0x50000)]));
        assert_eq!(a.sites[0].frames[0], f);
    }

    #[test]
    fn munmap_clips_a_live_mapping() {
        let mut a = Analysis::new(Header::default());
        a.apply(Record::Alloc {
            t: 1,
            tid: 1,
            addr: 0x1000,
            size: 0x4000,
            stack: 9,
            kind: AllocKind::Mmap,
            inherited: false,
        });
        a.apply(Record::Munmap {
            t: 2,
            tid: 1,
            addr: 0x1000,
            len: 0x1000,
        });
        assert_eq!(a.sites[0].live_bytes, 0x3000 as f64);
        assert_eq!(a.sites[0].live_count, 1.0);
        a.apply(Record::Munmap {
            t: 3,
            tid: 1,
            addr: 0x2000,
            len: 0x3000,
        });
        assert_eq!(a.sites[0].live_bytes, 0.0);
        assert_eq!(a.sites[0].live_count, 0.0);
    }
}
