//! Native stacks by DWARF unwinding (`_Unwind_Backtrace` from libgcc_s). CPython and Debian's libc
//! are built without frame pointers, so walking %rbp finds one frame; the unwinder finds them all.
//! libgcc locates FDEs with glibc's lock-free `_dl_find_object`: no lock, no allocation.

use core::ffi::{c_int, c_void};

#[repr(C)]
struct Collect {
    buf: *mut u64,
    cap: usize,
    len: usize,
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
    // SAFETY: len < cap, and buf holds cap elements.
    unsafe { *c.buf.add(c.len) = ip };
    c.len += 1;
    URC_NO_REASON
}

/// Fills `out` with return addresses, innermost first (the first few are the shim's own frames;
/// the CLI strips them by module). Returns how many were written.
#[inline(never)]
pub fn capture(out: &mut [core::mem::MaybeUninit<u64>]) -> usize {
    let mut c = Collect {
        buf: out.as_mut_ptr().cast(),
        cap: out.len(),
        len: 0,
    };
    // SAFETY: `step` matches the callback ABI and `c` outlives the call.
    unsafe { _Unwind_Backtrace(step, &mut c as *mut Collect as *mut c_void) };
    c.len
}

/// Runs the unwinder once so its one-time setup (a `pthread_once`) happens in the constructor and
/// not inside some later malloc.
pub fn warm_up() {
    let mut buf = [core::mem::MaybeUninit::uninit(); 4];
    capture(&mut buf);
}
