//! The process's life as the shim sees it: the constructor that decides the recording mode, the
//! end of the capture at exit (after every library's destructor), and the fork handlers.

use core::sync::atomic::{AtomicBool, Ordering};

use super::{alloc, program_threads};
use crate::sampling::thread;
use crate::stacks::{python, unwind};
use crate::sys::{modules, real, region, underlying};
use crate::transport::arena;
use crate::writer::thread as writer_thread;
use crate::{config, recorder, state};

/// Runs before `main` (after the loader has already been calling our malloc for a while, which is
/// why the hooks work with zero initialisation).
#[cfg_attr(test, allow(dead_code))]
pub extern "C" fn init() {
    let t = thread::current();
    t.set_busy(1);
    t.raise(thread::FLAG_SETUP);
    state::set_capture_start_ns(real::now_ns());
    recorder::note_init_pid();
    real::resolve();
    program_threads::hook_pthread_exit();
    let cfg = config::init();
    real::set_glibc_floor(cfg.glibc_floor);
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
    state::decide(mode, cfg.paused);
    t.set_countdown(0);
    t.lower(thread::FLAG_SETUP);
    t.set_busy(0);
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
pub extern "C" fn fini() {
    extern "C" {
        fn __cxa_atexit(
            f: extern "C" fn(*mut core::ffi::c_void),
            arg: *mut core::ffi::c_void,
            dso: *mut core::ffi::c_void,
        ) -> core::ffi::c_int;
    }
    static DEFERRED: AtomicBool = AtomicBool::new(false);
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
    state::after_fork_child(real::now_ns());
    alloc::after_fork_child();
    unwind::after_fork_child();
    python::after_fork_child();
    recorder::after_fork_child();
}

// ---- exits, execs, threads, credentials, namespaces ----

/// `_exit` and `_Exit`: the capture is finished first.
pub fn exit_now(status: libc::c_int) -> ! {
    recorder::finish(memshim_format::EndKind::QuickExit);
    real::exit_group(status)
}

/// glibc's quick_exit runs the at_quick_exit handlers, then its internal `_exit`, which is not
/// ours: the capture is finished first.
///
/// # Safety
/// As for C `quick_exit`.
pub unsafe fn quick_exit(status: libc::c_int) -> ! {
    recorder::finish(memshim_format::EndKind::QuickExit);
    // SAFETY: forwarding.
    unsafe { real::quick_exit(status) }
}

/// # Safety
/// As for C `execve`.
pub unsafe fn execve(
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> libc::c_int {
    // SAFETY: forwarding to the system call; it returns only on failure, with errno set.
    recorder::exec(|| unsafe { libc::syscall(libc::SYS_execve, path, argv, envp) as libc::c_int })
}

/// # Safety
/// As for C `execv`.
pub unsafe fn execv(path: *const libc::c_char, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: forwarding; glibc's execv calls its internal execve, not ours.
    recorder::exec(|| unsafe { real::execv(path, argv) })
}

/// # Safety
/// As for C `execvp`.
pub unsafe fn execvp(file: *const libc::c_char, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: forwarding.
    recorder::exec(|| unsafe { real::execvp(file, argv) })
}

/// # Safety
/// As for C `execvpe`.
pub unsafe fn execvpe(
    file: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> libc::c_int {
    // SAFETY: forwarding.
    recorder::exec(|| unsafe { real::execvpe(file, argv, envp) })
}

/// # Safety
/// As for C `unshare`.
pub unsafe fn unshare(flags: libc::c_int) -> libc::c_int {
    // SAFETY: forwarding to the system call (it sets errno on failure).
    let call = || unsafe { libc::syscall(libc::SYS_unshare, flags) as libc::c_int };
    if writer_thread::needs_one_thread(flags) {
        writer_thread::single_threaded(call)
    } else {
        call()
    }
}

/// # Safety
/// As for C `setns`.
pub unsafe fn setns(fd: libc::c_int, nstype: libc::c_int) -> libc::c_int {
    // SAFETY: forwarding to the system call (it sets errno on failure).
    let call = || unsafe { libc::syscall(libc::SYS_setns, fd, nstype) as libc::c_int };
    if writer_thread::setns_needs_one_thread(fd, nstype) {
        writer_thread::single_threaded(call)
    } else {
        call()
    }
}

/// Before a setuid-family call: glibc makes every thread change credentials with its internal
/// signal 33, whose handler the shim keeps aside while the program has no thread (see
/// sys/setxid.rs); it is put back first.
pub fn before_setxid() {
    crate::sys::setxid::restore_glibc();
}
