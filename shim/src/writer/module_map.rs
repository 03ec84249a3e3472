//! The module map the capture carries: written at start, again when the loader's counters move,
//! and as each dlopen sends it, keeping the modules of the previous map whose range nothing new
//! occupies.

use memshim_format::{Module, Record};

use super::capture::Writer;
use crate::sys::modules;

impl Writer {
    /// Writes the map as it is now, keeping the modules of the previous map that have gone but
    /// whose range nothing new occupies: events still waiting in the ring were recorded before
    /// they went (a dlopen'd library may be closed before the writer looks; dlopen itself sends
    /// an exact map through the ring, see the recorder's after_dlopen).
    pub(super) fn refresh_modules(&mut self) {
        let (mods, sig) = modules::snapshot();
        self.write_map(mods, sig);
    }

    /// Writes the map `mods` taken at loader state `sig`, with the previous map's modules that
    /// nothing in it overlaps (see [`Writer::refresh_modules`]).
    pub(super) fn write_map(&mut self, mods: Vec<Module>, sig: modules::Signature) {
        let mods = merged(mods, &self.map);
        self.map = mods.clone();
        self.map_sig = modules::packed(sig);
        self.chunk.push(&Record::Modules(mods));
    }
}

/// True when two modules' loaded segments share an address.
pub(super) fn overlaps(a: &Module, b: &Module) -> bool {
    a.segments.iter().any(|&(va, len)| {
        let (start, end) = (
            a.base.wrapping_add(va),
            a.base.wrapping_add(va).wrapping_add(len),
        );
        b.segments.iter().any(|&(vb, lb)| {
            let s = b.base.wrapping_add(vb);
            s < end && start < s.wrapping_add(lb)
        })
    })
}

/// `new` with the modules of `old` that nothing in `new` overlaps.
fn merged(mut new: Vec<Module>, old: &[Module]) -> Vec<Module> {
    for m in old {
        if !new.iter().any(|n| overlaps(n, m)) {
            new.push(m.clone());
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, base: u64, segs: &[(u64, u64)]) -> Module {
        Module {
            path: path.into(),
            base,
            segments: segs.to_vec(),
            build_id: Vec::new(),
        }
    }

    #[test]
    fn a_gone_module_stays_until_something_takes_its_range() {
        let old = [
            module("/a.so", 0x1000, &[(0, 0x100)]),
            module("/b.so", 0x9000, &[(0, 0x100)]),
        ];
        // b.so went; nothing new at its addresses: kept, for events still in the ring.
        let new = merged(vec![module("/a.so", 0x1000, &[(0, 0x100)])], &old);
        assert_eq!(new.iter().filter(|m| m.path == "/b.so").count(), 1);
        // c.so now sits where b.so was: b.so is dropped.
        let new = merged(vec![module("/c.so", 0x9080, &[(0, 0x10)])], &old);
        assert!(new.iter().all(|m| m.path != "/b.so"));
        assert!(new.iter().any(|m| m.path == "/a.so"));
    }

    #[test]
    fn segments_overlap_only_when_they_share_an_address() {
        let a = module("/a.so", 0x1000, &[(0x0, 0x100)]);
        assert!(overlaps(&a, &module("/b", 0x10ff, &[(0, 1)])));
        assert!(!overlaps(&a, &module("/b", 0x1100, &[(0, 1)])));
        assert!(!overlaps(&a, &module("/b", 0x0f00, &[(0, 0x100)])));
    }
}
