//! Anonymous memory mappings: made by the kernel, recorded like allocations when sampled (the
//! recording itself is `alloc::after_mmap`/`after_munmap`).

use core::ffi::{c_int, c_void};

use super::alloc::{after_mmap, after_munmap};
use crate::sys::real;

/// # Safety
/// As for C `mmap`.
pub unsafe fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    // SAFETY: forwarding to the system call.
    let p = unsafe { real::mmap(addr, len, prot, flags, fd, off) };
    after_mmap(p, len, flags);
    p
}

/// # Safety
/// As for C `munmap`.
pub unsafe fn munmap(addr: *mut c_void, len: usize) -> c_int {
    // SAFETY: forwarding to the system call.
    let rc = unsafe { real::munmap(addr, len) };
    if rc == 0 {
        after_munmap(addr, len);
    }
    rc
}

/// # Safety
/// As for C `mremap` (the optional fifth argument is read when MREMAP_FIXED is set).
pub unsafe fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: c_int,
    new_addr: *mut c_void,
) -> *mut c_void {
    // SAFETY: forwarding to the system call.
    let p = unsafe { real::mremap(old, old_len, new_len, flags, new_addr) };
    if p as isize != -1 {
        after_munmap(old, old_len);
        after_mmap(p, new_len, libc::MAP_ANONYMOUS);
    }
    p
}
