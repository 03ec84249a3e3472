//! pymalloc arenas: the mappings CPython's object allocator makes for small objects (<= 512 B).
//! A malloc hook never sees those objects, only the arenas; they are Python objects, not leaks
//! from nowhere. Reports rank arena sites by their bytes like other sites, with a note
//! ([`crate::present::resolve::ARENA_NOTE`]), and the summary gives their total.

use crate::analysis::Analysis;
use crate::present::resolve;
use crate::symbols::symbolize::Symbolizer;

/// Estimated bytes in pymalloc arenas at the end (kept by the interpreter), held at exit, and at
/// the peak.
#[derive(Debug, Clone, Default)]
pub struct Arenas {
    pub at_end: f64,
    pub held_at_exit: f64,
    pub at_peak: f64,
    pub allocated: f64,
    /// Distinct stacks that mapped an arena.
    pub sites: usize,
}

pub fn totals(a: &Analysis, sym: &mut Symbolizer) -> Arenas {
    let mmap: Vec<u32> = (0..a.sites.len() as u32)
        .filter(|&i| a.sites[i as usize].mmap)
        .collect();
    resolve::prefetch(a, sym, mmap.iter().copied());
    let mut out = Arenas::default();
    for i in mmap {
        if !resolve::is_pymalloc_arena(a, sym, i) {
            continue;
        }
        let s = &a.sites[i as usize];
        out.sites += 1;
        out.at_end += a.leaked(i).0;
        out.held_at_exit += a.held_at_exit(i).0;
        out.at_peak += s.at_peak().0;
        out.allocated += s.alloc_bytes;
    }
    out
}
