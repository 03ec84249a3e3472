//! What counts as leaked, held at exit and growing: the rules behind the report's sections and
//! the exports' kinds (README, "Leaked, held at exit, growing").
//!
//! - **Leaked**: still live at the end of the capture: after the interpreter finalized and every
//!   library's destructor ran (the shim ends the capture after them). Nothing can free it any
//!   more. What the interpreter and the loader keep by design ([`Owner`]: pymalloc arenas CPython
//!   does not unmap, ld.so's data for loaded libraries) is theirs, listed apart, outside the
//!   headline.
//! - **Held at exit**: live when Python began finalizing and freed after that (by finalization,
//!   or by a library's destructor): memory held by live objects, such as module globals, caches
//!   and loaded models. Not leaked, but whoever allocated it still held it.
//! - **Growing**: the growth rule ([`crate::analysis::growth::RULE`]) over the run (up to when Python
//!   began finalizing): the signal for a process that never exits and for a cache that grows
//!   without bound.
//!
//! The headline (`leaks` in the report) is leaked plus growing: a site counts once, with the
//! larger of its leaked bytes and its live bytes at the last growth checkpoint.

use std::collections::HashMap;

use crate::analysis::growth::Grower;
use crate::analysis::Analysis;
use crate::present::resolve::{self, Owner};
use crate::symbols::symbolize::Symbolizer;

/// Per site (by dense index): its part in each section.
#[derive(Debug, Default)]
pub struct Sections {
    /// The runtime owning a site's memory left live at the end (sites live at the end only).
    pub owner: HashMap<u32, Owner>,
    /// Growing sites that count in the headline (not pymalloc arenas).
    pub growing: HashMap<u32, Grower>,
    /// Growing sites, fastest first.
    pub growers: Vec<Grower>,
}

/// Why a site is in the headline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Why {
    pub leaked: bool,
    pub growing: bool,
}

impl Sections {
    pub fn of(a: &Analysis, sym: &mut Symbolizer) -> Sections {
        let live: Vec<u32> = (0..a.sites.len() as u32)
            .filter(|&i| a.leaked(i).0 > 0.5)
            .collect();
        resolve::prefetch(a, sym, live.iter().copied());
        let owner = live
            .into_iter()
            .filter_map(|i| resolve::runtime_owner(a, sym, i).map(|o| (i, o)))
            .collect();
        let growers = a.growth.growers(a.peak_bytes);
        // A growing pymalloc arena is listed (labelled) but not in the headline: arenas grow
        // with the interpreter's small-object pool, fragmentation after a burst included, which
        // is no proof of a leak; under --python-allocators the objects' own sites are judged.
        let growing = growers
            .iter()
            .filter(|g| !resolve::is_pymalloc_arena(a, sym, g.stack))
            .map(|g| (g.stack, *g))
            .collect();
        Sections {
            owner,
            growing,
            growers,
        }
    }

    /// Leaked (bytes, count) of site `i`: live at the end and the program's own.
    pub fn leaked(&self, a: &Analysis, i: u32) -> (f64, f64) {
        if self.owner.contains_key(&i) {
            (0.0, 0.0)
        } else {
            a.leaked(i)
        }
    }

    /// Live (bytes, count) at the end kept by a runtime ([`Owner`]) at site `i`.
    pub fn kept_by_runtime(&self, a: &Analysis, i: u32) -> Option<(Owner, (f64, f64))> {
        self.owner.get(&i).map(|&o| (o, a.leaked(i)))
    }

    /// The headline's (bytes, count) of site `i`, and why it is there.
    pub fn headline(&self, a: &Analysis, i: u32) -> ((f64, f64), Why) {
        let leaked = self.leaked(a, i);
        let mut why = Why {
            leaked: leaked.0 > 0.5,
            growing: false,
        };
        let mut v = leaked;
        if let Some(g) = self.growing.get(&i) {
            why.growing = true;
            if g.last > v.0 {
                let s = &a.sites[i as usize];
                // The count at the last checkpoint is not kept: scale the live count.
                let per = if s.live_bytes > 0.0 && s.live_count > 0.0 {
                    s.live_bytes / s.live_count
                } else if s.alloc_count > 0.0 {
                    s.alloc_bytes / s.alloc_count
                } else {
                    g.last
                };
                v = (g.last, if per > 0.0 { g.last / per } else { 0.0 });
            }
        }
        (v, why)
    }

    /// The headline total: every site's headline bytes.
    pub fn headline_total(&self, a: &Analysis) -> f64 {
        (0..a.sites.len() as u32)
            .map(|i| self.headline(a, i).0 .0)
            .sum()
    }

    /// Leaked bytes in total (the program's own, live at the end).
    pub fn leaked_total(&self, a: &Analysis) -> f64 {
        (0..a.sites.len() as u32).map(|i| self.leaked(a, i).0).sum()
    }

    /// Held-at-exit bytes in total.
    pub fn held_total(&self, a: &Analysis) -> f64 {
        (0..a.sites.len() as u32).map(|i| a.held_at_exit(i).0).sum()
    }

    /// Bytes kept by each runtime at the end: (interpreter, loader).
    pub fn runtime_totals(&self, a: &Analysis) -> (f64, f64) {
        let mut t = (0.0, 0.0);
        for (&i, &o) in &self.owner {
            match o {
                Owner::Interpreter => t.0 += a.leaked(i).0,
                Owner::Loader => t.1 += a.leaked(i).0,
            }
        }
        t
    }
}
