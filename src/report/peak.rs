//! Peak: what was live when the estimated heap (heap and mappings) was highest.

use super::{rank, Row};
use crate::analysis::Analysis;
use crate::present::view::View;
use crate::symbols::symbolize::Symbolizer;

pub fn ranking(a: &Analysis, sym: &mut Symbolizer, top: usize, view: View) -> Vec<Row> {
    rank(a, sym, top, view, |_, s| {
        let (bytes, count) = s.at_peak();
        (bytes, count, 0.0)
    })
}
