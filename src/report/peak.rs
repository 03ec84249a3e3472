//! Peak: what was live when the estimated heap (heap and mappings) was highest.

use super::{rank, Row};
use crate::analysis::Analysis;
use crate::symbolize::Symbolizer;

pub fn ranking(a: &Analysis, sym: &mut Symbolizer, top: usize) -> Vec<Row> {
    rank(a, sym, top, |s| {
        let (bytes, count) = s.at_peak();
        (bytes, count, 0.0)
    })
}
