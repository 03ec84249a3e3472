//! Python frames for sampled allocations, read straight from the interpreter's memory.
//!
//! memray and Fil hook every Python call; memshim reads the frame chain only when it takes a
//! sample. At start it looks for CPython in the process (`Py_Version`, `_PyRuntime`) and picks the
//! struct layout for that version. On a sample, from a thread that holds the GIL, it walks
//! `tstate->cframe->current_frame` with plain loads (no Python API that could allocate, take a lock
//! or run the GC) and records per frame the code object's identity and instruction offset. Each
//! code object's names, first line and line table are copied once (into [`CodeArena`] memory,
//! handed to the writer by an event), so a record never depends on a code object that may be gone.
//!
//! Layouts are vouched for by a test that compiles CPython's own headers (`offsetof`); versions
//! without a verified layout fall back to native-only stacks with one warning.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::ring::{Event, EventKind};
use crate::{arena, real};

/// Offsets into CPython's structs, for one version.
#[derive(Debug)]
pub struct Layout {
    pub version: (u8, u8),
    pub tstate_cframe: usize,
    pub cframe_current_frame: usize,
    pub frame_code: usize,
    pub frame_previous: usize,
    pub frame_prev_instr: usize,
    pub frame_is_entry: usize,
    pub frame_owner: usize,
    pub code_firstlineno: usize,
    pub code_filename: usize,
    pub code_name: usize,
    pub code_qualname: usize,
    pub code_linetable: usize,
    pub code_firsttraceable: usize,
    pub code_code_adaptive: usize,
    pub runtime_finalizing: usize,
    pub unicode_length: usize,
    pub unicode_state: usize,
    pub unicode_ascii_size: usize,
    pub unicode_utf8_length: usize,
    pub unicode_utf8: usize,
    pub unicode_compact_size: usize,
    pub bytes_size: usize,
    pub bytes_sval: usize,
    pub owned_by_generator: u8,
}

/// CPython 3.11 (Include/cpython/pystate.h, Include/internal/pycore_frame.h,
/// Include/cpython/code.h, Include/internal/pycore_runtime.h, Include/cpython/unicodeobject.h).
pub const PY311: Layout = Layout {
    version: (3, 11),
    tstate_cframe: 56,
    cframe_current_frame: 8,
    frame_code: 32,
    frame_previous: 48,
    frame_prev_instr: 56,
    frame_is_entry: 68,
    frame_owner: 69,
    code_firstlineno: 72,
    code_filename: 112,
    code_name: 120,
    code_qualname: 128,
    code_linetable: 136,
    code_firsttraceable: 168,
    code_code_adaptive: 184,
    runtime_finalizing: 24,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_size: 48,
    unicode_utf8_length: 48,
    unicode_utf8: 56,
    unicode_compact_size: 72,
    bytes_size: 16,
    bytes_sval: 32,
    owned_by_generator: 1,
};

/// Python frames kept per sample.
pub const MAX_PY_FRAMES: usize = 64;
/// Words per Python frame in an event: code id, then instruction | entry << 32.
pub const WORDS_PER_FRAME: usize = 2;

type ThreadStateFn = unsafe extern "C" fn() -> *mut c_void;

struct Python {
    layout: &'static Layout,
    runtime: usize,
    unchecked_get: ThreadStateFn,
    this_thread: ThreadStateFn,
}

static PYTHON: OnceLock<Python> = OnceLock::new();
static FINALIZING_SEEN: AtomicBool = AtomicBool::new(false);

fn sym(name: &core::ffi::CStr) -> *mut c_void {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches the whole process.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// Looks for CPython in the process; called from the constructor (dlsym is safe there).
pub fn detect(enabled: bool) {
    if !enabled {
        return;
    }
    let version_sym = sym(c"Py_Version");
    let runtime = sym(c"_PyRuntime");
    if runtime.is_null() {
        return; // not a Python process (or Python is loaded later with dlopen)
    }
    if version_sym.is_null() {
        real::warn("this Python predates 3.11 (no Py_Version); stacks have native frames only");
        return;
    }
    // SAFETY: Py_Version is an exported `const unsigned long` (PY_VERSION_HEX).
    let hex = unsafe { *(version_sym as *const u32) };
    let version = ((hex >> 24) as u8, (hex >> 16) as u8);
    let layout = match version {
        (3, 11) => &PY311,
        (major, minor) => {
            real::warn(&format!(
                "Python {major}.{minor} has no verified frame layout; stacks have native frames only"
            ));
            return;
        }
    };
    let get = sym(c"_PyThreadState_UncheckedGet");
    let mine = sym(c"PyGILState_GetThisThreadState");
    if get.is_null() || mine.is_null() {
        real::warn("Python thread-state functions not found; stacks have native frames only");
        return;
    }
    let _ = PYTHON.set(Python {
        layout,
        runtime: runtime as usize,
        // SAFETY: both are `PyThreadState *(void)` functions of the C API.
        unchecked_get: unsafe { core::mem::transmute::<*mut c_void, ThreadStateFn>(get) },
        // SAFETY: as above.
        this_thread: unsafe { core::mem::transmute::<*mut c_void, ThreadStateFn>(mine) },
    });
}

/// Reads a word of the interpreter's memory.
///
/// # Safety
/// `addr` must be readable: a field of a live interpreter struct.
unsafe fn word(addr: usize) -> usize {
    // SAFETY: per the contract.
    unsafe { (addr as *const usize).read() }
}

/// Writes this thread's Python frames into `out` (two words each, innermost first) and returns
/// how many frames. Zero when the thread does not hold the GIL or there is no Python.
pub fn capture(out: &mut [core::mem::MaybeUninit<u64>]) -> usize {
    let Some(py) = PYTHON.get() else { return 0 };
    let l = py.layout;
    // SAFETY: both are C API getters that only read thread-state pointers (an atomic load and a
    // pthread_getspecific): no allocation, no lock.
    let (holder, mine) = unsafe { ((py.unchecked_get)(), (py.this_thread)()) };
    if holder.is_null() || holder != mine {
        return 0; // no GIL here: another thread's frames are not ours to read
    }
    let max = (out.len() / WORDS_PER_FRAME).min(MAX_PY_FRAMES);
    let mut n = 0;
    // SAFETY: we hold the GIL, so the thread state, its frame chain and the code objects it
    // references are alive and not being mutated by another thread; the offsets are those of
    // this interpreter version (see the layout test).
    unsafe {
        let cframe = word(holder as usize + l.tstate_cframe);
        if cframe == 0 {
            return 0;
        }
        let mut frame = word(cframe + l.cframe_current_frame);
        let mut pending_entry = false;
        while frame != 0 && n < max {
            let code = word(frame + l.frame_code);
            let is_entry = *((frame + l.frame_is_entry) as *const u8) != 0;
            let owner = *((frame + l.frame_owner) as *const u8);
            let prev_instr = word(frame + l.frame_prev_instr);
            let start = code + l.code_code_adaptive;
            let first_traceable = *((code + l.code_firsttraceable) as *const i32) as usize;
            // An incomplete frame (still in its prologue) has no meaningful position: skip it,
            // but keep its entry mark for the frame it stands under.
            let incomplete =
                owner != l.owned_by_generator && prev_instr < start + first_traceable * 2;
            if incomplete {
                pending_entry |= is_entry;
            } else if code != 0 {
                let instr = prev_instr.saturating_sub(start) / 2;
                let entry = is_entry || core::mem::take(&mut pending_entry);
                out[n * 2].write(code_id(py, code));
                out[n * 2 + 1].write(instr as u64 | (entry as u64) << 32);
                n += 1;
            }
            frame = word(frame + l.frame_previous);
        }
        if pending_entry && n > 0 {
            let last = out[n * 2 - 1].assume_init();
            out[n * 2 - 1].write(last | 1 << 32);
        }
    }
    n
}

/// True (once) when the interpreter has started finalizing: a field of `_PyRuntime` set by
/// Py_FinalizeEx before it frees what module globals hold.
pub fn finalizing_started() -> bool {
    let Some(py) = PYTHON.get() else { return false };
    // Relaxed: a one-shot flag; a duplicate marker is harmless, the writer keeps the first.
    if FINALIZING_SEEN.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: `_finalizing` is a pointer-sized field of the static `_PyRuntime`.
    let f = unsafe { (py.runtime as *const AtomicUsize).byte_add(py.layout.runtime_finalizing) };
    // SAFETY: as above; read atomically as CPython writes it atomically.
    if unsafe { &*f }.load(Ordering::Relaxed) == 0 {
        return false;
    }
    !FINALIZING_SEEN.swap(true, Ordering::Relaxed)
}

// ---- code objects: identity and a one-time copy of their names ----

/// Slots of the table of code ids already sent (open addressing, never shrinks).
const SEEN_SLOTS: usize = 1 << 16;
static SEEN: [AtomicU64; SEEN_SLOTS] = [const { AtomicU64::new(0) }; SEEN_SLOTS];

/// A code object's identity: its address mixed with its name, file and first line, so a new code
/// object that reuses a freed one's address gets a new id.
///
/// # Safety
/// `code` is a live code object of this interpreter.
unsafe fn code_id(py: &Python, code: usize) -> u64 {
    let l = py.layout;
    // SAFETY: fields of a live code object.
    let (file, name, line) = unsafe {
        (
            word(code + l.code_filename),
            word(code + l.code_name),
            *((code + l.code_firstlineno) as *const i32),
        )
    };
    let mut h = code as u64;
    h ^= (file as u64).rotate_left(21);
    h ^= (name as u64).rotate_left(42);
    h ^= (line as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let id = h | 1; // never 0, the empty slot
    if mark_seen(id) {
        // SAFETY: `code` is live (the caller holds the GIL).
        unsafe { send_code(py, code, id) };
    }
    id
}

/// Records `id` as sent; true when it was not yet. Entries are keyed with the fork generation, so
/// a forked child (whose new capture needs every name again) finds none of its parent's.
fn mark_seen(id: u64) -> bool {
    // Relaxed: the generation changes only in a single-threaded fork child.
    let gen = crate::sampler::FORK_GEN.load(Ordering::Relaxed) as u64;
    let id = (id ^ gen.wrapping_mul(0xD6E8_FEB8_6659_FD93)) | 1;
    let mut i = (id as usize).wrapping_mul(0x9E37_79B9) % SEEN_SLOTS;
    for _ in 0..64 {
        // Relaxed: two threads racing on one id may both send it; the writer keeps one.
        match SEEN[i].compare_exchange(0, id, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(v) if v == id => return false,
            Err(_) => i = (i + 1) % SEEN_SLOTS,
        }
    }
    true // table crowded here: send again rather than lose a name
}

/// In a forked child: the finalization marker belongs to the child's own capture.
pub fn after_fork_child() {
    FINALIZING_SEEN.store(false, Ordering::Relaxed);
}

/// A fixed buffer on the stack that fills up and then ignores the rest (names are truncated
/// rather than allocated for: this runs inside malloc).
struct Buf<'a> {
    bytes: &'a mut [u8],
    len: usize,
}

impl Buf<'_> {
    fn push(&mut self, b: &[u8]) {
        let n = b.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }
}

/// A Python string object's text as UTF-8 bytes, appended to `out` (truncated to fit).
///
/// # Safety
/// `obj` is a live `str` object (or 0).
unsafe fn read_str(l: &Layout, obj: usize, out: &mut Buf<'_>) {
    const MAX: usize = 1024;
    if obj == 0 {
        return;
    }
    // SAFETY: fields of a live str object, per the layout.
    unsafe {
        let len = word(obj + l.unicode_length).min(MAX);
        let state = *((obj + l.unicode_state) as *const u32);
        let (kind, compact, ascii) = ((state >> 2) & 7, state >> 5 & 1 == 1, state >> 6 & 1 == 1);
        if !compact {
            out.push(b"?");
            return;
        }
        if ascii {
            let data = (obj + l.unicode_ascii_size) as *const u8;
            out.push(core::slice::from_raw_parts(data, len));
            return;
        }
        let utf8 = word(obj + l.unicode_utf8);
        if utf8 != 0 {
            let n = word(obj + l.unicode_utf8_length).min(MAX * 4);
            out.push(core::slice::from_raw_parts(utf8 as *const u8, n));
            return;
        }
        let data = obj + l.unicode_compact_size;
        let mut utf = [0u8; 4];
        for i in 0..len {
            let cp = match kind {
                1 => *((data + i) as *const u8) as u32,
                2 => *((data + 2 * i) as *const u16) as u32,
                _ => *((data + 4 * i) as *const u32),
            };
            let c = char::from_u32(cp).unwrap_or('\u{fffd}');
            out.push(c.encode_utf8(&mut utf).as_bytes());
        }
    }
}

/// Copies a code object's names and line table into the arena and tells the writer. Allocates
/// nothing: the names are gathered in a stack buffer, the line table copied straight across.
///
/// # Safety
/// `code` is a live code object; the caller holds the GIL.
#[cold]
unsafe fn send_code(py: &Python, code: usize, id: u64) {
    let l = py.layout;
    let mut storage = [0u8; 4096];
    let mut head = Buf {
        bytes: &mut storage,
        len: 0,
    };
    head.push(&id.to_le_bytes());
    // SAFETY: fields of a live code object.
    let first = unsafe { *((code + l.code_firstlineno) as *const i32) };
    head.push(&(first as u32).to_le_bytes());
    head.push(&[l.version.0, l.version.1]);
    for off in [l.code_name, l.code_qualname, l.code_filename] {
        let at = head.len;
        head.push(&[0; 4]);
        // SAFETY: the code object's str fields.
        unsafe { read_str(l, word(code + off), &mut head) };
        let n = (head.len - at - 4) as u32;
        head.bytes[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }
    // SAFETY: co_linetable is a bytes object of the live code object.
    let table: &[u8] = unsafe {
        let t = word(code + l.code_linetable);
        let n = if t == 0 {
            0
        } else {
            word(t + l.bytes_size).min(1 << 16)
        };
        core::slice::from_raw_parts((t + l.bytes_sval) as *const u8, n)
    };
    let len = head.len + 4 + table.len();
    let Some(dst) = arena::reserve(len) else {
        return;
    };
    // SAFETY: `dst` has `len` bytes reserved for us alone.
    unsafe {
        core::ptr::copy_nonoverlapping(head.bytes.as_ptr(), dst, head.len);
        let n = (table.len() as u32).to_le_bytes();
        core::ptr::copy_nonoverlapping(n.as_ptr(), dst.add(head.len), 4);
        core::ptr::copy_nonoverlapping(table.as_ptr(), dst.add(head.len + 4), table.len());
    }
    let offset = arena::offset_of(dst);
    let ev = Event {
        kind: EventKind::PyCode as u8,
        alloc_kind: 0,
        nframes: 0,
        npy: 0,
        tid: 0,
        t: 0,
        addr: offset as u64,
        size: len as u64,
    };
    crate::recorder::push(ev, &[]);
}

/// Decodes a blob written by [`send_code`] (writer side).
pub fn decode_code(b: &[u8]) -> Option<memshim_format::PyCode> {
    let mut at = 0;
    let mut take = |n: usize| {
        let s = b.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let id = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let first_line = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let v = take(2)?;
    let py_version = (v[0], v[1]);
    let mut text = || -> Option<String> {
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        Some(String::from_utf8_lossy(take(n)?).into_owned())
    };
    let (name, qualname, filename) = (text()?, text()?, text()?);
    let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let linetable = take(n)?.to_vec();
    Some(memshim_format::PyCode {
        id,
        name,
        qualname,
        filename,
        first_line,
        linetable,
        py_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles a program against the interpreter's own headers that prints `offsetof` each field
    /// the walker reads, and compares with the table: the layout is vouched for, not guessed.
    #[test]
    fn py311_layout_matches_cpython_headers() {
        let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(&py)
            .args(["-c", "import sys,sysconfig;print(sys.version_info[:2]);print(sysconfig.get_paths()['include'])"])
            .output()
            .expect("python3 is needed to check the CPython layouts");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let version = lines.next().unwrap();
        assert_eq!(
            version, "(3, 11)",
            "this machine's Python is not 3.11; check its layout instead"
        );
        let include = lines.next().unwrap();
        let dir = std::env::temp_dir().join(format!("memshim-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("layout.c");
        std::fs::write(&src, LAYOUT_C).unwrap();
        let exe = dir.join("layout");
        let cc = std::process::Command::new("cc")
            .arg(format!("-I{include}"))
            .arg(format!("-I{include}/internal"))
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .status()
            .unwrap();
        assert!(cc.success());
        let out = std::process::Command::new(&exe).output().unwrap();
        let got: Vec<usize> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        let l = &PY311;
        let want = [
            l.tstate_cframe,
            l.cframe_current_frame,
            l.frame_code,
            l.frame_previous,
            l.frame_prev_instr,
            l.frame_is_entry,
            l.frame_owner,
            l.code_firstlineno,
            l.code_filename,
            l.code_name,
            l.code_qualname,
            l.code_linetable,
            l.code_firsttraceable,
            l.code_code_adaptive,
            l.runtime_finalizing,
            l.unicode_length,
            l.unicode_state,
            l.unicode_ascii_size,
            l.unicode_utf8_length,
            l.unicode_utf8,
            l.unicode_compact_size,
            l.bytes_size,
            l.bytes_sval,
            l.owned_by_generator as usize,
        ];
        assert_eq!(got, want);
    }

    const LAYOUT_C: &str = r#"
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_frame.h"
#include "internal/pycore_runtime.h"
int main(void) {
    size_t v[] = {
        offsetof(PyThreadState, cframe), offsetof(_PyCFrame, current_frame),
        offsetof(_PyInterpreterFrame, f_code), offsetof(_PyInterpreterFrame, previous),
        offsetof(_PyInterpreterFrame, prev_instr), offsetof(_PyInterpreterFrame, is_entry),
        offsetof(_PyInterpreterFrame, owner), offsetof(PyCodeObject, co_firstlineno),
        offsetof(PyCodeObject, co_filename), offsetof(PyCodeObject, co_name),
        offsetof(PyCodeObject, co_qualname), offsetof(PyCodeObject, co_linetable),
        offsetof(PyCodeObject, _co_firsttraceable), offsetof(PyCodeObject, co_code_adaptive),
        offsetof(_PyRuntimeState, _finalizing), offsetof(PyASCIIObject, length),
        offsetof(PyASCIIObject, state), sizeof(PyASCIIObject),
        offsetof(PyCompactUnicodeObject, utf8_length), offsetof(PyCompactUnicodeObject, utf8),
        sizeof(PyCompactUnicodeObject), offsetof(PyVarObject, ob_size),
        offsetof(PyBytesObject, ob_sval), FRAME_OWNED_BY_GENERATOR,
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) printf("%zu\n", v[i]);
    return 0;
}
"#;
}
