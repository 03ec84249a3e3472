//! Keeps glibc's SIGSETXID handler out of sight of a program that has no thread of its own.
//!
//! glibc installs a handler for its internal signal 33 (SIGSETXID, which `setuid` and friends
//! send to every thread so that all change credentials) when a process creates its first
//! thread. Our writer would be that thread, so a single-threaded program would see signal 33
//! caught in /proc/self/status (`SigCgt`) where it is not without the shim. So around the
//! writer's creation, when glibc's own flag says the process is single-threaded, the
//! disposition of signal 33 is saved and put back (raw `rt_sigaction`: glibc's `sigaction`
//! refuses its internal signals), and glibc's handler is kept aside. It is installed again,
//! for good, before anything that needs it: the program's first `pthread_create` (so its threads
//! can take part in a setxid broadcast) and any call of the setuid family (whose broadcast
//! reaches our writer too).

use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

const SIGSETXID: usize = 33;

/// The kernel's `struct sigaction` (x86-64).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct KSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// True while glibc's handler is kept aside (the program sees its own disposition).
static ASIDE: AtomicBool = AtomicBool::new(false);
/// glibc's handler, kept aside.
static GLIBC: Mutex<Option<KSigaction>> = Mutex::new(None);

fn get() -> Option<KSigaction> {
    let mut old = KSigaction::default();
    // SAFETY: rt_sigaction with a null new action only reads the disposition into `old`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            SIGSETXID,
            core::ptr::null::<KSigaction>(),
            &mut old as *mut KSigaction,
            8usize,
        )
    };
    (rc == 0).then_some(old)
}

fn set(act: &KSigaction) {
    // SAFETY: rt_sigaction installs a disposition read from `act`, one that this process had.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            SIGSETXID,
            act as *const KSigaction,
            core::ptr::null_mut::<KSigaction>(),
            8usize,
        )
    };
}

/// glibc's flag (2.32+): true while the process has never created a thread.
fn single_threaded() -> bool {
    // SAFETY: dlsym with a NUL-terminated name; `__libc_single_threaded` is a char.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
    // SAFETY: a non-null result points at glibc's char variable.
    !p.is_null() && unsafe { *(p as *const u8) } != 0
}

/// Before creating the writer: the program's disposition, when glibc is about to install its
/// own on our account.
pub fn before_writer() -> Option<KSigactionSaved> {
    if !single_threaded() {
        return None;
    }
    get().map(KSigactionSaved)
}

/// The program's disposition, saved by [`before_writer`].
pub struct KSigactionSaved(KSigaction);

/// After creating the writer: keeps glibc's handler aside, the program's back.
pub fn after_writer(saved: Option<KSigactionSaved>) {
    let Some(KSigactionSaved(program)) = saved else {
        return;
    };
    let Some(glibc) = get() else { return };
    if glibc.handler == program.handler {
        return;
    }
    if let Ok(mut g) = GLIBC.lock() {
        *g = Some(glibc);
        set(&program);
        ASIDE.store(true, Ordering::Release);
    }
}

/// Puts glibc's handler back for good (the program needs setxid broadcasts to work).
pub fn restore_glibc() {
    // Acquire: pairs with after_writer's store (the kept action is written before).
    if !ASIDE.load(Ordering::Acquire) {
        return;
    }
    if let Ok(mut g) = GLIBC.lock() {
        if let Some(act) = g.take() {
            set(&act);
        }
        ASIDE.store(false, Ordering::Release);
    }
}
