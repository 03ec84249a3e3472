//! Leaks: sites live at the end of the capture, by estimated bytes; and, for processes that never
//! exit, sites whose live bytes grow steadily across the run (rule in [`crate::growth::RULE`]).

use super::{rank, Row};
use crate::analysis::Analysis;
use crate::symbolize::Symbolizer;
use crate::view::View;

#[derive(Debug, Clone)]
pub struct GrowingRow {
    pub row: Row,
    pub bytes_per_s: f64,
    /// Live bytes gained from the first checkpoint to the last.
    pub gained: f64,
}

/// Sites live at the leaks point: when Python began finalizing if the capture has that marker
/// (module globals are freed after it), else at the end ([`Analysis::leaks_at`]).
pub fn ranking(a: &Analysis, sym: &mut Symbolizer, top: usize, view: View) -> Vec<Row> {
    rank(a, sym, top, view, |i, _| {
        let (bytes, count) = a.leaked(i);
        (bytes, count, 0.0)
    })
}

pub fn growing(a: &Analysis, sym: &mut Symbolizer, top: usize, view: View) -> Vec<GrowingRow> {
    a.growth
        .growers(a.peak_bytes)
        .into_iter()
        .take(top)
        .map(|g| {
            let s = &a.sites[g.stack as usize];
            let frames = crate::resolve::site_frames(a, sym, g.stack, view);
            let note = crate::resolve::is_pymalloc_arena(a, sym, g.stack)
                .then_some(crate::resolve::ARENA_NOTE);
            GrowingRow {
                row: Row {
                    bytes: s.live_bytes,
                    count: s.live_count,
                    short_lived: 0.0,
                    frames,
                    note,
                },
                bytes_per_s: g.bytes_per_s,
                gained: g.gained,
            }
        })
        .collect()
}
