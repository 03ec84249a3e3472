//! Python frames for sampled allocations, read straight from the interpreter's memory.
//!
//! memray and Fil hook every Python call; memshim reads the frame chain only when it takes a
//! sample. At start it looks for CPython in the process (`_PyRuntime`, the version) and picks the
//! struct layout for that version ([`layout`]). On a sample it walks the allocating thread's own
//! frame chain, whether or not that thread holds the GIL, with plain loads (no Python API that
//! could allocate, take a lock or run the GC), and records per frame the code object's identity
//! and instruction offset. Each code object's names, first line and line table are copied once
//! (into [`crate::transport::arena`] memory, handed to the writer by an event), so a record never depends on
//! a code object that may be gone.
//!
//! Layouts are vouched for by tests that compile each version's own headers (`offsetof`) and run
//! a real interpreter of that version under the shim: 3.8 to 3.13. Other versions fall back to
//! native-only stacks with one warning.
//!
//! # Whose frames a sample carries ([`whose`])
//!
//! Always the allocating thread's own, never another thread's:
//! - `mine` is `PyGILState_GetThisThreadState()`: this thread's entry in the interpreter's
//!   thread-specific key (a `pthread_getspecific`), set by the thread itself when its state is
//!   bound to it (`threading`'s bootstrap, `PyGILState_Ensure`, `Py_Initialize` for the main
//!   thread) and cleared by the thread itself when it deletes that state. A thread with no entry
//!   (an OpenMP or BLAS worker, a rayon pool, a pthread a C library started) gets native frames
//!   only: no other thread's state is ever looked at. (The one way an entry can name a state
//!   another thread runs: up to 3.11 `PyThreadState_New` notes the new state in the *creating*
//!   thread's entry when that thread has none, and from 3.12 on it binds it to the creating
//!   thread; a thread with no state of its own that creates one for another thread to run is a
//!   misuse CPython's own threads, `PyGILState_Ensure`, pybind11 and PyO3 never commit.)
//! - A thread that holds the GIL (`holder == mine`; `holder` is `_PyThreadState_UncheckedGet()`:
//!   the state holding the GIL up to 3.11, this thread's attached state from 3.12 on) is read as
//!   before.
//! - A thread that released it (`Py_BEGIN_ALLOW_THREADS`, PyO3's `allow_threads`, every
//!   `ctypes.CDLL` call) is read through `mine`: the C function it is in and the Python frames
//!   that called it. From 3.12 on, a thread attached with another state than its own entry (a
//!   second state it swapped in) gets native frames only, as before.
//! - Once the interpreter has begun finalizing (`_PyRuntime._finalizing`, 3.8's `finalizing`,
//!   holds the finalizing thread's state), only that thread's samples carry Python frames, and
//!   only while it holds the GIL (as before): from 3.9 on `Py_FinalizeEx` frees every other
//!   thread state soon after setting the field (`_PyThreadState_DeleteExcept`, 3.13's
//!   `_PyThreadState_DeleteList`; 3.8 in `PyInterpreterState_Delete`) while daemon threads'
//!   key entries still point at them, and near its end it frees its own after dropping it.
//!
//! # Why reading a thread's own frames without the GIL is sound
//!
//! The read happens on the thread that owns the frames, inside one of its own malloc calls. A
//! thread that released the GIL does not change its own frame chain until it takes the GIL back:
//! it is running C code (the function that called malloc), and only the eval loop, run by this
//! thread with the GIL held, pushes, pops or advances its frames. Per version, what the walker
//! reads and why it stays put:
//! - **3.8 to 3.10**: `tstate->frame`, then `f_back`, `f_code`, `f_lasti`.
//!   `_PyEval_EvalFrameDefault` sets `tstate->frame` on entry and exit and `f_lasti` per
//!   instruction, both on the owning thread with the GIL held; `PyEval_SaveThread` only swaps
//!   the GIL holder out. Each frame of the chain is referenced by the eval call still on this
//!   thread's C stack (so the GC, which cannot see that reference, never clears it;
//!   `frame.clear()` refuses an executing frame), and holds a strong reference to its code
//!   object in `f_code`, never reassigned.
//! - **3.11**: `tstate->cframe` (the `_PyCFrame` on the C stack of the innermost running
//!   `_PyEval_EvalFrameDefault`, or `tstate->root_cframe`), its `current_frame`, then `previous`,
//!   `f_code`, `prev_instr` (stored at each instruction, so at the CALL while the callee runs),
//!   `is_entry`, `owner`. The `_PyInterpreterFrame`s sit in the thread's data stack chunks (pushed
//!   and popped by this thread only) or in an executing generator object, and own a strong
//!   reference to `f_code`.
//! - **3.12**: the same through `tstate->cframe->current_frame`, with `FRAME_OWNED_BY_CSTACK`
//!   entry frames on this thread's C stack.
//! - **3.13**: `tstate->current_frame` (set by the eval loop as it pushes and pops frames; left
//!   as is by `_PyThreadState_Detach`, which only changes the state's `state` and the GIL), then
//!   `previous`, `f_executable` (a strong reference; type-checked, it may be no code object),
//!   `instr_ptr`, `owner`.
//!
//! Other threads holding the GIL may reach these frames (`sys._current_frames()`, tracebacks,
//! the GC) but only read them or write fields the walker never reads (`frame_obj` when 3.11+
//! materializes a frame object, `f_locals`, `f_trace`); a generator in the chain is executing,
//! so another thread's `send` or `close` raises. The strings and bytes a code object holds
//! (`co_name`, `co_qualname`, `co_filename`, `co_lnotab`/`co_linetable`) are immutable and kept
//! alive by the code object, itself kept alive by the frame.
//!
//! Finalization: a daemon thread can check `_finalizing` just before the finalizing thread sets
//! it and frees the daemon's state. What it then reads stays mapped: the freed state goes back to
//! malloc, which keeps it mapped (or to the shim's region, whose small slots stay mapped), and
//! neither `_PyThreadState_DeleteExcept` nor `_PyThreadState_DeleteList` frees frames or data
//! stack chunks (only `tstate_delete_common`, from `zapthreads` at the very end, does), so the
//! daemon's frames and their code objects stay alive. The field is read again after the walk,
//! and a detached read that overlapped the start of finalization keeps no frame: no such sample
//! carries frames that may be stale. (What is left: the freed state handed out again and
//! overwritten by the finalizing thread within that window of a few loads; the checks below
//! then stop the walk at the first implausible pointer or non-code object, but a pointer into
//! unmapped memory would still be followed.)
//!
//! Checked before each pointer is followed: the thread state, each frame and each code object
//! is non-null and 8-byte aligned; a code object is followed only once its type is
//! `PyCode_Type` (every version); a chain is cut at [`MAX_PY_FRAMES`] (a cycle ends there), a
//! name at 1024 characters and a line table at 64 KiB; a 3.11+ instruction pointer below its
//! code's first traceable instruction gives no position.

pub mod layout;

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

mod codes;
mod walk;

pub use layout::{Chain, Layout};

use crate::stacks::Send;
use crate::sys::real;
use crate::transport::event::{MAX_PY_FRAMES, WORDS_PER_FRAME};
use walk::{walk_cframe, walk_current, walk_frame_objects, Frames};

type ThreadStateFn = unsafe extern "C" fn() -> *mut c_void;

struct Python {
    layout: Layout,
    runtime: usize,
    /// `&PyCode_Type`: 3.13 frames may run something else than a code object.
    code_type: usize,
    unchecked_get: ThreadStateFn,
    this_thread: ThreadStateFn,
}

static PYTHON: OnceLock<Python> = OnceLock::new();
static FINALIZING_SEEN: AtomicBool = AtomicBool::new(false);
/// The interpreter (3.12+) counts the process's threads in `os.fork()` and warns when there are
/// several: the writer then steps aside around a fork.
static COUNTS_THREADS_AT_FORK: AtomicBool = AtomicBool::new(false);

/// True when the interpreter in this process warns about threads alive at `os.fork()`.
pub fn counts_threads_at_fork() -> bool {
    // Relaxed: set by the constructor, before any other thread exists.
    COUNTS_THREADS_AT_FORK.load(Ordering::Relaxed)
}

fn sym(name: &core::ffi::CStr) -> *mut c_void {
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches the whole process.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// The interpreter's (major, minor) version and, from 3.11 on, its `Py_Version`.
///
/// Python has not started when the constructor runs, and the shim must never call into it, so
/// the version is read from what the binary exports, not asked for. 3.11+ export `Py_Version`, a
/// constant (PY_VERSION_HEX). Older versions have no such datum (`Py_GetVersion()` formats its
/// string when called, and the PY_VERSION literal has no symbol), so they are told apart by the C
/// API functions each added, which no later version removed: `PyIter_Send` (3.10),
/// `PyFrame_GetCode` (3.9) and `PyCode_NewWithPosOnlyArgs` (3.8); (3, 7) stands for 3.7 or
/// older. A library exporting such a name by chance could mislead this, so the caller also
/// checks that `PyCode_Type.tp_basicsize` (and up to 3.10 `PyFrame_Type`'s) is the size that
/// version's headers give: a wrong guess is refused, not walked.
fn version() -> ((u8, u8), Option<u32>) {
    let v = sym(c"Py_Version");
    if !v.is_null() {
        // SAFETY: Py_Version is an exported `const unsigned long` (PY_VERSION_HEX), initialized
        // data of the binary; reading its low 32 bits (little endian) is a plain load.
        let hex = unsafe { *(v as *const u32) };
        return (((hex >> 24) as u8, (hex >> 16) as u8), Some(hex));
    }
    if !sym(c"PyIter_Send").is_null() {
        ((3, 10), None)
    } else if !sym(c"PyFrame_GetCode").is_null() {
        ((3, 9), None)
    } else if !sym(c"PyCode_NewWithPosOnlyArgs").is_null() {
        ((3, 8), None)
    } else {
        ((3, 7), None)
    }
}

/// `tp_basicsize` of the exported type object `name`, if there is one.
fn basicsize(name: &core::ffi::CStr, l: &Layout) -> Option<usize> {
    let t = sym(name);
    if t.is_null() {
        return None;
    }
    // SAFETY: `name` is a static PyTypeObject of the interpreter, initialized data whose
    // tp_basicsize sits at `type_basicsize` in every supported version (checked by the layout
    // tests); a plain load.
    Some(unsafe { *((t as usize + l.type_basicsize) as *const isize) } as usize)
}

/// The layout of the running interpreter, or why it has none.
fn layout_for(version: (u8, u8), hex: Option<u32>, runtime: usize) -> Result<Layout, String> {
    let l = match version {
        (3, 8) => layout::PY38,
        (3, 9) => layout::PY39,
        (3, 10) => layout::PY310,
        (3, 11) => layout::PY311,
        (3, 12) => layout::PY312,
        (3, 13) => {
            let mut d = [0u8; layout::debug313::SIZE];
            // SAFETY: 3.13's `_PyRuntime` starts with its `_Py_DebugOffsets`, statically
            // initialized data of that size (checked against the headers); `d` is ours.
            unsafe {
                core::ptr::copy_nonoverlapping(runtime as *const u8, d.as_mut_ptr(), d.len())
            };
            layout::from_debug_offsets(&d, hex.unwrap_or(0))?
        }
        (3, 7) => return Err("Python 3.7 or older has no verified frame layout".into()),
        (major, minor) => {
            return Err(format!(
                "Python {major}.{minor} has no verified frame layout"
            ));
        }
    };
    let code = basicsize(c"PyCode_Type", &l);
    if code != Some(l.code_basicsize) {
        return Err(format!(
            "Python {}.{}: code objects of {code:?} bytes, not the {} of the verified layout",
            version.0, version.1, l.code_basicsize
        ));
    }
    if l.frame_basicsize != layout::NONE {
        let frame = basicsize(c"PyFrame_Type", &l);
        if frame != Some(l.frame_basicsize) {
            return Err(format!(
                "Python {}.{}: frame objects of {frame:?} bytes, not the {} of the verified layout",
                version.0, version.1, l.frame_basicsize
            ));
        }
    }
    Ok(l)
}

/// Looks for CPython in the process; called from the constructor (dlsym is safe there). Prints
/// one warning when Python is there but its frames cannot be read.
pub fn detect(enabled: bool) {
    let runtime = sym(c"_PyRuntime");
    if runtime.is_null() {
        return; // not a Python process (or Python is loaded later with dlopen)
    }
    let (version, hex) = version();
    // 3.12+ counts the process's threads after os.fork() and warns about ours: see the writer's
    // thread. Relaxed: set before any thread but the main one exists.
    COUNTS_THREADS_AT_FORK.store(version >= (3, 12), Ordering::Relaxed);
    if !enabled {
        return;
    }
    let layout = match layout_for(version, hex, runtime as usize) {
        Ok(l) => l,
        Err(why) => {
            real::warn(&format!("{why}; stacks have native frames only"));
            return;
        }
    };
    // 3.13 renamed `_PyThreadState_UncheckedGet` to `PyThreadState_GetUnchecked`.
    let mut get = sym(c"_PyThreadState_UncheckedGet");
    if get.is_null() {
        get = sym(c"PyThreadState_GetUnchecked");
    }
    let mine = sym(c"PyGILState_GetThisThreadState");
    let code_type = sym(c"PyCode_Type");
    if get.is_null() || mine.is_null() || code_type.is_null() {
        real::warn("Python thread-state functions not found; stacks have native frames only");
        return;
    }
    let _ = PYTHON.set(Python {
        layout,
        runtime: runtime as usize,
        code_type: code_type as usize,
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
/// how many frames. Zero when the thread has no thread state of its own, once the interpreter
/// is finalizing (but on the finalizing thread while it holds the GIL), or with no Python. See
/// the module docs for whose frames these are and why reading them is sound.
pub fn capture(out: &mut [core::mem::MaybeUninit<u64>], send: Send) -> usize {
    let Some(py) = PYTHON.get() else { return 0 };
    // SAFETY: both are C API getters that only read thread-state pointers (an atomic load, or a
    // thread-local of the interpreter's static TLS block, and a pthread_getspecific): no
    // allocation, no lock.
    let (holder, mine) = unsafe { ((py.unchecked_get)(), (py.this_thread)()) };
    let Some(read) = whose(py, holder as usize, mine as usize) else {
        return 0;
    };
    let max = (out.len() / WORDS_PER_FRAME).min(MAX_PY_FRAMES);
    let mut w = Frames {
        out,
        n: 0,
        max,
        send,
        in_call: 0,
    };
    // SAFETY: `read.tstate` is this thread's own thread state, alive: the thread holds the GIL
    // with it, or released the GIL and so changes none of its frames until it takes it back,
    // and no finalization had begun (see the module docs); the offsets are those of this
    // interpreter version (see the layout tests).
    unsafe {
        match py.layout.chain {
            Chain::FrameObjects => walk_frame_objects(py, read.tstate, &mut w),
            Chain::CFrame => walk_cframe(py, read.tstate, &mut w),
            Chain::Current => walk_current(py, read.tstate, &mut w),
        }
    }
    if read.detached && py.finalizing() != 0 {
        // Finalization began during the walk and may have freed the state read: keep nothing.
        return 0;
    }
    w.n
}

/// A thread state [`capture`] may read, and how it came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Read {
    tstate: usize,
    /// The thread released the GIL (read through its own key entry).
    detached: bool,
}

/// Whose frames a sample of this thread may carry: its own thread state or none (module docs).
/// `holder` is `_PyThreadState_UncheckedGet()`, `mine` is `PyGILState_GetThisThreadState()`.
fn whose(py: &Python, holder: usize, mine: usize) -> Option<Read> {
    decide(holder, mine, py.finalizing(), py.layout.version >= (3, 12))
}

/// [`whose`], given the finalizing field and whether `holder` is this thread's attached state
/// (3.12+) rather than the GIL holder's (up to 3.11).
fn decide(holder: usize, mine: usize, finalizing: usize, holder_is_own: bool) -> Option<Read> {
    if !plausible(mine) {
        // No thread state of its own: a thread Python never ran on. Native frames only; no
        // other thread's state is looked at.
        return None;
    }
    if finalizing != 0 {
        // Other threads' states may be freed now (and this one's near the end): only the
        // finalizing thread, only while it holds the GIL, as before.
        return (holder == mine && mine == finalizing).then_some(Read {
            tstate: mine,
            detached: false,
        });
    }
    if holder == mine {
        return Some(Read {
            tstate: mine,
            detached: false,
        });
    }
    if holder_is_own && holder != 0 {
        // 3.12+: attached with another state than its own entry (one it swapped in): as before.
        return None;
    }
    Some(Read {
        tstate: mine,
        detached: true,
    })
}

/// True for what can be a pointer to an object of the interpreter: non-null, out of the first
/// page and 8-byte aligned (what every allocator CPython uses returns).
fn plausible(p: usize) -> bool {
    p >= 4096 && p & 7 == 0
}

/// A code object of this interpreter: plausible and of type `PyCode_Type`.
///
/// # Safety
/// `code`, when plausible, is readable for a `PyObject` header: a frame's code reference.
unsafe fn is_code(py: &Python, code: usize) -> bool {
    // SAFETY: per the contract.
    plausible(code) && unsafe { word(code + py.layout.object_type) } == py.code_type
}

impl Python {
    /// `_PyRuntime._finalizing` (3.8: `finalizing`): the finalizing thread's state, 0 before.
    fn finalizing(&self) -> usize {
        // SAFETY: a pointer-sized field of the static `_PyRuntime`, written atomically by CPython.
        let f = unsafe {
            (self.runtime as *const AtomicUsize).byte_add(self.layout.runtime_finalizing)
        };
        // SAFETY: as above.
        unsafe { &*f }.load(Ordering::Acquire)
    }
}

/// True (once) when the interpreter has started finalizing: a field of `_PyRuntime` set by
/// Py_FinalizeEx before it frees what module globals hold.
pub fn finalizing_started() -> bool {
    let Some(py) = PYTHON.get() else { return false };
    // Relaxed: a one-shot flag; a duplicate marker is harmless, the writer keeps the first.
    if FINALIZING_SEEN.load(Ordering::Relaxed) {
        return false;
    }
    if py.finalizing() == 0 {
        return false;
    }
    !FINALIZING_SEEN.swap(true, Ordering::Relaxed)
}

/// In a forked child: the finalization marker belongs to the child's own capture.
pub fn after_fork_child() {
    FINALIZING_SEEN.store(false, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who is read, for each combination the getters can give: never a thread state but the
    /// thread's own, none for a thread without one, and after finalization began only the
    /// finalizing thread's while it holds the GIL.
    #[test]
    fn a_sample_reads_only_its_own_thread_state() {
        let (a, b, fin) = (
            0x7f00_0000_1000usize,
            0x7f00_0000_2000usize,
            0x7f00_0000_3000usize,
        );
        let held = Some(Read {
            tstate: a,
            detached: false,
        });
        let detached = Some(Read {
            tstate: a,
            detached: true,
        });
        for own in [false, true] {
            // No key entry: native frames only, whoever holds the GIL.
            assert_eq!(decide(b, 0, 0, own), None);
            assert_eq!(decide(0, 0, 0, own), None);
            // Holding the GIL, or released it.
            assert_eq!(decide(a, a, 0, own), held);
            assert_eq!(decide(0, a, 0, own), detached);
            // Finalizing: only the finalizing thread, holding the GIL.
            assert_eq!(decide(a, a, fin, own), None);
            assert_eq!(decide(0, a, fin, own), None);
            assert_eq!(decide(fin, a, fin, own), None);
            assert_eq!(
                decide(fin, fin, fin, own),
                Some(Read {
                    tstate: fin,
                    detached: false
                })
            );
            assert_eq!(decide(0, fin, fin, own), None);
            // An implausible entry is not followed.
            assert_eq!(decide(0, 0x7f00_0000_1004, 0, own), None);
        }
        // Up to 3.11 another thread holds the GIL while this one runs C code; from 3.12 on a
        // different attached state is one this thread swapped in: as before, not read.
        assert_eq!(decide(b, a, 0, false), detached);
        assert_eq!(decide(b, a, 0, true), None);
    }
}
