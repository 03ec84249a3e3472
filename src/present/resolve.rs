//! A site's frames as people read them: native frames symbolized (inlined calls expanded), Python
//! frames named from their code objects and merged in place of the eval-loop frames, then shown
//! in the chosen [`View`].

use crate::analysis::Analysis;
use crate::present::view::View;
use crate::symbols::frames::{flatten, is_eval, merge_python, python_only, Frame, Unit};
use crate::symbols::pyframes;
use crate::symbols::symbolize::Symbolizer;
use memshim_format::PyFrame;

/// The function of CPython's object allocator that maps a new pymalloc arena (Objects/obmalloc.c).
/// `_PyObject_ArenaMmap` alone is not enough: CPython also maps the chunks of its frame stack
/// with it (`allocate_chunk`, Python/pystate.c), also under PYTHONMALLOC=malloc.
pub const ARENA_FUNCTION: &str = "new_arena";

/// What reports say about a pymalloc arena site.
pub const ARENA_NOTE: &str =
    "pymalloc arena (Python objects; run with --python-allocators for per-object detail): \
the stack is the allocation that needed a new arena, the arena holds many small objects";

/// Symbolizes, in batches, every native address of the given sites.
pub fn prefetch(a: &Analysis, sym: &mut Symbolizer, sites: impl IntoIterator<Item = u32>) {
    let addrs: Vec<_> = sites
        .into_iter()
        .flat_map(|i| a.sites[i as usize].frames.iter().copied())
        .collect();
    sym.prefetch(&a.modules, addrs.iter());
}

/// Units (one per return address or Python frame) of site `idx`, innermost first.
pub fn site_units(a: &Analysis, sym: &mut Symbolizer, idx: u32, view: View) -> Vec<Unit> {
    let site = &a.sites[idx as usize];
    let native: Vec<Unit> = site
        .frames
        .iter()
        .map(|&addr| Unit {
            addr: Some(addr),
            frames: sym.frames(&a.modules, addr).to_vec(),
        })
        .collect();
    if view == View::NativeOnly || site.python.is_empty() {
        return native;
    }
    // The interpreter's module: where its eval loop is (libpython, or the executable).
    let interp = native
        .iter()
        .flat_map(|u| u.frames.iter())
        .find(|f| is_eval(f))
        .and_then(|f| f.module.clone());
    let python = site
        .python
        .iter()
        .map(|f| {
            let frame =
                (f.code != PyFrame::NO_FRAME).then(|| pyframes::frame(a.pycodes.get(&f.code), f));
            (frame, f.entry)
        })
        .collect();
    let merged = merge_python(native, python);
    match view {
        View::PythonOnly => python_only(merged, interp.as_deref()),
        _ => merged,
    }
}

/// Frames of site `idx`, innermost (the allocation call) first.
pub fn site_frames(a: &Analysis, sym: &mut Symbolizer, idx: u32, view: View) -> Vec<Frame> {
    flatten(site_units(a, sym, idx, view))
}

/// True when site `idx` is a memory mapping made by pymalloc for a new arena.
pub fn is_pymalloc_arena(a: &Analysis, sym: &mut Symbolizer, idx: u32) -> bool {
    let site = &a.sites[idx as usize];
    if !site.mmap {
        return false;
    }
    site.frames.iter().any(|&addr| {
        sym.frames(&a.modules, addr).iter().any(|f| {
            f.function
                .as_deref()
                .is_some_and(|n| n.starts_with(ARENA_FUNCTION))
        })
    })
}

/// Who owns memory still live at the end that is not the program's: the interpreter (pymalloc
/// arenas and their bookkeeping, which CPython never unmaps at exit while an immortal or
/// leaked-by-design object sits in them) or the dynamic loader (its own data for every loaded
/// library: link maps, version tables, TLS blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Interpreter,
    Loader,
}

impl Owner {
    pub fn note(self) -> &'static str {
        match self {
            Owner::Interpreter => INTERPRETER_NOTE,
            Owner::Loader => LOADER_NOTE,
        }
    }
}

pub const INTERPRETER_NOTE: &str =
    "kept by the Python interpreter at exit: pymalloc arenas (and their \
bookkeeping) that CPython does not unmap when it finalizes; not the program's leak";
pub const LOADER_NOTE: &str =
    "kept by the dynamic loader at exit: its own data for a loaded library \
(allocated inside ld.so); not the program's leak";

/// The runtime that owns site `idx`, if it is not the program's own memory (see [`Owner`]):
/// a stack through pymalloc's `new_arena`, or an allocation made by the dynamic loader itself
/// (its innermost frame is in ld.so; a library constructor's allocation is innermost in that
/// library).
pub fn runtime_owner(a: &Analysis, sym: &mut Symbolizer, idx: u32) -> Option<Owner> {
    let site = &a.sites[idx as usize];
    if site.frames.iter().any(|&addr| {
        sym.frames(&a.modules, addr).iter().any(|f| {
            f.function
                .as_deref()
                .is_some_and(|n| n.starts_with(ARENA_FUNCTION))
        })
    }) {
        return Some(Owner::Interpreter);
    }
    let first = site.frames.first()?;
    let module = a.modules.get(first.module)?;
    let name = module.path.rsplit('/').next().unwrap_or("");
    (name.starts_with("ld-linux") || name.starts_with("ld.so") || name.starts_with("ld-2."))
        .then_some(Owner::Loader)
}
