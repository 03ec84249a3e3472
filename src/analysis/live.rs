//! The sampled allocations live at the current point of the stream.
//!
//! Heap allocations pair with frees by address. Memory mappings are kept sorted so a `munmap`
//! can clip every live mapping it overlaps, also partially (the rest stays live).

use std::collections::{BTreeMap, HashMap};

/// One live sampled allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveAlloc {
    pub size: u64,
    /// How many allocations this sample stands for (1 in `all` mode).
    pub weight: f64,
    /// Dense stack index.
    pub stack: u32,
    /// Time of the allocation (ns from the start).
    pub t: u64,
}

impl LiveAlloc {
    /// Estimated bytes this sample stands for.
    pub fn bytes(&self) -> f64 {
        self.size as f64 * self.weight
    }
}

#[derive(Debug, Default)]
pub struct Live {
    heap: HashMap<u64, LiveAlloc>,
    maps: BTreeMap<u64, LiveAlloc>,
}

impl Live {
    /// Adds an allocation; returns one it replaced at the same address (its free was not seen).
    pub fn alloc(&mut self, addr: u64, a: LiveAlloc, mapping: bool) -> Option<LiveAlloc> {
        if mapping {
            let mut gone = None;
            self.munmap(addr, a.size.max(1), |old, rest| {
                if rest == 0 {
                    gone = Some(old);
                }
            });
            self.maps.insert(addr, a);
            gone
        } else {
            self.heap.insert(addr, a)
        }
    }

    /// A free: the allocation at `addr` if it was live (frees of unknown addresses are ignored).
    pub fn free(&mut self, addr: u64) -> Option<LiveAlloc> {
        self.heap.remove(&addr)
    }

    /// Clips live mappings overlapping `[addr, addr+len)`; `on_change(alloc, size_left)` for each.
    pub fn munmap(&mut self, addr: u64, len: u64, mut on_change: impl FnMut(LiveAlloc, u64)) {
        let end = addr.saturating_add(len);
        let mut hit = Vec::new();
        // Live mappings never overlap each other: walk back from the last one starting before
        // `end` until one ends at or before `addr`.
        for (&start, a) in self.maps.range(..end).rev() {
            if start.saturating_add(a.size) <= addr {
                break;
            }
            hit.push(start);
        }
        for start in hit {
            let a = self.maps.remove(&start).expect("found above");
            let a_end = start + a.size;
            let mut left = 0;
            if start < addr {
                left = addr - start;
                self.maps.insert(start, LiveAlloc { size: left, ..a });
            }
            let mut right = 0;
            if a_end > end {
                right = a_end - end;
                self.maps.insert(end, LiveAlloc { size: right, ..a });
            }
            on_change(a, left + right);
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len() + self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &LiveAlloc> {
        self.heap.values().chain(self.maps.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(size: u64) -> LiveAlloc {
        LiveAlloc {
            size,
            weight: 1.0,
            stack: 0,
            t: 0,
        }
    }

    #[test]
    fn frees_pair_by_address_and_unknown_frees_are_ignored() {
        let mut l = Live::default();
        assert!(l.alloc(0x10, a(8), false).is_none());
        assert!(l.free(0x99).is_none());
        assert_eq!(l.free(0x10), Some(a(8)));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn munmap_clips_partially_and_splits() {
        let mut l = Live::default();
        l.alloc(0x1000, a(0x4000), true);
        l.alloc(0x8000, a(0x1000), true);
        let mut changes = vec![];
        // Punch a hole in the middle of the first mapping.
        l.munmap(0x2000, 0x1000, |old, rest| changes.push((old.size, rest)));
        assert_eq!(changes, [(0x4000, 0x3000)]);
        let mut sizes: Vec<_> = l.iter().map(|x| x.size).collect();
        sizes.sort();
        assert_eq!(sizes, [0x1000, 0x1000, 0x2000]);
        // One munmap over everything removes all three pieces.
        changes.clear();
        l.munmap(0, 0x10000, |old, rest| changes.push((old.size, rest)));
        assert_eq!(changes.len(), 3);
        assert!(changes.iter().all(|&(_, rest)| rest == 0));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn munmap_of_a_tail_keeps_the_head() {
        let mut l = Live::default();
        l.alloc(0x1000, a(0x3000), true);
        l.munmap(0x3000, 0x5000, |_, _| {});
        assert_eq!(l.iter().map(|x| x.size).collect::<Vec<_>>(), [0x2000]);
    }
}
