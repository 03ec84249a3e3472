//! The loader: after a dlopen the module map goes to the writer (and an `RTLD_DEEPBIND`
//! library's allocation entries are pointed at the shim); after a dlclose that unloaded
//! something, the unwinder forgets what it derived from the old code.

use core::ffi::{c_char, c_int, c_void};

use crate::recorder;
use crate::stacks::unwind;
use crate::sys::{modules, real};

#[cfg(not(test))]
pub use super::deepbind::Ours;
/// (Unit-test builds have no exports to redirect to.)
#[cfg(test)]
pub type Ours = [(&'static core::ffi::CStr, usize); 11];

/// # Safety
/// As for C `dlopen`.
pub unsafe fn dlopen(file: *const c_char, flags: c_int, ours: &Ours) -> *mut c_void {
    // Not from inside a walk of ours (an atfork prepare handler running after ours holds it):
    // the redirection walks the loader's list too, and would wait on itself.
    let deep = cfg!(not(test)) && flags & libc::RTLD_DEEPBIND != 0 && !modules::walk_is_mine();
    #[cfg(not(test))]
    let before = if deep {
        super::deepbind::count_objects()
    } else {
        0
    };
    // SAFETY: forwarding to glibc's dlopen.
    let h = unsafe { real::dlopen(file, flags) };
    if !h.is_null() {
        if deep {
            // SAFETY: `h` is the handle just returned.
            #[cfg(not(test))]
            unsafe {
                super::deepbind::after_dlopen(h, before, ours)
            };
        }
        recorder::after_dlopen();
    }
    let _ = ours;
    h
}

/// # Safety
/// As for C `dlclose`.
pub unsafe fn dlclose(handle: *mut c_void) -> c_int {
    // Not from inside a walk of ours (an atfork prepare handler running after ours holds it):
    // waiting would never end, so then the cache is emptied without asking.
    let mine = modules::walk_is_mine();
    let unloads = (!mine).then(|| modules::signature().1);
    // SAFETY: forwarding to glibc's dlclose.
    let r = unsafe { real::dlclose(handle) };
    // The library's code may be unmapped now, and another one mapped at its addresses later.
    // Only if something was unloaded: most dlcloses just drop a reference, and emptying the
    // cache makes the next samples derive every rule again.
    if mine || unloads != Some(modules::signature().1) {
        unwind::invalidate();
    }
    r
}
