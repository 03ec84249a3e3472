//! The writer's memory of the stacks it has written: each distinct stack goes into the capture
//! once, with an id that samples then refer to.
//!
//! A long-running service keeps meeting new stacks (Python frames carry their instruction
//! offsets), so the table is bounded: when it would pass its budget (`MEMSHIM_STACK_MEMORY`) it
//! is emptied, and stacks seen again are written again under new ids. Ids are never reused; the
//! CLI merges stacks written more than once.

use rustc_hash::FxHashMap;

/// What one entry costs besides its words: the boxed slice's allocation header and the map's
/// key, value and control bytes, rounded up.
const ENTRY_OVERHEAD: usize = 48;

pub struct StackTable {
    ids: FxHashMap<Box<[u64]>, u64>,
    next_id: u64,
    bytes: usize,
    budget: usize,
    /// Times the table was emptied.
    pub resets: u64,
}

impl StackTable {
    pub fn new(budget: usize) -> Self {
        StackTable {
            ids: FxHashMap::default(),
            next_id: 1,
            bytes: 0,
            budget,
            resets: 0,
        }
    }

    /// The id of `words`, and whether it is new (the caller must write the stack).
    pub fn intern(&mut self, words: &[u64]) -> (u64, bool) {
        if let Some(&id) = self.ids.get(words) {
            return (id, false);
        }
        let cost = words.len() * 8 + ENTRY_OVERHEAD;
        if self.bytes + cost > self.budget && !self.ids.is_empty() {
            // A fresh map, not clear(): clear keeps the table's capacity allocated.
            self.ids = FxHashMap::default();
            self.bytes = 0;
            self.resets += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(words.into(), id);
        self.bytes += cost;
        (id, true)
    }

    /// Bytes the table holds, as it counts them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_is_new_once() {
        let mut t = StackTable::new(1 << 20);
        assert_eq!(t.intern(&[1, 2, 3]), (1, true));
        assert_eq!(t.intern(&[1, 2]), (2, true));
        assert_eq!(t.intern(&[1, 2, 3]), (1, false));
        assert_eq!(t.intern(&[]), (3, true));
        assert_eq!(t.resets, 0);
    }

    #[test]
    fn the_budget_bounds_the_table_and_ids_stay_unique() {
        // Each 10-word stack costs 128 bytes: 8 fit in 1 KiB.
        let mut t = StackTable::new(1024);
        let stacks: Vec<Vec<u64>> = (0..100u64).map(|i| vec![i; 10]).collect();
        let mut ids = std::collections::HashSet::new();
        for s in &stacks {
            let (id, new) = t.intern(s);
            assert!(new);
            assert!(ids.insert(id), "id {id} reused");
            assert!(t.bytes() <= 1024);
        }
        // Emptied at the 9th, 17th, ..., 97th stack.
        assert_eq!(t.resets, 12);
        // The last ones are still known; an early one comes back new, under a new id.
        assert!(!t.intern(&stacks[99]).1);
        let (id, new) = t.intern(&stacks[0]);
        assert!(new && !ids.contains(&id));
    }

    #[test]
    fn a_stack_larger_than_the_budget_is_still_interned() {
        let mut t = StackTable::new(64);
        assert_eq!(t.intern(&[7; 100]), (1, true));
        assert_eq!(t.intern(&[7; 100]), (1, false));
        assert_eq!(t.intern(&[8; 100]), (2, true));
        assert_eq!(t.resets, 1);
    }
}
