//! A site's frames as people read them: native frames symbolized (inlined calls expanded), Python
//! frames named from their code objects and merged in place of the eval-loop frames.

use crate::analysis::Analysis;
use crate::frames::{merge_python, Frame};
use crate::pyframes;
use crate::symbolize::Symbolizer;

/// Symbolizes, in batches, every native address of the given sites.
pub fn prefetch(a: &Analysis, sym: &mut Symbolizer, sites: impl IntoIterator<Item = u32>) {
    let addrs: Vec<_> = sites
        .into_iter()
        .flat_map(|i| a.sites[i as usize].frames.iter().copied())
        .collect();
    sym.prefetch(&a.modules, addrs.iter());
}

/// Frames of site `idx`, innermost (the allocation call) first.
pub fn site_frames(a: &Analysis, sym: &mut Symbolizer, idx: u32) -> Vec<Frame> {
    let site = &a.sites[idx as usize];
    let mut native = Vec::with_capacity(site.frames.len());
    for &addr in &site.frames {
        native.extend_from_slice(sym.frames(&a.modules, addr));
    }
    let python = site
        .python
        .iter()
        .map(|f| (pyframes::frame(a.pycodes.get(&f.code), f), f.entry))
        .collect();
    merge_python(native, python)
}
