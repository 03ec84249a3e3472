//! What grew and what shrank between two live sets, by site, as jeprof's `--base` does: live
//! bytes at B minus live bytes at A. Sites of two captures are matched by the frames a report
//! shows (folded frames aside), so two runs of one program compare site by site.

use std::collections::HashMap;

use crate::analysis::live_at::LiveSet;
use crate::analysis::Analysis;
use crate::present::view::View;
use crate::symbols::frames::Frame;
use crate::symbols::symbolize::Symbolizer;

/// One site's change.
#[derive(Debug, Clone)]
pub struct Change {
    pub frames: Vec<Frame>,
    pub a: (f64, f64),
    pub b: (f64, f64),
}

impl Change {
    pub fn bytes(&self) -> f64 {
        self.b.0 - self.a.0
    }
    pub fn count(&self) -> f64 {
        self.b.1 - self.a.1
    }
}

/// Changes smaller than this are estimation noise of nothing at all (a rounding residue of
/// floating-point sums), not a change.
const EPSILON_BYTES: f64 = 0.5;

/// Every site whose live bytes differ, largest change first.
pub fn changes(
    sym: &mut Symbolizer,
    (aa, la): (&Analysis, &LiveSet),
    (ab, lb): (&Analysis, &LiveSet),
    view: View,
) -> Vec<Change> {
    let mut by_key: HashMap<Vec<Frame>, Change> = HashMap::new();
    for (side, an, live) in [(0, aa, la), (1, ab, lb)] {
        let idx: Vec<u32> = (0..live.sites.len() as u32)
            .filter(|&i| live.sites[i as usize] != (0.0, 0.0))
            .collect();
        crate::present::resolve::prefetch(an, sym, idx.iter().copied());
        for i in idx {
            let frames = crate::present::resolve::site_frames(an, sym, i, view);
            let key = crate::present::fold::shown(&frames);
            let c = by_key.entry(key).or_insert_with(|| Change {
                frames,
                a: (0.0, 0.0),
                b: (0.0, 0.0),
            });
            let (bytes, count) = live.sites[i as usize];
            let at = if side == 0 { &mut c.a } else { &mut c.b };
            at.0 += bytes;
            at.1 += count;
        }
    }
    let mut out: Vec<Change> = by_key
        .into_values()
        .filter(|c| c.bytes().abs() >= EPSILON_BYTES)
        .collect();
    out.sort_by(|x, y| y.bytes().abs().total_cmp(&x.bytes().abs()));
    out
}
