//! Snapshot mode's per-stack aggregates, kept by the writer off the hot path: what each stack
//! has live now, what it allocated since recording began, and what it had live at the highest
//! heap since the previous snapshot, all weighed as the reports weigh samples.
//!
//! The live-at-the-high counters cost O(1) per event: a site's values at the last high are
//! saved only when it first changes after that high (an epoch per high); a site unchanged since
//! has its current values there. A new high starts a new epoch, which leaves every site "as at
//! the high" again.

use memshim_format::snapshot::{Cause, SiteCounters, Snapshot};
use rustc_hash::FxHashMap;

use crate::sampling::sampler::{round_u64, sample_probability};

/// Samples of stacks first met once the budget is spent are counted here (empty stack).
pub const OVERFLOW_WORDS: &[u64] = &[];

#[derive(Debug, Default, Clone)]
struct Site {
    /// The stack's words and native frame count, to write it again in a new file.
    words: Box<[u64]>,
    native: usize,
    /// Its id in the current file (rewritten after a rollover).
    stack: u64,
    live_b: f64,
    live_n: f64,
    alloc_b: f64,
    alloc_n: f64,
    /// Values at the last high, valid when `epoch` is the current one.
    high_b: f64,
    high_n: f64,
    epoch: u64,
    /// The snapshot number of its last change (listed in the next snapshot when newer).
    changed: u64,
}

/// One live sample: where its weight goes when it is freed.
#[derive(Debug, Clone, Copy)]
struct LiveSample {
    site: u32,
    bytes: f64,
    count: f64,
}

#[derive(Debug)]
pub struct Aggregates {
    rate: u64,
    sites: Vec<Site>,
    by_stack: FxHashMap<u64, u32>,
    live: FxHashMap<u64, LiveSample>,
    total_live: f64,
    high: f64,
    high_t: u64,
    /// The previous snapshot's time: no high of this interval is stamped before it.
    since_t: u64,
    epoch: u64,
    seq: u64,
    /// The live heap at the previous snapshot's high (the next "new high" is 10% above it).
    last_high: f64,
    pub last_snapshot_ns: u64,
    /// 0, or when recording started again after a stop (allocations before are not counted).
    pub counted_from: u64,
    /// Bytes the sites' stacks hold, against `budget` (MEMSHIM_STACK_MEMORY).
    bytes: usize,
    budget: usize,
    overflow: Option<u32>,
}

impl Aggregates {
    pub fn new(rate: u64, budget: usize, now_ns: u64) -> Self {
        Aggregates {
            rate,
            sites: Vec::new(),
            by_stack: FxHashMap::default(),
            live: FxHashMap::default(),
            total_live: 0.0,
            high: 0.0,
            high_t: 0,
            since_t: 0,
            epoch: 1,
            seq: 0,
            last_high: 0.0,
            last_snapshot_ns: now_ns,
            counted_from: 0,
            bytes: 0,
            budget,
            overflow: None,
        }
    }

    /// The sample's weight: allocations it stands for.
    fn weight(&self, size: u64) -> f64 {
        1.0 / sample_probability(size, self.rate)
    }

    /// The site of stack `stack` (`words`, `native` of them native frames), made if new. Past
    /// the budget, new stacks count in one overflow site.
    fn site(
        &mut self,
        stack: u64,
        words: &[u64],
        native: usize,
        intern: &mut impl FnMut(&[u64], usize) -> u64,
    ) -> u32 {
        if let Some(&i) = self.by_stack.get(&stack) {
            return i;
        }
        let cost = words.len() * 8 + 96;
        if self.bytes + cost > self.budget {
            self.prune();
        }
        if self.bytes + cost > self.budget && !self.sites.is_empty() {
            if let Some(i) = self.overflow {
                return i;
            }
            let id = intern(OVERFLOW_WORDS, 0);
            let i = self.push_site(id, OVERFLOW_WORDS, 0);
            self.overflow = Some(i);
            return i;
        }
        self.bytes += cost;
        self.push_site(stack, words, native)
    }

    fn push_site(&mut self, stack: u64, words: &[u64], native: usize) -> u32 {
        let i = self.sites.len() as u32;
        self.sites.push(Site {
            words: words.into(),
            native,
            stack,
            epoch: self.epoch,
            ..Site::default()
        });
        self.by_stack.insert(stack, i);
        i
    }

    /// Saves a site's values at the last high before its first change since that high.
    fn touch(&mut self, i: u32) {
        let (epoch, seq) = (self.epoch, self.seq);
        let s = &mut self.sites[i as usize];
        if s.epoch != epoch {
            s.high_b = s.live_b;
            s.high_n = s.live_n;
            s.epoch = epoch;
        }
        s.changed = seq + 1;
    }

    fn note_high(&mut self, t: u64) {
        if self.total_live > self.high {
            self.high = self.total_live;
            // An event's stamp can precede the previous snapshot, when the writer drained the
            // ring after taking it: the high belongs to this interval all the same, and a
            // high stamped before the previous snapshot made the timeline step back in time.
            self.high_t = t.max(self.since_t);
            // Every site's current values are its values at this high.
            self.epoch += 1;
        }
    }

    /// A sampled allocation (`inherited`: live in a forked child before its capture began).
    #[allow(clippy::too_many_arguments)]
    pub fn alloc(
        &mut self,
        t: u64,
        stack: u64,
        words: &[u64],
        native: usize,
        addr: u64,
        size: u64,
        inherited: bool,
        intern: &mut impl FnMut(&[u64], usize) -> u64,
    ) {
        let i = self.site(stack, words, native, intern);
        self.touch(i);
        let count = self.weight(size);
        let bytes = count * size as f64;
        let s = &mut self.sites[i as usize];
        s.live_b += bytes;
        s.live_n += count;
        if !inherited {
            s.alloc_b += bytes;
            s.alloc_n += count;
        }
        if let Some(old) = self.live.insert(
            addr,
            LiveSample {
                site: i,
                bytes,
                count,
            },
        ) {
            // A block the writer never saw freed (a free lost to a full ring): forget it.
            self.release(old);
        }
        self.total_live += bytes;
        self.note_high(t);
    }

    /// A free (or an unmap starting at `addr`) of a sampled block; others are ignored.
    pub fn free(&mut self, addr: u64) {
        if let Some(old) = self.live.remove(&addr) {
            self.touch(old.site);
            self.release(old);
        }
    }

    fn release(&mut self, old: LiveSample) {
        let s = &mut self.sites[old.site as usize];
        s.live_b = (s.live_b - old.bytes).max(0.0);
        s.live_n = (s.live_n - old.count).max(0.0);
        self.total_live = (self.total_live - old.bytes).max(0.0);
    }

    /// True when the heap has reached a new high 10% above the previous snapshot's.
    pub fn new_high_due(&self) -> bool {
        self.total_live > self.last_high * 1.1 && self.total_live > 0.0
    }

    /// The snapshot of now, `t` ns into the capture. `complete`: every site with live bytes is
    /// listed (the first of a file). Starts the next "since the previous snapshot".
    pub fn snapshot(&mut self, t: u64, now_ns: u64, cause: Cause, complete: bool) -> Snapshot {
        let epoch = self.epoch;
        let seq = self.seq;
        let sites = self
            .sites
            .iter()
            // Every site with live bytes, and those that allocated since the previous snapshot.
            .filter(|s| s.changed > seq || s.live_n > 0.0)
            .map(|s| {
                let (hb, hn) = if s.epoch == epoch {
                    (s.high_b, s.high_n)
                } else {
                    (s.live_b, s.live_n)
                };
                SiteCounters {
                    stack: s.stack,
                    live_bytes: round_u64(s.live_b),
                    live_count: round_u64(s.live_n),
                    alloc_bytes: round_u64(s.alloc_b),
                    alloc_count: round_u64(s.alloc_n),
                    high_bytes: round_u64(hb),
                    high_count: round_u64(hn),
                }
            })
            .collect();
        let snap = Snapshot {
            t,
            seq,
            cause,
            complete,
            live_bytes: round_u64(self.total_live),
            high_bytes: round_u64(self.high.max(self.total_live)),
            high_t: if self.high >= self.total_live {
                self.high_t
            } else {
                t
            },
            counted_from: self.counted_from,
            sites,
        };
        self.seq += 1;
        self.last_high = self.high.max(self.total_live);
        self.high = self.total_live;
        self.high_t = t;
        self.since_t = t;
        self.epoch += 1;
        self.last_snapshot_ns = now_ns;
        snap
    }

    /// After a rollover: every site's stack written again into the new file (`intern` gives its
    /// new id). Sites with nothing live are dropped: their totals are in the earlier files.
    pub fn rewrite_stacks(&mut self, mut intern: impl FnMut(&[u64], usize) -> u64) {
        self.prune();
        self.by_stack.clear();
        for (i, s) in self.sites.iter_mut().enumerate() {
            s.stack = intern(&s.words, s.native);
            self.by_stack.insert(s.stack, i as u32);
        }
    }

    /// Drops the sites with nothing live, renumbering the rest (their totals were in a
    /// snapshot already, and a reader keeps a site's last values).
    fn prune(&mut self) {
        if self.sites.iter().all(|s| s.live_n > 0.0) {
            return;
        }
        let mut map = vec![u32::MAX; self.sites.len()];
        let mut kept = Vec::with_capacity(self.sites.len());
        for (i, s) in core::mem::take(&mut self.sites).into_iter().enumerate() {
            if s.live_n > 0.0 {
                map[i] = kept.len() as u32;
                kept.push(s);
            }
        }
        for v in self.live.values_mut() {
            v.site = map[v.site as usize];
        }
        self.live.retain(|_, v| v.site != u32::MAX);
        self.sites = kept;
        self.by_stack = self
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| (s.stack, i as u32))
            .collect();
        self.bytes = self.sites.iter().map(|s| s.words.len() * 8 + 96).sum();
        self.overflow = self
            .overflow
            .and_then(|o| (map[o as usize] != u32::MAX).then(|| map[o as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_intern() -> impl FnMut(&[u64], usize) -> u64 {
        |_, _| 999
    }

    #[test]
    fn a_high_from_an_event_stamped_before_the_last_snapshot_is_stamped_at_it() {
        // The writer took the snapshot at 10, then drained an event stamped 8 (the ring held it):
        // the new high belongs to the next interval and must not be dated before 10.
        let mut a = Aggregates::new(0, 1 << 20, 0);
        let mut i = no_intern();
        a.alloc(5, 7, &[1], 1, 0x1000, 100, false, &mut i);
        let first = a.snapshot(10, 10, Cause::Interval, false);
        a.alloc(8, 7, &[1], 1, 0x2000, 300, false, &mut i);
        a.free(0x2000);
        let second = a.snapshot(20, 20, Cause::Interval, false);
        assert_eq!((second.high_bytes, second.high_t), (400, 10));
        assert!(second.high_t >= first.t);
    }

    #[test]
    fn live_allocated_and_the_high_follow_the_events() {
        // `all`: every sample weighs 1.
        let mut a = Aggregates::new(0, 1 << 20, 0);
        let mut i = no_intern();
        a.alloc(1, 7, &[1, 2], 2, 0x1000, 100, false, &mut i);
        a.alloc(2, 8, &[3], 1, 0x2000, 50, false, &mut i);
        a.free(0x1000);
        // The high was 150 (both live); now 50 is.
        a.alloc(3, 8, &[3], 1, 0x3000, 20, false, &mut i);
        let s = a.snapshot(4, 4, Cause::Interval, false);
        assert_eq!((s.live_bytes, s.high_bytes, s.high_t), (70, 150, 2));
        let by = |id| *s.sites.iter().find(|c| c.stack == id).unwrap();
        assert_eq!(
            (by(7).live_bytes, by(7).alloc_bytes, by(7).high_bytes),
            (0, 100, 100)
        );
        assert_eq!(
            (by(8).live_bytes, by(8).alloc_count, by(8).high_bytes),
            (70, 2, 50)
        );
        // Next interval: nothing changes; the high is now what is live, site 7 is not listed.
        let s = a.snapshot(5, 5, Cause::Interval, false);
        assert_eq!((s.live_bytes, s.high_bytes), (70, 70));
        assert!(s.sites.iter().all(|c| c.stack == 8));
    }

    #[test]
    fn sampled_weights_unbias_like_the_reports() {
        let rate = 512 << 10;
        let mut a = Aggregates::new(rate, 1 << 20, 0);
        let mut i = no_intern();
        a.alloc(1, 1, &[1], 1, 0x10, 1 << 20, false, &mut i);
        let s = a.snapshot(2, 2, Cause::Interval, true);
        let w = 1.0 / sample_probability(1 << 20, rate);
        assert_eq!(s.live_bytes, (w * (1 << 20) as f64).round() as u64);
    }

    #[test]
    fn a_new_high_is_ten_percent_above_the_last_snapshots() {
        let mut a = Aggregates::new(0, 1 << 20, 0);
        let mut i = no_intern();
        a.alloc(1, 1, &[1], 1, 0x10, 1000, false, &mut i);
        assert!(a.new_high_due());
        a.snapshot(2, 2, Cause::NewHigh, false);
        a.alloc(3, 1, &[1], 1, 0x20, 50, false, &mut i);
        assert!(!a.new_high_due());
        a.alloc(4, 1, &[1], 1, 0x30, 60, false, &mut i);
        assert!(a.new_high_due());
    }

    #[test]
    fn the_budget_sends_new_stacks_to_one_overflow_site() {
        let mut a = Aggregates::new(0, 300, 0);
        let mut interned = Vec::new();
        let mut i = |w: &[u64], _n: usize| {
            interned.push(w.to_vec());
            1000
        };
        for k in 0..10u64 {
            a.alloc(k, k, &[k; 8], 8, 0x100 * (k + 1), 10, false, &mut i);
        }
        let s = a.snapshot(20, 20, Cause::Interval, true);
        assert!(s.sites.len() < 10, "{} sites", s.sites.len());
        assert_eq!(s.live_bytes, 100, "nothing lost to the bound");
        assert!(
            interned.iter().any(|w| w.is_empty()),
            "the overflow site is an empty stack"
        );
    }
}
