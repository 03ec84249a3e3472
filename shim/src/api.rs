//! The entry points a program calls (Python's `memshim` package finds them with
//! `ctypes.CDLL(None)` when the shim is preloaded). Declared in C as:
//!
//! ```c
//! int memshim_mark(const char *label);  /* 1: recorded, 0: not (no capture, ring full) */
//! int memshim_active(void);             /* 1: the shim records this process */
//! int memshim_snapshot(void);           /* 0: taken; -1: this shim has no snapshot mode */
//! ```
//!
//! Each is safe to call from any thread at any time, never blocks (except a mark in `all`
//! mode, which waits for a full ring as that mode's allocations do) and never unwinds.

use core::ffi::{c_char, c_int};

use memshim_format::MARK_LABEL_MAX;

/// Writes a marker labelled `label` (its first 56 bytes: [`MARK_LABEL_MAX`]) into this
/// process's capture, with the time and the calling thread. Returns 1 when it was recorded.
///
/// # Safety
/// `label` is null (an empty label) or points at a NUL-terminated string, or at least at
/// [`MARK_LABEL_MAX`] readable bytes.
#[no_mangle]
pub unsafe extern "C" fn memshim_mark(label: *const c_char) -> c_int {
    let bytes: &[u8] = if label.is_null() {
        &[]
    } else {
        // SAFETY: the caller promises a string readable up to its NUL or MARK_LABEL_MAX bytes;
        // strnlen reads no further than either.
        let len = unsafe { libc::strnlen(label, MARK_LABEL_MAX) };
        // SAFETY: `len` bytes at `label` were just read by strnlen.
        unsafe { core::slice::from_raw_parts(label as *const u8, len) }
    };
    crate::marks::send(bytes) as c_int
}

/// 1 when the shim is loaded and records this process (sampled or `all` mode), else 0.
#[no_mangle]
pub extern "C" fn memshim_active() -> c_int {
    crate::hooks::recording() as c_int
}

/// Asks for a snapshot of the live heap now. This shim has no snapshot mode yet: -1.
#[no_mangle]
pub extern "C" fn memshim_snapshot() -> c_int {
    -1
}
