//! The leak sections (rules in [`super::sections`]): the headline (leaked and growing sites),
//! held at exit, kept by the runtime, and growing.

use super::sections::Sections;
use super::{rank, rank_tagged, Row};
use crate::analysis::Analysis;
use crate::present::view::View;
use crate::symbols::symbolize::Symbolizer;

#[derive(Debug, Clone)]
pub struct GrowingRow {
    pub row: Row,
    pub bytes_per_s: f64,
    /// Live bytes gained from the first checkpoint to the last.
    pub gained: f64,
}

/// The headline: sites leaked (live at the end, the program's own) and sites growing.
pub fn ranking(
    a: &Analysis,
    sec: &Sections,
    sym: &mut Symbolizer,
    top: usize,
    view: View,
) -> Vec<Row> {
    rank_tagged(
        a,
        sym,
        top,
        view,
        |i, _| {
            let ((bytes, count), _) = sec.headline(a, i);
            (bytes, count, 0.0)
        },
        |i| (sec.headline(a, i).1, None),
    )
}

/// Held at exit: live when Python began finalizing and freed by it (module globals, caches).
pub fn held(a: &Analysis, sym: &mut Symbolizer, top: usize, view: View) -> Vec<Row> {
    rank(a, sym, top, view, |i, _| {
        let (bytes, count) = a.held_at_exit(i);
        (bytes, count, 0.0)
    })
}

/// Live at the end, kept by the interpreter or the loader.
pub fn kept(
    a: &Analysis,
    sec: &Sections,
    sym: &mut Symbolizer,
    top: usize,
    view: View,
) -> Vec<Row> {
    rank_tagged(
        a,
        sym,
        top,
        view,
        |i, _| match sec.kept_by_runtime(a, i) {
            Some((_, (bytes, count))) => (bytes, count, 0.0),
            None => (0.0, 0.0, 0.0),
        },
        |i| (Default::default(), sec.owner.get(&i).map(|o| o.note())),
    )
}

/// A snapshot capture of a process still running: what its newest snapshot has live (none
/// otherwise). Not leaks: the process may still free it.
pub fn live_now(a: &Analysis, sym: &mut Symbolizer, top: usize, view: View) -> Vec<Row> {
    if !a.live_now() {
        return vec![];
    }
    rank(a, sym, top, view, |_, s| (s.live_bytes, s.live_count, 0.0))
}

pub fn growing(
    a: &Analysis,
    sec: &Sections,
    sym: &mut Symbolizer,
    top: usize,
    view: View,
) -> Vec<GrowingRow> {
    sec.growers
        .iter()
        .take(top)
        .map(|g| {
            let ((bytes, count), why) = sec.headline(a, g.stack);
            let frames = crate::present::resolve::site_frames(a, sym, g.stack, view);
            let note = crate::present::resolve::is_pymalloc_arena(a, sym, g.stack)
                .then_some(crate::present::resolve::ARENA_NOTE);
            GrowingRow {
                row: Row {
                    bytes,
                    count,
                    short_lived: 0.0,
                    frames,
                    note,
                    why,
                },
                bytes_per_s: g.bytes_per_s,
                gained: g.gained,
            }
        })
        .collect()
}
