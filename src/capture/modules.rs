//! The module maps of a capture: every module ever loaded, interned, and the map in force now.
//!
//! A stack is resolved against the map in force when its `Stack` record is read (a later
//! `Modules` record replaces the map, e.g. after dlclose + dlopen at the same addresses), so a
//! frame is kept as (module, file-relative address) and never re-resolved.

use std::collections::HashMap;

use memshim_format::Module;

/// A stack frame's return address, resolved to its module when possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Addr {
    /// Index into [`ModuleTable::modules`], or [`Addr::NO_MODULE`].
    pub module: u32,
    /// File-relative (SVMA) address when `module` is known, else the raw runtime address.
    pub addr: u64,
}

impl Addr {
    pub const NO_MODULE: u32 = u32::MAX;
}

/// Every module seen in the capture, interned, plus a sorted index of the current map.
#[derive(Debug, Default)]
pub struct ModuleTable {
    pub modules: Vec<Module>,
    interned: HashMap<(String, u64, Vec<u8>), u32>,
    /// (start, end, module index) of each loadable segment in the current map, sorted by start.
    ranges: Vec<(u64, u64, u32)>,
}

impl ModuleTable {
    /// Replaces the current map (a `Modules` record).
    pub fn set_map(&mut self, map: Vec<Module>) {
        self.ranges.clear();
        for m in map {
            let key = (m.path.clone(), m.base, m.build_id.clone());
            let idx = match self.interned.get(&key) {
                Some(&i) => i,
                None => {
                    let i = self.modules.len() as u32;
                    self.interned.insert(key, i);
                    self.modules.push(m);
                    i
                }
            };
            let m = &self.modules[idx as usize];
            for &(va, len) in &m.segments {
                let start = m.base.wrapping_add(va);
                self.ranges.push((start, start.saturating_add(len), idx));
            }
        }
        self.ranges.sort_unstable();
    }

    /// Resolves a runtime address against the current map.
    pub fn resolve(&self, addr: u64) -> Addr {
        let i = self.ranges.partition_point(|&(start, _, _)| start <= addr);
        if i > 0 {
            let (start, end, idx) = self.ranges[i - 1];
            if addr >= start && addr < end {
                let base = self.modules[idx as usize].base;
                return Addr {
                    module: idx,
                    addr: addr.wrapping_sub(base),
                };
            }
        }
        Addr {
            module: Addr::NO_MODULE,
            addr,
        }
    }

    /// True for the shim's own module, whose frames (the hook leading every stack, a thread's start
    /// routine at its bottom) are stripped.
    pub fn is_shim(&self, a: Addr) -> bool {
        a.module != Addr::NO_MODULE
            && self.modules[a.module as usize]
                .path
                .ends_with("libmemshim.so")
    }

    pub fn get(&self, idx: u32) -> Option<&Module> {
        self.modules.get(idx as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, base: u64) -> Module {
        Module {
            path: path.into(),
            base,
            segments: vec![(0, 0x1000), (0x2000, 0x1000)],
            build_id: vec![],
        }
    }

    #[test]
    fn resolves_to_the_map_in_force() {
        let mut t = ModuleTable::default();
        t.set_map(vec![module("/a.so", 0x10000), module("/b.so", 0x20000)]);
        assert_eq!(
            t.resolve(0x10010),
            Addr {
                module: 0,
                addr: 0x10
            }
        );
        assert_eq!(
            t.resolve(0x22010),
            Addr {
                module: 1,
                addr: 0x2010
            }
        );
        // Between the two segments of /a.so: no module.
        assert_eq!(t.resolve(0x11010).module, Addr::NO_MODULE);
        // dlclose(/a.so), dlopen(/c.so) at the same address: a new module, the old one kept.
        t.set_map(vec![module("/c.so", 0x10000), module("/b.so", 0x20000)]);
        assert_eq!(
            t.resolve(0x10010),
            Addr {
                module: 2,
                addr: 0x10
            }
        );
        assert_eq!(
            t.resolve(0x20010).module,
            1,
            "an unchanged module keeps its index"
        );
        assert_eq!(t.modules.len(), 3);
    }
}
