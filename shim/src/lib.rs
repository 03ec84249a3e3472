//! # libmemshim.so: the capture engine
//!
//! Loaded with `LD_PRELOAD`, it interposes the allocation family (malloc, free, calloc, realloc,
//! reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size),
//! anonymous mmap/munmap/mremap, and `_exit`, in the executable and every library.
//!
//! ## Design
//! - **Sampling** ([`sampler`]): a per-thread Poisson byte countdown (mean `MEMSHIM_RATE`, default
//!   512 KiB). The fast path of an allocation is the countdown in initial-exec TLS ([`thread`]);
//!   crossing it takes the cold slow path ([`hooks`]).
//! - **The region** ([`region`]): sampled allocations are served from address space the shim
//!   reserves at a fixed address, so `free` knows a sampled pointer by a range check on
//!   constants and an unsampled free touches no shared memory. The slot header keeps the sample's
//!   size and stack, which also makes the region the table of live samples for a forked child.
//! - **Stacks** ([`unwind`]): DWARF CFI turned into compact per-address rules, cached lock-free
//!   (libgcc for what they cannot express), raw return addresses; symbolized offline by the CLI with the module map ([`modules`]) the writer records.
//! - **Recording** ([`ring`], [`recorder`], [`writer`]): application threads push fixed-size events
//!   into a lock-free ring and never wait; a full ring drops and counts. One writer thread, started
//!   on the first event (never in the constructor), interns stacks and appends checksummed chunks
//!   to the capture (format: the `memshim-format` crate) at least every 80 ms and on every exit.
//! - **Processes**: a forked child gets its own file, ring, writer and reseeded sampler, and
//!   reports the live samples it inherited. `_exit` and normal exit flush the capture; a signal
//!   death leaves it readable up to the last flush (the shim installs no signal handler: the
//!   program's dispositions are its own).
//! - **Safety**: the hooks never allocate, lock or block on their fast paths, every recursive call
//!   from inside the shim is forwarded untouched ([`thread::Busy`]), and a bad setting or an
//!   unwritable output prints one `memshim:` line and leaves the host running untraced.

pub mod api;
pub mod arena;
pub mod capture_file;
pub mod config;
#[cfg(not(test))]
mod deepbind;
// Unit-test builds of this crate are ordinary executables: they must not replace their own malloc.
pub mod elf;
#[cfg(not(test))]
pub(crate) mod exports;
pub mod fdtable;
pub mod hooks;
pub mod marks;
pub mod modules;
pub mod procinfo;
pub mod program_threads;
pub mod python;
pub mod real;
pub mod recorder;
pub mod region;
pub mod ring;
pub mod sampler;
pub mod setxid;
pub mod stack_table;
pub mod thread;
pub mod underlying;
pub mod unwind;
pub mod writer;
pub mod writer_thread;

use core::sync::atomic::Ordering;

/// Runs before `main` (after the loader has already been calling our malloc for a while, which is
/// why the hooks work with zero initialisation).
#[cfg_attr(test, allow(dead_code))]
extern "C" fn init() {
    let t = thread::current();
    t.busy = 1;
    t.flags |= thread::FLAG_SETUP;
    recorder::START_MONO.store(real::now_ns(), Ordering::Relaxed);
    recorder::note_init_pid();
    real::resolve();
    let cfg = config::init();
    let mut mode = cfg.mode;
    if underlying::warn_if_shadowed() {
        // The program's allocations never reach us; what does (another allocator's own
        // mappings, made under its locks) is not worth the risk of calling into it.
        mode = config::Mode::Off;
    }
    unwind::init(cfg.unwind);
    python::detect(cfg.python);
    if matches!(mode, config::Mode::Sampled(_)) && !region::reserve() {
        real::warn("cannot reserve address space for sampled allocations; running untraced");
        mode = config::Mode::Off;
    }
    // SAFETY: both handlers are plain functions: the prepare one may wait (bounded) for our own
    // writer thread, the child one runs single-threaded.
    unsafe { libc::pthread_atfork(Some(before_fork), Some(fork_parent), Some(fork_child)) };
    hooks::enable(mode);
    t.countdown = 0;
    t.flags &= !thread::FLAG_SETUP;
    t.busy = 0;
}

/// Runs at normal exit (return from main, `exit`, from any thread), after the program's own
/// atexit handlers, and ends the capture after every library's destructor.
///
/// glibc runs destructors in dependency order, and the preloaded shim depends on nothing, so ours
/// runs before those of the libraries loaded after it (libpython, extensions, OpenBLAS), which
/// free memory: ended here, the capture would count what they free as leaked. An exit handler
/// registered while exit runs its handlers (the loader's destructor pass is one of them) is run
/// after it (glibc's loop starts over for it): the capture ends there. If it cannot be
/// registered, the capture ends here.
#[cfg_attr(test, allow(dead_code))]
extern "C" fn fini() {
    extern "C" {
        fn __cxa_atexit(
            f: extern "C" fn(*mut core::ffi::c_void),
            arg: *mut core::ffi::c_void,
            dso: *mut core::ffi::c_void,
        ) -> core::ffi::c_int;
    }
    static DEFERRED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    // Relaxed: only the exiting thread runs destructors.
    if !DEFERRED.swap(true, Ordering::Relaxed)
        // SAFETY: a plain function with no DSO handle (the shim is never unloaded).
        && unsafe { __cxa_atexit(end_after_destructors, core::ptr::null_mut(), core::ptr::null_mut()) } == 0
    {
        return;
    }
    recorder::finish(memshim_format::EndKind::Exit);
}

/// The exit handler [`fini`] registers: runs after every library's destructor.
#[cfg_attr(test, allow(dead_code))]
extern "C" fn end_after_destructors(_: *mut core::ffi::c_void) {
    recorder::finish(memshim_format::EndKind::Exit);
}

#[cfg_attr(test, allow(dead_code))]
extern "C" fn before_fork() {
    writer_thread::before_fork();
    modules::before_fork();
}

#[cfg_attr(test, allow(dead_code))]
extern "C" fn fork_parent() {
    modules::after_fork();
}

#[cfg_attr(test, allow(dead_code))]
extern "C" fn fork_child() {
    modules::after_fork_child();
    arena::after_fork_child();
    program_threads::after_fork_child();
    sampler::FORK_GEN.fetch_add(1, Ordering::Relaxed);
    hooks::after_fork_child();
    unwind::after_fork_child();
    python::after_fork_child();
    recorder::after_fork_child();
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

#[cfg(not(test))]
#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = fini;
