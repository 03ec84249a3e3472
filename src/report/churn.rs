//! Allocations (churn): sites by total bytes allocated over the run, with how many of their
//! allocations were short-lived (freed within [`crate::analysis::SHORT_LIVED_NS`]).

use super::{rank, Row};
use crate::analysis::Analysis;
use crate::present::view::View;
use crate::symbols::symbolize::Symbolizer;

pub fn ranking(a: &Analysis, sym: &mut Symbolizer, top: usize, view: View) -> Vec<Row> {
    rank(a, sym, top, view, |_, s| {
        (s.alloc_bytes, s.alloc_count, s.short_lived_count)
    })
}
