//! Offline symbolization of native frames with blazesym: demangled function, file and line,
//! inlined frames. A module's file is used only when its GNU build-id matches the one recorded
//! in the capture (a rebuilt binary at the same path is not silently used); otherwise, or when
//! the file is gone, the file with that build-id is looked for elsewhere (`--symbols`, debug
//! files, debuginfod: `crate::symbols`), and frames print as `module+0xoffset` when none is.

use std::collections::HashMap;
use std::path::PathBuf;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer as Blaze};

use crate::capture::modules::{Addr, ModuleTable};
use crate::symbols::frames::{Frame, Kind};

/// Caches the frames each (module, address) expands to (one or more, with inlining).
pub struct Symbolizer {
    blaze: Blaze,
    /// The file each module is read from, once looked for (None: nowhere).
    files: HashMap<u32, Option<PathBuf>>,
    locator: crate::symbols::Locator,
    cache: HashMap<Addr, Vec<Frame>>,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    pub fn new() -> Self {
        let blaze = Blaze::builder()
            .enable_code_info(true)
            .enable_inlined_fns(true)
            .enable_demangling(true)
            .build();
        Symbolizer {
            blaze,
            files: HashMap::new(),
            locator: crate::symbols::Locator::configured(),
            cache: HashMap::new(),
        }
    }

    /// Symbolizes, in one batch per module, every address not yet cached.
    pub fn prefetch<'a>(
        &mut self,
        modules: &ModuleTable,
        addrs: impl IntoIterator<Item = &'a Addr>,
    ) {
        let mut by_module: HashMap<u32, Vec<u64>> = HashMap::new();
        for a in addrs {
            if !self.cache.contains_key(a) && a.module != Addr::NO_MODULE {
                by_module.entry(a.module).or_default().push(a.addr);
            }
        }
        for (m, mut offs) in by_module {
            offs.sort_unstable();
            offs.dedup();
            self.symbolize_module(modules, m, &offs);
        }
    }

    /// The frames one return address stands for, innermost first.
    pub fn frames(&mut self, modules: &ModuleTable, a: Addr) -> &[Frame] {
        if a.module != Addr::NO_MODULE && !self.cache.contains_key(&a) {
            self.symbolize_module(modules, a.module, &[a.addr]);
        }
        self.cache
            .entry(a)
            .or_insert_with(|| vec![unknown(None, a)])
    }

    fn symbolize_module(&mut self, modules: &ModuleTable, m: u32, offs: &[u64]) {
        let Some(module) = modules.get(m) else { return };
        let path = module.path.clone();
        let locator = &mut self.locator;
        let file = self
            .files
            .entry(m)
            .or_insert_with(|| locator.locate(&path, &module.build_id))
            .clone();
        let results = match file {
            Some(file) => {
                // Return addresses point after the call: look up the call instruction itself.
                let lookups: Vec<u64> = offs.iter().map(|o| o.saturating_sub(1)).collect();
                let src = Source::Elf(Elf::new(&file));
                self.blaze.symbolize(&src, Input::VirtOffset(&lookups)).ok()
            }
            None => None,
        };
        for (i, &off) in offs.iter().enumerate() {
            let a = Addr {
                module: m,
                addr: off,
            };
            let frames = match results.as_ref().and_then(|r| r.get(i)) {
                Some(Symbolized::Sym(sym)) => {
                    let mut out = Vec::with_capacity(1 + sym.inlined.len());
                    // blazesym lists inlined calls outermost first, each with the location inside
                    // itself; the innermost inlined function holds the address's own line.
                    for inl in sym.inlined.iter().rev() {
                        let (file, line) = match &inl.code_info {
                            Some(ci) => (Some(ci.to_path().display().to_string()), ci.line),
                            None => (None, None),
                        };
                        out.push(native(Some(inl.name.to_string()), file, line, &path, off));
                    }
                    let (file, line) = match &sym.code_info {
                        Some(ci) => (Some(ci.to_path().display().to_string()), ci.line),
                        None => (None, None),
                    };
                    out.push(native(Some(sym.name.to_string()), file, line, &path, off));
                    out
                }
                _ => vec![unknown(Some(&path), a)],
            };
            self.cache.insert(a, frames);
        }
    }
}

fn short(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(path)
}

fn native(
    function: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    module: &str,
    off: u64,
) -> Frame {
    Frame {
        function,
        file,
        line,
        module: Some(module.to_string()),
        kind: Kind::Native,
        address: Some(format!("{}+{off:#x}", short(module))),
    }
}

fn unknown(module: Option<&str>, a: Addr) -> Frame {
    let address = match module {
        Some(m) => format!("{}+{:#x}", short(m), a.addr),
        None => format!("{:#x}", a.addr),
    };
    Frame {
        function: None,
        file: None,
        line: None,
        module: module.filter(|m| !m.is_empty()).map(str::to_string),
        kind: Kind::Native,
        address: Some(address),
    }
}
