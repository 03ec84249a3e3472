//! The general unwinder: `_Unwind_Backtrace` from libgcc_s, for what the compact rules cannot
//! express. libgcc locates FDEs with glibc's lock-free `_dl_find_object`: no lock, no allocation.

use core::ffi::{c_int, c_void};

#[repr(C)]
struct Collect {
    buf: *mut u64,
    cap: usize,
    len: usize,
    /// Frames still to skip: this function's own, and `skip` more.
    skip: usize,
}

extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(*mut c_void, *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
}

const URC_NO_REASON: c_int = 0;
const URC_END_OF_STACK: c_int = 5;

extern "C" fn step(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Collect` that `capture` passed, alive for the whole walk.
    let c = unsafe { &mut *(arg as *mut Collect) };
    // SAFETY: ctx is the unwinder's context for this frame.
    let ip = unsafe { _Unwind_GetIP(ctx) } as u64;
    if ip == 0 || c.len >= c.cap {
        return URC_END_OF_STACK;
    }
    if c.skip > 0 {
        c.skip -= 1;
        return URC_NO_REASON;
    }
    // SAFETY: len < cap, and buf holds cap elements.
    unsafe { *c.buf.add(c.len) = ip };
    c.len += 1;
    URC_NO_REASON
}

/// Fills `out` with return addresses, innermost first, starting `skip` frames above this
/// function's caller. Returns how many were written.
#[inline(never)]
pub fn capture(out: &mut [core::mem::MaybeUninit<u64>], skip: usize) -> usize {
    let mut c = Collect {
        buf: out.as_mut_ptr().cast(),
        cap: out.len(),
        len: 0,
        skip: skip + 1,
    };
    // SAFETY: `step` matches the callback ABI and `c` outlives the call.
    unsafe { _Unwind_Backtrace(step, &mut c as *mut Collect as *mut c_void) };
    c.len
}
