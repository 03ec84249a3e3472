//! How frames are presented to people: which frames fold away by default (the allocator's
//! internals, the interpreter's call machinery, ctypes and libffi plumbing), short names for
//! Rust and C++ functions (generic and template arguments elided, as samply and inferno do), and
//! short paths for build directories. JSON keeps every frame with its full name and path.

use crate::symbols::frames::{Frame, Kind};

/// Why a frame is folded by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fold {
    /// malloc and friends, pymalloc (obmalloc), `PyMem_*`, Rust's and C++'s allocation glue.
    Allocator,
    /// CPython's call machinery and start-up chain, importlib's frames.
    Interpreter,
    /// ctypes and libffi.
    Ffi,
    /// A program's start-up chain outside Python (`_start`, Rust's `std::rt::lang_start` and the
    /// closures and panic guards in it), and Rust's standard library between the program's
    /// own frames.
    Runtime,
}

impl Fold {
    pub fn noun(self) -> &'static str {
        match self {
            Fold::Allocator => "allocator",
            Fold::Interpreter => "interpreter",
            Fold::Ffi => "ctypes/libffi",
            Fold::Runtime => "runtime",
        }
    }
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

const ALLOC_EXACT: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "reallocarray",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "mmap",
    "mmap64",
    "__mmap",
    "mremap",
    "sysmalloc",
    "tcache_init",
    "__libc_malloc",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_memalign",
    "__GI___libc_malloc",
    "new_arena",
    "arena_map_get",
    "arena_map_mark_used",
    "address_in_range",
    "pymalloc_alloc",
    "pymalloc_realloc",
    "allocate_from_new_pool",
    "gc_alloc",
    "PyType_GenericAlloc",
    "__rust_alloc",
    "__rust_alloc_zeroed",
    "__rust_realloc",
    "__rdl_alloc",
    "__rdl_alloc_zeroed",
    "__rdl_realloc",
    "__rg_alloc",
    "__rg_alloc_zeroed",
    "__rg_realloc",
];

const ALLOC_PREFIX: &[&str] = &[
    "_int_",
    "_PyObject_Malloc",
    "_PyObject_Calloc",
    "_PyObject_Realloc",
    "PyObject_Malloc",
    "PyObject_Calloc",
    "PyObject_Realloc",
    "_PyObject_ArenaMmap",
    "_PyObject_VirtualAlloc",
    "PyMem_",
    "_PyMem_",
    "_PyObject_GC_New",
    "_PyObject_GC_Malloc",
    "_PyObject_GC_Calloc",
    "_PyObject_GC_Link",
    "_PyType_AllocNoTrack",
    "_PyObject_New",
    "PyObject_GC_",
    "alloc::alloc::",
    "<alloc::alloc::Global",
    "alloc::raw_vec::",
    "<alloc::raw_vec::",
    "std::sys::alloc",
    "std::sys::pal::unix::alloc",
    "<std::alloc::System",
    "std::alloc::",
    "operator new",
    "std::allocator",
    "std::__new_allocator",
    "__gnu_cxx::new_allocator",
    "std::allocator_traits",
];

const INTERP_EXACT: &[&str] = &[
    "_start",
    "run_mod",
    "run_eval_code_obj",
    "object_vacall",
    "builtin_exec",
    "builtin___import__",
    "builtin___build_class__",
    "import_find_and_load",
    "exec_builtin_or_dynamic",
    "PyModule_ExecDef",
    "thread_run",
    "t_bootstrap",
    "pythread_wrapper",
    "start_thread",
    "clone",
    "clone3",
    "context_run",
    "wrapper_call",
    "wrapperdescr_call",
    "call_unbound",
    "call_unbound_noarg",
    "partial_call",
    "partial_vectorcall",
    "gen_iternext",
];

const INTERP_PREFIX: &[&str] = &[
    "_PyEval_",
    "PyEval_",
    "_PyObject_Vectorcall",
    "PyObject_Vectorcall",
    "_PyObject_MakeTpCall",
    "_PyObject_Call",
    "PyObject_Call",
    "_PyObject_FastCall",
    "cfunction_",
    "method_vectorcall",
    "_PyFunction_Vectorcall",
    "_PyVectorcall_",
    "PyVectorcall_",
    "vectorcall_",
    "slot_tp_",
    "_PyRun_",
    "PyRun_",
    "pyrun_",
    "pymain_",
    "Py_RunMain",
    "Py_BytesMain",
    "Py_Main",
    "__libc_start_",
    "_PyCFunction",
    "PyCFunction_Call",
    "PyImport_",
    "_PyImport_",
    "_imp_",
    "gen_send_ex",
    "_PyGen_",
    "_Py_Call",
    "call_trampoline",
    "exec_code_in_module",
];

const RUNTIME_PREFIX: &[&str] = &[
    "std::rt::",
    "std::sys::backtrace::__rust_begin_short_backtrace",
    "std::panicking::try",
    "std::panicking::catch_unwind",
    "std::panic::catch_unwind",
    "<&dyn core::ops::function::Fn",
    "__rust_try",
];

/// Why `f` folds by default (None: it is shown). `interp` is the interpreter's module (where
/// its eval loop is), when known: its frames are call machinery, except the innermost frame
/// that is not the allocator's (`innermost`), which is who allocated (CPython itself).
pub fn fold_of(f: &Frame, interp: Option<&str>, innermost: bool) -> Option<Fold> {
    if f.kind == Kind::Python {
        let file = f.file.as_deref().unwrap_or("");
        return (file.starts_with("<frozen importlib") || file.starts_with("<frozen runpy"))
            .then_some(Fold::Interpreter);
    }
    let module = f.module.as_deref().unwrap_or("");
    let name = f.function.as_deref().unwrap_or("");
    let m = base(module);
    if m.starts_with("libffi") || m.starts_with("_ctypes") || name.starts_with("ffi_call") {
        return Some(Fold::Ffi);
    }
    if name.starts_with("_ctypes_callproc") || name.starts_with("PyCFuncPtr_call") {
        return Some(Fold::Ffi);
    }
    if m.starts_with("libmemshim")
        || ALLOC_EXACT.contains(&name)
        || ALLOC_PREFIX.iter().any(|p| name.starts_with(p))
    {
        return Some(Fold::Allocator);
    }
    if RUNTIME_PREFIX.iter().any(|p| name.starts_with(p))
        || (!innermost && f.file.as_deref().is_some_and(|p| p.starts_with("/rustc/")))
    {
        return Some(Fold::Runtime);
    }
    if interp.is_none() && (name == "_start" || name.starts_with("__libc_start_")) {
        // The C start-up chain of a program that is not Python.
        return Some(Fold::Runtime);
    }
    if INTERP_EXACT.contains(&name) || INTERP_PREFIX.iter().any(|p| name.starts_with(p)) {
        return Some(Fold::Interpreter);
    }
    if name == "main" && m.starts_with("python") {
        return Some(Fold::Interpreter);
    }
    if !innermost && !module.is_empty() && interp == Some(module) {
        return Some(Fold::Interpreter);
    }
    None
}

/// The interpreter's module in a stack (libpython, or the executable): the module of its eval
/// loop, or of the first call-machinery frame in a file named like CPython's.
pub fn interp_module(frames: &[Frame]) -> Option<&str> {
    let native = || frames.iter().filter(|f| f.kind == Kind::Native);
    native()
        .find(|f| {
            f.function
                .as_deref()
                .is_some_and(|n| n.starts_with("_PyEval_EvalFrameDefault"))
        })
        .or_else(|| {
            native().find(|f| {
                let b = base(f.module.as_deref().unwrap_or(""));
                (b.starts_with("libpython") || b.starts_with("python"))
                    && fold_of(f, None, false) == Some(Fold::Interpreter)
            })
        })
        .and_then(|f| f.module.as_deref())
}

/// The fold of each frame of a stack (innermost first). The first frame that is not the
/// allocator's is who allocated: kept even when it is the interpreter's own (`list_resize`).
pub fn folds(frames: &[Frame]) -> Vec<Option<Fold>> {
    let interp = interp_module(frames);
    let mut seen_own = false;
    let mut out: Vec<Option<Fold>> = Vec::with_capacity(frames.len());
    for (i, f) in frames.iter().enumerate() {
        // Under who allocated, the standard library's containers (Rust's `Vec`, inlined from
        // /rustc/..., C++'s `std::vector` from the libstdc++ headers) are allocation glue.
        let mut k = fold_of(f, interp, !seen_own)
            .or_else(|| (!seen_own && is_std_container(f)).then_some(Fold::Allocator));
        // The C `main` rustc writes, which calls `std::rt::lang_start`.
        if k.is_none()
            && f.function.as_deref() == Some("main")
            && i > 0
            && frames[i - 1]
                .function
                .as_deref()
                .is_some_and(|n| n.starts_with("std::rt::lang_start"))
        {
            k = Some(Fold::Runtime);
        }
        if k != Some(Fold::Allocator) {
            seen_own = true;
        }
        out.push(k);
    }
    out
}

/// A native frame of Rust's or C++'s standard library (by its source file).
fn is_std_container(f: &Frame) -> bool {
    f.kind == Kind::Native
        && f.file
            .as_deref()
            .is_some_and(|p| p.starts_with("/rustc/") || p.contains("/include/c++/"))
}

/// The frames that are shown by default: what sites are merged by, and what flamegraphs draw.
/// A stack whose every frame folds keeps them all.
pub fn shown(frames: &[Frame]) -> Vec<Frame> {
    let f = folds(frames);
    let out: Vec<Frame> = frames
        .iter()
        .zip(&f)
        .filter(|(_, k)| k.is_none())
        .map(|(fr, _)| fr.clone())
        .collect();
    if out.is_empty() {
        frames.to_vec()
    } else {
        out
    }
}

/// One line of a site's stack as the text report shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    Frame(&'a Frame),
    /// A run of folded frames: how many of each kind.
    Folded(Vec<(Fold, usize)>),
}

/// The lines of a stack: shown frames, and each run of folded frames as one counted line.
/// The innermost run of allocator frames comes back apart (`leading`): who allocated is read
/// first, the allocator's frames under it are only counted.
pub fn lines(frames: &[Frame]) -> (usize, Vec<Line<'_>>) {
    let f = folds(frames);
    let mut out = vec![];
    let mut leading = 0;
    let mut i = 0;
    while i < frames.len() && f[i] == Some(Fold::Allocator) {
        leading += 1;
        i += 1;
    }
    if i == frames.len() {
        return (0, frames.iter().map(Line::Frame).collect());
    }
    while i < frames.len() {
        match f[i] {
            None => {
                out.push(Line::Frame(&frames[i]));
                i += 1;
            }
            Some(_) => {
                let mut counts: Vec<(Fold, usize)> = vec![];
                while i < frames.len() {
                    let Some(k) = f[i] else { break };
                    match counts.iter_mut().find(|c| c.0 == k) {
                        Some(c) => c.1 += 1,
                        None => counts.push((k, 1)),
                    }
                    i += 1;
                }
                out.push(Line::Folded(counts));
            }
        }
    }
    (leading, out)
}

/// `12 interpreter frames`, `6 ctypes/libffi frames and 2 interpreter frames`.
pub fn folded_text(counts: &[(Fold, usize)]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|(k, n)| format!("{n} {} frame{}", k.noun(), if *n == 1 { "" } else { "s" }))
        .collect();
    parts.join(" and ")
}

/// `function (file:line)` as people read it: the short name and path, or the full ones.
pub fn label(f: &Frame, full: bool) -> String {
    if full {
        return f.label();
    }
    let name = display_name(f);
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{name} ({}:{line})", short_path(file)),
        (Some(file), None) => format!("{name} ({})", short_path(file)),
        _ => name,
    }
}

/// The frame's name, Rust and C++ names shortened.
pub fn display_name(f: &Frame) -> String {
    match (&f.function, f.kind) {
        (Some(n), Kind::Native) => short_name(n),
        _ => f.name(),
    }
}

/// The name flamegraphs draw: the short name and, when known, `(file:line)` with the file's
/// last component (the tooltip shows it whole).
pub fn graph_name(f: &Frame, full: bool) -> String {
    let name = if full { f.name() } else { display_name(f) };
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{name} ({}:{line})", base(file)),
        (Some(file), None) => format!("{name} ({})", base(file)),
        _ => name,
    }
}

/// Build and install directories cut to what identifies the file: CPython's build tree from
/// `Python-X.Y.Z/`, a crate from the registry from `crate-X.Y.Z/`, Rust's standard library
/// from `rust/`, a package from `site-packages/`; `/./` made `/`.
pub fn short_path(p: &str) -> String {
    let p = p.replace("/./", "/");
    if let Some(i) = p.find("/Python-").filter(|&i| {
        p[i + 8..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    }) {
        return p[i + 1..].to_string();
    }
    if let Some(rest) = p.strip_prefix("/rustc/") {
        if let Some((_, tail)) = rest.split_once('/') {
            return format!("rust/{tail}");
        }
    }
    if let Some(i) = p.find("/.cargo/registry/src/") {
        let rest = &p[i + "/.cargo/registry/src/".len()..];
        if let Some((_, tail)) = rest.split_once('/') {
            return tail.to_string();
        }
    }
    if let Some(i) = p.find("/site-packages/") {
        return p[i + 1..].to_string();
    }
    // The standard library: `python3.11/json/decoder.py`.
    if let Some(i) = p.find("/lib/python3.") {
        return p[i + 5..].to_string();
    }
    p
}

/// A Rust or C++ name with generic and template arguments, parameter lists, return types and
/// Rust's hash elided; closures and lambdas kept as `{closure}` / `{lambda}`, qualified paths
/// (`<T as Trait>::f`) and the crate or namespace path kept.
pub fn short_name(name: &str) -> String {
    let name = strip_hash(name);
    if !name.contains(['<', '(', '{']) {
        return name.to_string();
    }
    let c: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    // Each open `<`: true when it is kept (a qualified path), false when elided.
    let mut stack: Vec<bool> = vec![];
    let eliding = |s: &Vec<bool>| s.iter().any(|k| !k);
    while i < c.len() {
        let ch = c[i];
        let skip = eliding(&stack);
        if !skip && out.ends_with("operator") && "<>=-!+*/%^&|~[](),".contains(ch) {
            // The operator's own characters: `operator<<`, `operator()`, `operator->`.
            if ch == '(' && c.get(i + 1) == Some(&')') {
                out.push_str("()");
                i += 2;
                continue;
            }
            while i < c.len() && "<>=-!+*/%^&|~[]".contains(c[i]) {
                out.push(c[i]);
                i += 1;
            }
            continue;
        }
        match ch {
            '<' => {
                // `<A as B>` and `<impl X for Y>` are paths, kept; anything else (`Vec<T>`,
                // a turbofish `::<isize>`) is generic arguments, elided.
                let at_segment = out.is_empty()
                    || out.ends_with("::")
                    || out.ends_with(' ')
                    || out.ends_with('<');
                let keep = !skip && at_segment && {
                    let (inner, _) = matching(&c, i, '<', '>');
                    inner.contains(" as ") || inner.starts_with("impl ")
                };
                if !keep && !skip && out.ends_with("::") {
                    out.truncate(out.len() - 2);
                }
                stack.push(keep);
                if keep {
                    out.push('<');
                }
            }
            '>' => {
                if let Some(keep) = stack.pop() {
                    if keep && !eliding(&stack) {
                        out.push('>');
                    }
                } else if !skip {
                    out.push('>');
                }
            }
            '{' if !skip => {
                let (inner, next) = matching(&c, i, '{', '}');
                let inner = inner.trim_start_matches('{').trim_end_matches('}');
                let word: String = inner
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
                    .collect();
                out.push('{');
                out.push_str(if word.is_empty() { inner } else { &word });
                out.push('}');
                i = next;
                continue;
            }
            '(' if !skip => {
                let (inner, next) = matching(&c, i, '(', ')');
                if inner == "anonymous namespace" {
                    out.push_str("(anonymous namespace)");
                }
                i = next;
                // Qualifiers after a parameter list.
                for q in [" const", " volatile", " &&", " &"] {
                    let rest: String = c[i..].iter().collect();
                    if rest.starts_with(q) {
                        i += q.len();
                    }
                }
                continue;
            }
            _ if skip => {}
            _ => out.push(ch),
        }
        i += 1;
    }
    // A return type before the name (`void ns::f`): drop through the last top-level space.
    let mut depth = 0i32;
    let mut cut = None;
    for (k, ch) in out.char_indices() {
        match ch {
            '<' | '(' | '{' => depth += 1,
            '>' | ')' | '}' => depth -= 1,
            ' ' if depth == 0 && !out[..k].ends_with("operator") => cut = Some(k),
            _ => {}
        }
    }
    let out = match cut {
        Some(k) if !out[k + 1..].is_empty() && !out[..k].ends_with(" as") => {
            out[k + 1..].to_string()
        }
        _ => out,
    };
    out.trim().to_string()
}

/// The text inside the bracket opened at `c[i]` and the index after its match.
fn matching(c: &[char], i: usize, open: char, close: char) -> (String, usize) {
    let mut depth = 0;
    let mut j = i;
    while j < c.len() {
        if c[j] == open {
            depth += 1;
        } else if c[j] == close {
            depth -= 1;
            if depth == 0 {
                return (c[i + 1..j].iter().collect(), j + 1);
            }
        }
        j += 1;
    }
    (c[i + 1..].iter().collect(), c.len())
}

fn strip_hash(name: &str) -> &str {
    if let Some(k) = name.rfind("::h") {
        let h = &name[k + 3..];
        if h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()) {
            return &name[..k];
        }
    }
    name
}

/// How many frames the text report shows per site: `all` shows every frame, none folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frames {
    All,
    Top(usize),
}

impl std::str::FromStr for Frames {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(Frames::All);
        }
        s.parse()
            .map(Frames::Top)
            .map_err(|_| format!("`{s}`: a number of frames, or `all`"))
    }
}

/// How the text report shows stacks.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub frames: Frames,
    pub full_names: bool,
    /// Fold (the default; off in the native-only view, which asks for the interpreter's frames).
    pub fold: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            frames: Frames::Top(6),
            full_names: false,
            fold: true,
        }
    }
}

/// The lines under a site's header: frames (short names and paths unless `full_names`),
/// folded runs counted in place, the allocator frames under who allocated counted on its line.
pub fn stack_text(frames: &[Frame], style: &Style) -> Vec<String> {
    let label = |f: &Frame| label(f, style.full_names);
    let mut out = vec![];
    if frames.is_empty() {
        out.push("(no frames)".to_string());
        return out;
    }
    let limit = match style.frames {
        Frames::All => {
            out.extend(frames.iter().map(label));
            return out;
        }
        Frames::Top(n) => n.max(1),
    };
    if !style.fold {
        out.extend(frames.iter().take(limit).map(label));
        if frames.len() > limit {
            out.push(format!("... {} more frames", frames.len() - limit));
        }
        return out;
    }
    let (leading, lines) = lines(frames);
    let mut shown = 0;
    let mut hidden = 0;
    let last = lines.len().saturating_sub(1);
    for (k, l) in lines.iter().enumerate() {
        match l {
            Line::Frame(f) if shown < limit => {
                let mut s = label(f);
                if shown == 0 && leading > 0 {
                    s.push_str(&format!(
                        ", via {leading} allocator frame{}",
                        if leading == 1 { "" } else { "s" }
                    ));
                }
                out.push(s);
                shown += 1;
            }
            // The outermost fold (the start-up chain) closes the stack even at the limit.
            Line::Folded(c) if shown < limit || (k == last && hidden == 0) => {
                out.push(format!("[{}]", folded_text(c)));
                shown += 1;
            }
            Line::Frame(_) => hidden += 1,
            Line::Folded(c) => hidden += c.iter().map(|x| x.1).sum::<usize>(),
        }
    }
    if hidden > 0 {
        out.push(format!(
            "... {hidden} more frame{} (--frames all: every frame)",
            if hidden == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_names_lose_generics_and_hash_keep_closures_and_paths() {
        assert_eq!(
            short_name("<tokenizers::models::bpe::model::BPE as tokenizers::tokenizer::Model>::tokenize::h0123456789abcdef"),
            "<tokenizers::models::bpe::model::BPE as tokenizers::tokenizer::Model>::tokenize"
        );
        assert_eq!(
            short_name("alloc::vec::Vec<T,A>::extend_trusted::{{closure}}"),
            "alloc::vec::Vec::extend_trusted::{closure}"
        );
        assert_eq!(
            short_name("core::ptr::drop_in_place<alloc::vec::Vec<(usize, alloc::string::String)>>"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(
            short_name("<rayon::iter::map::MapFolder<C,F> as rayon::iter::plumbing::Folder<T>>::consume_iter"),
            "<rayon::iter::map::MapFolder as rayon::iter::plumbing::Folder>::consume_iter"
        );
        assert_eq!(short_name("tokenize"), "tokenize");
        assert_eq!(
            short_name("std::panicking::catch_unwind::do_call::<std::rt::lang_start_internal::{closure#0}, isize>"),
            "std::panicking::catch_unwind::do_call"
        );
        assert_eq!(
            short_name("<alloc::vec::Vec<u8> as core::ops::drop::Drop>::drop"),
            "<alloc::vec::Vec as core::ops::drop::Drop>::drop"
        );
    }

    #[test]
    fn cpp_names_lose_templates_parameters_and_return_types() {
        assert_eq!(
            short_name("void std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>(__gnu_cxx::__normal_iterator<int*, std::vector<int, std::allocator<int> > >, int const&)"),
            "std::vector::_M_realloc_insert"
        );
        assert_eq!(
            short_name("(anonymous namespace)::Worker::run(int) const"),
            "(anonymous namespace)::Worker::run"
        );
        assert_eq!(
            short_name("foo::bar(int)::{lambda(int)#1}::operator()(int) const"),
            "foo::bar::{lambda}::operator()"
        );
        assert_eq!(short_name("operator new(unsigned long)"), "operator new");
        assert_eq!(
            short_name("std::ostream::operator<<(int)"),
            "std::ostream::operator<<"
        );
    }

    #[test]
    fn build_paths_are_cut_to_what_names_the_file() {
        assert_eq!(
            short_path("/tmp/python-build.20260509073455.222/Python-3.11.7/./Include/internal/pycore_ceval.h"),
            "Python-3.11.7/Include/internal/pycore_ceval.h"
        );
        assert_eq!(
            short_path(
                "/rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/ptr/mod.rs"
            ),
            "rust/library/core/src/ptr/mod.rs"
        );
        assert_eq!(
            short_path("/root/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokenizers-0.19.1/src/lib.rs"),
            "tokenizers-0.19.1/src/lib.rs"
        );
        assert_eq!(short_path("/work/demo/serve.py"), "/work/demo/serve.py");
        assert_eq!(
            short_path("/root/.pyenv/versions/3.11.7/lib/python3.11/tempfile.py"),
            "python3.11/tempfile.py"
        );
    }

    fn nat(name: &str, module: &str) -> Frame {
        Frame {
            function: Some(name.into()),
            file: None,
            line: None,
            module: Some(module.into()),
            kind: Kind::Native,
            address: None,
        }
    }

    fn py(name: &str) -> Frame {
        Frame {
            function: Some(name.into()),
            file: Some("app.py".into()),
            line: Some(1),
            module: None,
            kind: Kind::Python,
            address: None,
        }
    }

    #[test]
    fn allocator_interpreter_and_ctypes_frames_fold_and_who_allocated_stays() {
        let lib = "/lib/libpython3.11.so.1.0";
        let stack = vec![
            nat("leak_here", "/x/libleak.so"),
            nat("ffi_call_unix64", "/lib/libffi.so.8"),
            nat("ffi_call", "/lib/libffi.so.8"),
            nat("_ctypes_callproc", "/py/_ctypes.cpython-311.so"),
            nat("PyCFuncPtr_call", "/py/_ctypes.cpython-311.so"),
            nat("_PyObject_MakeTpCall", lib),
            py("handle"),
            nat("_PyEval_Vector", lib),
            nat("PyEval_EvalCode", lib),
            nat("main", "/usr/bin/python3.11"),
            nat("__libc_start_main", "/lib/libc.so.6"),
        ];
        let (leading, l) = lines(&stack);
        assert_eq!(leading, 0);
        assert_eq!(l[0], Line::Frame(&stack[0]));
        assert_eq!(
            l[1],
            Line::Folded(vec![(Fold::Ffi, 4), (Fold::Interpreter, 1)])
        );
        assert_eq!(l[2], Line::Frame(&stack[6]));
        assert_eq!(l[3], Line::Folded(vec![(Fold::Interpreter, 4)]));
        let arena = vec![
            nat("_PyObject_ArenaMmap", lib),
            nat("new_arena", lib),
            nat("_PyObject_Malloc", lib),
            nat("PyList_New", lib),
            nat("list_extend", lib),
            py("f"),
            nat("_PyEval_EvalFrameDefault", lib),
        ];
        let (leading, l) = lines(&arena);
        assert_eq!(leading, 3);
        assert_eq!(l[0], Line::Frame(&arena[3]), "PyList_New allocated");
        assert_eq!(l[1], Line::Folded(vec![(Fold::Interpreter, 1)]));
        assert_eq!(
            shown(&arena).iter().map(|f| f.name()).collect::<Vec<_>>(),
            ["PyList_New", "f"]
        );
    }
}
