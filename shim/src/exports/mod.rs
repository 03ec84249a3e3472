//! Every symbol the shim interposes, and its documented `memshim_*` entry points: one forwarding
//! line each (as mimalloc's alloc-override.c). What each does lives in `hooks`; the fast paths
//! inline into these.
//!
//! The set of names is also the shim's exported interface, limited by `shim/exports.map` (a
//! version script) and checked against this file by a test.
//!
//! # Safety
//! Each function has the contract of the C library function of the same name.

use core::ffi::{c_char, c_int, c_void};

use crate::hooks::{alloc, loader, mapping, process, program_threads};
use crate::sys::real;

/// Defines C symbols that forward to a hook with the same arguments.
macro_rules! forward {
    ($($name:ident($($a:ident: $t:ty),*) -> $r:ty = $to:expr;)*) => {$(
        /// # Safety
        /// As for the C function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $r {
            // SAFETY: the caller keeps the C function's contract, which is the hook's.
            unsafe { $to($($a),*) }
        }
    )*};
}

forward! {
    malloc(size: usize) -> *mut c_void = alloc::malloc;
    free(p: *mut c_void) -> () = alloc::free;
    calloc(n: usize, size: usize) -> *mut c_void = alloc::calloc;
    realloc(p: *mut c_void, size: usize) -> *mut c_void = alloc::realloc;
    reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void = alloc::reallocarray;
    posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int = alloc::posix_memalign;
    aligned_alloc(align: usize, size: usize) -> *mut c_void = alloc::memalign;
    memalign(align: usize, size: usize) -> *mut c_void = alloc::memalign;
    valloc(size: usize) -> *mut c_void = alloc::valloc;
    pvalloc(size: usize) -> *mut c_void = alloc::pvalloc;
    malloc_usable_size(p: *mut c_void) -> usize = alloc::malloc_usable_size;
    mmap(a: *mut c_void, len: usize, prot: c_int, fl: c_int, fd: c_int, off: libc::off_t) -> *mut c_void = mapping::mmap;
    mmap64(a: *mut c_void, len: usize, prot: c_int, fl: c_int, fd: c_int, off: libc::off64_t) -> *mut c_void = mapping::mmap;
    munmap(addr: *mut c_void, len: usize) -> c_int = mapping::munmap;
    mremap(old: *mut c_void, old_len: usize, new_len: usize, fl: c_int, new: *mut c_void) -> *mut c_void = mapping::mremap;
    execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int = process::execve;
    execv(path: *const c_char, argv: *const *const c_char) -> c_int = process::execv;
    execvp(file: *const c_char, argv: *const *const c_char) -> c_int = process::execvp;
    execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int = process::execvpe;
    pthread_create(out: *mut libc::pthread_t, attr: *const libc::pthread_attr_t, f: extern "C" fn(*mut c_void) -> *mut c_void, arg: *mut c_void) -> c_int = program_threads::create;
    unshare(flags: c_int) -> c_int = process::unshare;
    setns(fd: c_int, nstype: c_int) -> c_int = process::setns;
    dlclose(handle: *mut c_void) -> c_int = loader::dlclose;
}

/// # Safety
/// As for C `dlopen`.
#[no_mangle]
pub unsafe extern "C" fn dlopen(file: *const c_char, flags: c_int) -> *mut c_void {
    // SAFETY: as for dlopen; the table is this file's own definitions.
    unsafe { loader::dlopen(file, flags, &allocation_family()) }
}

/// The allocation family's names with the shim's definitions, for the GOT entries of
/// `RTLD_DEEPBIND` libraries (hooks/deepbind.rs).
fn allocation_family() -> loader::Ours {
    [
        (c"malloc", malloc as *const () as usize),
        (c"free", free as *const () as usize),
        (c"calloc", calloc as *const () as usize),
        (c"realloc", realloc as *const () as usize),
        (c"reallocarray", reallocarray as *const () as usize),
        (c"posix_memalign", posix_memalign as *const () as usize),
        (c"aligned_alloc", aligned_alloc as *const () as usize),
        (c"memalign", memalign as *const () as usize),
        (c"valloc", valloc as *const () as usize),
        (c"pvalloc", pvalloc as *const () as usize),
        (
            c"malloc_usable_size",
            malloc_usable_size as *const () as usize,
        ),
    ]
}

/// # Safety
/// As for C `_exit`.
#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    process::exit_now(status)
}

/// # Safety
/// As for C `_Exit`.
#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    process::exit_now(status)
}

/// # Safety
/// As for C `quick_exit`.
#[no_mangle]
pub unsafe extern "C" fn quick_exit(status: c_int) -> ! {
    // SAFETY: as for quick_exit.
    unsafe { process::quick_exit(status) }
}

// pthread_exit is defined in C (sys/thread_start.c): the forced unwind it starts must not pass
// a Rust frame (panic = "abort"). It calls program_threads::before_pthread_exit first.

/// The setuid family: glibc's internal signal handler is put back first (hooks/process.rs).
macro_rules! setxid_call {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        /// # Safety
        /// As for the C function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
            process::before_setxid();
            // SAFETY: forwarding to glibc's definition.
            unsafe { real::$name($($arg),*) }
        }
    )*};
}

setxid_call! {
    setuid(uid: libc::uid_t);
    setgid(gid: libc::gid_t);
    seteuid(uid: libc::uid_t);
    setegid(gid: libc::gid_t);
    setreuid(r: libc::uid_t, e: libc::uid_t);
    setregid(r: libc::gid_t, e: libc::gid_t);
    setresuid(r: libc::uid_t, e: libc::uid_t, s: libc::uid_t);
    setresgid(r: libc::gid_t, e: libc::gid_t, s: libc::gid_t);
    setgroups(n: usize, list: *const libc::gid_t);
    initgroups(user: *const c_char, group: libc::gid_t);
}

// ---- memshim_* entry points (documented in the README) ----
//
// A program calls these (Python's `memshim` package finds them with `ctypes.CDLL(None)` when the
// shim is preloaded). Declared in C as:
//
//     int memshim_mark(const char *label);  /* 1: recorded, 0: not (no capture, ring full) */
//     int memshim_active(void);             /* 1: the shim records this process */
//     int memshim_snapshot(void);           /* 0: asked; -1: no capture is being written */
//
// Each is safe to call from any thread at any time, never blocks (except a mark in `all`
// mode, which waits for a full ring as that mode's allocations do) and never unwinds.

/// Writes a marker labelled `label` (its first 56 bytes: `MARK_LABEL_MAX`) into this process's
/// capture, with the time and the calling thread. Returns 1 when it was recorded.
///
/// # Safety
/// `label` is null (an empty label) or points at a NUL-terminated string, or at least at
/// `MARK_LABEL_MAX` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn memshim_mark(label: *const c_char) -> c_int {
    let bytes: &[u8] = if label.is_null() {
        &[]
    } else {
        // SAFETY: the caller promises a string readable up to its NUL or MARK_LABEL_MAX bytes;
        // strnlen reads no further than either.
        let len = unsafe { libc::strnlen(label, memshim_format::MARK_LABEL_MAX) };
        // SAFETY: `len` bytes at `label` were just read by strnlen.
        unsafe { core::slice::from_raw_parts(label as *const u8, len) }
    };
    crate::hooks::marks::send(bytes) as c_int
}

/// 1 when the shim is loaded and records this process (sampled or `all` mode), else 0.
#[no_mangle]
pub extern "C" fn memshim_active() -> c_int {
    crate::state::recording() as c_int
}

/// Asks the writer for a snapshot now (an event capture is flushed): 0, or -1 when no capture
/// is being written.
#[no_mangle]
pub extern "C" fn memshim_snapshot() -> c_int {
    if crate::state::ask_snapshot() {
        0
    } else {
        -1
    }
}

/// How many allocations the shim made for itself on application threads outside its one-time
/// sections (start, exit). Always 0 unless the sampled path allocates: a test checks it.
#[no_mangle]
pub extern "C" fn memshim_debug_reentrant_allocs() -> u64 {
    alloc::reentrant_allocs()
}

/// How many sampled stacks the fast unwinder handed to libgcc (CFI it does not model).
#[no_mangle]
pub extern "C" fn memshim_debug_unwind_fallbacks() -> u64 {
    crate::stacks::unwind::fallbacks()
}

/// In `MEMSHIM_UNWIND=check` mode: how many samples the two unwinders walked differently.
#[no_mangle]
pub extern "C" fn memshim_debug_unwind_mismatches() -> u64 {
    crate::stacks::unwind::mismatches()
}

/// Panics on purpose, with a value whose destructor would print `memshim: unwound` if the panic
/// unwound: the shim is built with `panic = "abort"`, so the process aborts at the panic and the
/// line never appears (a test checks it).
#[no_mangle]
pub extern "C" fn memshim_debug_panic() {
    struct Noisy;
    impl Drop for Noisy {
        fn drop(&mut self) {
            // SAFETY: writing a static buffer to descriptor 2.
            unsafe { libc::write(2, c"memshim: unwound\n".as_ptr().cast(), 17) };
        }
    }
    let _noisy = Noisy;
    panic!("memshim_debug_panic");
}
