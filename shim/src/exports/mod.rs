//! Every symbol the shim interposes, one short forwarding function each (as mimalloc's
//! alloc-override.c). The fast paths are inline here; everything else lives in hooks.rs.
//!
//! # Safety
//! Each function has the contract of the C library function of the same name.

use core::ffi::{c_int, c_void};

use crate::hooks::alloc::{self as hooks, Kind};
use crate::sampling::thread::{self, FLAG_FREE_FAST};
use crate::sys::real;
use crate::sys::underlying;
use crate::{recorder, sys::region};

/// # Safety
/// As for C `malloc`.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    if thread::fast::take(size as u64) {
        // SAFETY: forwarding.
        return unsafe { underlying::malloc(size) };
    }
    // SAFETY: as for malloc.
    unsafe { hooks::alloc_slow(size, 16, Kind::Malloc) }
}

/// # Safety
/// As for C `free`.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if !region::contains(p) && thread::fast::flags() & FLAG_FREE_FAST != 0 {
        // SAFETY: not a region pointer, so glibc's (or null).
        return unsafe { underlying::free(p) };
    }
    // SAFETY: as for free.
    unsafe { hooks::free_slow(p) }
}

/// # Safety
/// As for C `calloc`.
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        // SAFETY: glibc reports the overflow (NULL, ENOMEM).
        return unsafe { underlying::calloc(n, size) };
    };
    if thread::fast::take(total as u64) {
        // SAFETY: forwarding.
        return unsafe { underlying::calloc(n, size) };
    }
    // SAFETY: as for calloc.
    unsafe { hooks::alloc_slow(total, 16, Kind::Calloc) }
}

/// # Safety
/// As for C `realloc`.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // A positive countdown means this thread is in sampled (or off) mode, where glibc pointers
    // need no bookkeeping; null, zero size and region pointers have their own semantics.
    if !region::contains(p) && !p.is_null() && size != 0 && thread::fast::take(size as u64) {
        // SAFETY: forwarding a glibc pointer.
        return unsafe { underlying::realloc(p, size) };
    }
    // SAFETY: as for realloc.
    unsafe { hooks::realloc_slow(p, size) }
}

/// # Safety
/// As for C `reallocarray`.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: as for realloc.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// # Safety
/// As for C `posix_memalign`.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return libc::EINVAL;
    }
    let errno = get_errno();
    // SAFETY: as for memalign with a valid alignment.
    let p = unsafe { aligned(align, size) };
    if p.is_null() {
        return libc::ENOMEM;
    }
    set_errno(errno); // success must leave errno alone
                      // SAFETY: the caller passes a valid out-pointer.
    unsafe { *out = p };
    0
}

/// # Safety
/// As for C `aligned_alloc`.
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    // SAFETY: glibc's aligned_alloc is memalign.
    unsafe { memalign(align, size) }
}

/// # Safety
/// As for C `memalign`.
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // glibc rounds a non-power-of-two alignment up to the next power of two.
    let a = align.max(1).checked_next_power_of_two().unwrap_or(0);
    if a == 0 {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    // SAFETY: a is a power of two.
    unsafe { aligned(a, size) }
}

/// # Safety
/// As for C `valloc`.
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: page alignment is a power of two.
    unsafe { aligned(page(), size) }
}

/// # Safety
/// As for C `pvalloc`.
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let Some(rounded) = size.max(1).checked_next_multiple_of(page()) else {
        set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    // SAFETY: page alignment is a power of two.
    unsafe { aligned(page(), rounded) }
}

/// # Safety
/// As for C `malloc_usable_size`.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: as for malloc_usable_size.
    unsafe { hooks::usable_size(p) }
}

/// # Safety
/// As for C `mmap`.
#[no_mangle]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    // SAFETY: forwarding to the system call.
    let p = unsafe { real::mmap(addr, len, prot, flags, fd, off) };
    hooks::after_mmap(p, len, flags);
    p
}

/// # Safety
/// As for C `mmap64`.
#[no_mangle]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off64_t,
) -> *mut c_void {
    // SAFETY: as for mmap (off_t is 64-bit on x86_64).
    unsafe { mmap(addr, len, prot, flags, fd, off) }
}

/// # Safety
/// As for C `munmap`.
#[no_mangle]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
    // SAFETY: forwarding to the system call.
    let rc = unsafe { real::munmap(addr, len) };
    if rc == 0 {
        hooks::after_munmap(addr, len);
    }
    rc
}

/// # Safety
/// As for C `mremap` (the optional fifth argument is read when MREMAP_FIXED is set).
#[no_mangle]
pub unsafe extern "C" fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    // SAFETY: forwarding to the system call.
    let p = unsafe { real::mremap(old, old_len, new_len, flags, new_addr) };
    if p as isize != -1 {
        hooks::after_munmap(old, old_len);
        hooks::after_mmap(p, new_len, libc::MAP_ANONYMOUS);
    }
    p
}

/// # Safety
/// As for C `_exit`.
#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    recorder::finish(memshim_format::EndKind::QuickExit);
    real::exit_group(status)
}

/// glibc's quick_exit runs the at_quick_exit handlers, then its internal `_exit`, which is not
/// ours: the capture is finished first.
///
/// # Safety
/// As for C `quick_exit`.
#[no_mangle]
pub unsafe extern "C" fn quick_exit(status: c_int) -> ! {
    recorder::finish(memshim_format::EndKind::QuickExit);
    // SAFETY: forwarding.
    unsafe { real::quick_exit(status) }
}

/// # Safety
/// As for C `_Exit`.
#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    // SAFETY: as for _exit.
    unsafe { _exit(status) }
}

/// # Safety
/// As for C `execve`.
#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> c_int {
    // SAFETY: forwarding to the system call; it returns only on failure, with errno set.
    recorder::exec(|| unsafe { libc::syscall(libc::SYS_execve, path, argv, envp) as c_int })
}

/// # Safety
/// As for C `execv`.
#[no_mangle]
pub unsafe extern "C" fn execv(
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
) -> c_int {
    // SAFETY: forwarding; glibc's execv calls its internal execve, not ours.
    recorder::exec(|| unsafe { real::execv(path, argv) })
}

/// # Safety
/// As for C `execvp`.
#[no_mangle]
pub unsafe extern "C" fn execvp(
    file: *const libc::c_char,
    argv: *const *const libc::c_char,
) -> c_int {
    // SAFETY: forwarding.
    recorder::exec(|| unsafe { real::execvp(file, argv) })
}

/// # Safety
/// As for C `execvpe`.
#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> c_int {
    // SAFETY: forwarding.
    recorder::exec(|| unsafe { real::execvpe(file, argv, envp) })
}

/// # Safety
/// As for C `pthread_create`.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    out: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    f: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: as for pthread_create.
    unsafe { crate::hooks::program_threads::create(out, attr, f, arg) }
}

/// `C-unwind`: glibc's pthread_exit unwinds the stack (a forced unwind) through this frame,
/// which holds nothing to drop.
///
/// # Safety
/// As for C `pthread_exit`.
#[no_mangle]
pub unsafe extern "C-unwind" fn pthread_exit(value: *mut c_void) -> ! {
    crate::hooks::program_threads::before_pthread_exit();
    // SAFETY: forwarding.
    unsafe { real::pthread_exit(value) }
}

/// The setuid family: glibc makes every thread change credentials with its internal signal 33,
/// whose handler the shim keeps aside while the program has no thread (see setxid.rs); it is
/// put back first.
macro_rules! setxid_call {
    ($name:ident, ($($arg:ident: $ty:ty),*)) => {
        /// # Safety
        /// As for the C function of the same name.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
            crate::sys::setxid::restore_glibc();
            // SAFETY: forwarding to glibc's definition.
            unsafe { real::$name($($arg),*) }
        }
    };
}
setxid_call!(setuid, (uid: libc::uid_t));
setxid_call!(setgid, (gid: libc::gid_t));
setxid_call!(seteuid, (uid: libc::uid_t));
setxid_call!(setegid, (gid: libc::gid_t));
setxid_call!(setreuid, (r: libc::uid_t, e: libc::uid_t));
setxid_call!(setregid, (r: libc::gid_t, e: libc::gid_t));
setxid_call!(setresuid, (r: libc::uid_t, e: libc::uid_t, s: libc::uid_t));
setxid_call!(setresgid, (r: libc::gid_t, e: libc::gid_t, s: libc::gid_t));
setxid_call!(setgroups, (n: usize, list: *const libc::gid_t));
setxid_call!(initgroups, (user: *const libc::c_char, group: libc::gid_t));

/// # Safety
/// As for C `unshare`.
#[no_mangle]
pub unsafe extern "C" fn unshare(flags: c_int) -> c_int {
    // SAFETY: forwarding to the system call (it sets errno on failure).
    let call = || unsafe { libc::syscall(libc::SYS_unshare, flags) as c_int };
    if crate::writer::thread::needs_one_thread(flags) {
        crate::writer::thread::single_threaded(call)
    } else {
        call()
    }
}

/// # Safety
/// As for C `setns`.
#[no_mangle]
pub unsafe extern "C" fn setns(fd: c_int, nstype: c_int) -> c_int {
    // SAFETY: forwarding to the system call (it sets errno on failure).
    let call = || unsafe { libc::syscall(libc::SYS_setns, fd, nstype) as c_int };
    if crate::writer::thread::setns_needs_one_thread(fd, nstype) {
        crate::writer::thread::single_threaded(call)
    } else {
        call()
    }
}

/// # Safety
/// As for C `dlopen`.
#[no_mangle]
pub unsafe extern "C" fn dlopen(file: *const libc::c_char, flags: c_int) -> *mut c_void {
    // Not from inside a walk of ours (an atfork prepare handler running after ours holds it):
    // the redirection walks the loader's list too, and would wait on itself.
    let deep = flags & libc::RTLD_DEEPBIND != 0 && !crate::sys::modules::walk_is_mine();
    let before = if deep {
        crate::hooks::deepbind::count_objects()
    } else {
        0
    };
    // SAFETY: forwarding to glibc's dlopen.
    let h = unsafe { real::dlopen(file, flags) };
    if !h.is_null() {
        if deep {
            // SAFETY: `h` is the handle just returned.
            unsafe { crate::hooks::deepbind::after_dlopen(h, before) };
        }
        recorder::after_dlopen();
    }
    h
}

/// # Safety
/// As for C `dlclose`.
#[no_mangle]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    // Not from inside a walk of ours (an atfork prepare handler running after ours holds it):
    // waiting would never end, so then the cache is emptied without asking.
    let mine = crate::sys::modules::walk_is_mine();
    let unloads = (!mine).then(|| crate::sys::modules::signature().1);
    // SAFETY: forwarding to glibc's dlclose.
    let r = unsafe { real::dlclose(handle) };
    // The library's code may be unmapped now, and another one mapped at its addresses later.
    // Only if something was unloaded: most dlcloses just drop a reference, and emptying the
    // cache makes the next samples derive every rule again.
    if mine || unloads != Some(crate::sys::modules::signature().1) {
        crate::stacks::unwind::invalidate();
    }
    r
}

/// How many allocations the shim made for itself on application threads outside its one-time
/// sections (start, exit). Always 0 unless the sampled path allocates: a test checks it.
#[no_mangle]
pub extern "C" fn memshim_debug_reentrant_allocs() -> u64 {
    hooks::REENTRANT_ALLOCS.load(core::sync::atomic::Ordering::Relaxed)
}

/// How many sampled stacks the fast unwinder handed to libgcc (CFI it does not model).
#[no_mangle]
pub extern "C" fn memshim_debug_unwind_fallbacks() -> u64 {
    crate::stacks::unwind::FALLBACKS.load(core::sync::atomic::Ordering::Relaxed)
}

/// In `MEMSHIM_UNWIND=check` mode: how many samples the two unwinders walked differently.
#[no_mangle]
pub extern "C" fn memshim_debug_unwind_mismatches() -> u64 {
    crate::stacks::unwind::MISMATCHES.load(core::sync::atomic::Ordering::Relaxed)
}

/// Shared body of the aligned allocators.
///
/// # Safety
/// `align` is a power of two.
#[inline(always)]
unsafe fn aligned(align: usize, size: usize) -> *mut c_void {
    let t = thread::current();
    if (size as u64) < t.countdown {
        t.countdown -= size as u64;
        // SAFETY: forwarding with a valid alignment.
        return unsafe { underlying::memalign(align, size) };
    }
    // SAFETY: as for memalign.
    unsafe { hooks::alloc_slow(size, align, Kind::Aligned) }
}

fn page() -> usize {
    4096
}

fn get_errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn set_errno(e: c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e };
}
