//! `memshim report`: the summary and the three rankings (leaks, peak, allocations), built from
//! an [`Analysis`], rendered as text or JSON. One file per report; `rank` is shared.

pub mod arenas;
pub mod churn;
pub mod diff;
pub mod json;
pub mod leaks;
pub mod limits;
pub mod peak;
pub mod sections;
pub mod summary;
pub mod text;

use std::collections::HashMap;

use crate::analysis::Analysis;
use crate::present::fold;
use crate::present::resolve;
use crate::present::view::View;
use crate::symbols::frames::Frame;
use crate::symbols::symbolize::Symbolizer;

/// One ranked site: estimates and frames, innermost first.
#[derive(Debug, Clone)]
pub struct Row {
    pub bytes: f64,
    pub count: f64,
    /// Only for the allocations ranking: how many were freed soon after.
    pub short_lived: f64,
    pub frames: Vec<Frame>,
    /// What the site is, when its frames alone would mislead (a pymalloc arena).
    pub note: Option<&'static str>,
    /// Only for the leaks ranking: leaked, growing, or both.
    pub why: sections::Why,
}

/// A whole report of one process.
#[derive(Debug)]
pub struct Report {
    pub summary: summary::Summary,
    /// The headline: leaked sites and growing sites.
    pub leaks: Vec<Row>,
    /// Held at exit: live when Python began finalizing, freed by it.
    pub held: Vec<Row>,
    /// Live at the end but kept by the interpreter or the loader, not the program's.
    pub kept: Vec<Row>,
    pub growing: Vec<leaks::GrowingRow>,
    /// A snapshot capture of a process still running: its newest snapshot's live set.
    pub live_now: Vec<Row>,
    pub peak: Vec<Row>,
    pub allocations: Vec<Row>,
    pub arenas: arenas::Arenas,
    pub view: View,
}

pub fn build(a: &Analysis, sym: &mut Symbolizer, top: usize, view: View) -> Report {
    let sec = sections::Sections::of(a, sym);
    Report {
        summary: summary::build(a, &sec),
        leaks: leaks::ranking(a, &sec, sym, top, view),
        held: leaks::held(a, sym, top, view),
        kept: leaks::kept(a, &sec, sym, top, view),
        growing: leaks::growing(a, &sec, sym, top, view),
        live_now: leaks::live_now(a, sym, top, view),
        peak: peak::ranking(a, sym, top, view),
        allocations: churn::ranking(a, sym, top, view),
        arenas: arenas::totals(a, sym),
        view,
    }
}

/// Ranks sites by `value(index, site) -> (bytes, count, short_lived)`, merging sites whose
/// frames as shown by default are identical ([`fold::shown`]: distinct return addresses on
/// the same lines, or stacks that differ only in folded frames such as the call path CPython
/// took), largest bytes first; a merged row keeps the frames of its largest site. pymalloc
/// arenas are one row, with a note saying what they are: the stacks that happened to need a
/// new arena say little about what the arenas hold.
pub fn rank(
    a: &Analysis,
    sym: &mut Symbolizer,
    top: usize,
    view: View,
    value: impl Fn(u32, &crate::analysis::Site) -> (f64, f64, f64),
) -> Vec<Row> {
    rank_tagged(a, sym, top, view, value, |_| {
        (sections::Why::default(), None)
    })
}

/// [`rank`], with each site's `why` (OR-ed over merged sites) and a note replacing the arena
/// note when given.
pub fn rank_tagged(
    a: &Analysis,
    sym: &mut Symbolizer,
    top: usize,
    view: View,
    value: impl Fn(u32, &crate::analysis::Site) -> (f64, f64, f64),
    tag: impl Fn(u32) -> (sections::Why, Option<&'static str>),
) -> Vec<Row> {
    let mut cands: Vec<(u32, (f64, f64, f64))> = a
        .sites
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u32, value(i as u32, s)))
        .filter(|(_, v)| v.0 > 0.5)
        .collect();
    cands.sort_by(|x, y| y.1 .0.total_cmp(&x.1 .0));
    // Merging can only join sites; a few times `top` candidates make the top right in practice.
    // Every arena site is kept: they make one row, whose total must be whole.
    let keep = top.saturating_mul(8).max(top);
    let mut n = 0;
    cands.retain(|c| {
        n += 1;
        n <= keep || a.sites[c.0 as usize].mmap
    });
    resolve::prefetch(a, sym, cands.iter().map(|c| c.0));
    let mut merged: Vec<Row> = vec![];
    let mut by_frames: HashMap<Vec<Frame>, usize> = HashMap::new();
    let mut arenas: Option<usize> = None;
    for (i, (bytes, count, short)) in cands {
        let frames = resolve::site_frames(a, sym, i, view);
        let (why, own_note) = tag(i);
        // pymalloc's own bookkeeping for a new arena (its arena map) joins the arenas' row.
        let for_arena = resolve::is_pymalloc_arena(a, sym, i)
            || frames
                .iter()
                .any(|f| f.function.as_deref() == Some(resolve::ARENA_FUNCTION));
        let arena_row = own_note.is_none() && for_arena;
        let note = own_note.or_else(|| arena_row.then_some(resolve::ARENA_NOTE));
        let key = fold::shown(&frames);
        let at = if arena_row {
            arenas
        } else {
            by_frames.get(&key).copied()
        };
        match at {
            Some(k) => {
                let r = &mut merged[k];
                r.bytes += bytes;
                r.count += count;
                r.short_lived += short;
                r.why.leaked |= why.leaked;
                r.why.growing |= why.growing;
            }
            None => {
                if arena_row {
                    arenas = Some(merged.len());
                } else {
                    by_frames.insert(key, merged.len());
                }
                merged.push(Row {
                    bytes,
                    count,
                    short_lived: short,
                    frames,
                    note,
                    why,
                });
            }
        }
    }
    merged.sort_by(|x, y| y.bytes.total_cmp(&x.bytes));
    merged.truncate(top);
    merged
}
