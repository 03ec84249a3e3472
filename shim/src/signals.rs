//! Flushing on crashes. For the signals of a crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT),
//! and only while the program leaves them at SIG_DFL,
//! a handler asks the writer thread to finish the capture, waits for it at most
//! [`FLUSH_WAIT_MS`], then restores the default action and lets the signal take the process
//! down exactly as it would have. The handler itself only touches atomics and makes
//! async-signal-safe calls: the crashing thread may hold any lock, so the work is done by the
//! writer, on its own thread, and a writer that cannot finish in time is not waited for.
//!
//! Signals the program handles itself are left alone (its `sigaction` replaces ours). SIGINT and
//! SIGTERM are never touched: CPython installs KeyboardInterrupt only when it finds SIGINT at
//! SIG_DFL, and servers test SIGTERM's disposition; the periodic flush (80 ms) covers them.
//! `MEMSHIM_SIGNALS=0` turns this off.

use core::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use crate::thread;

const WATCHED: [i32; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];
/// How long a dying process waits for its capture to be written.
pub const FLUSH_WAIT_MS: u32 = 500;

const IDLE: u8 = 0;
const REQUESTED: u8 = 1;
const DONE: u8 = 2;
static FLUSH: AtomicU8 = AtomicU8::new(IDLE);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Installs the handler for each watched signal that is at SIG_DFL (constructor only).
pub fn install() {
    for sig in WATCHED {
        // SAFETY: querying and setting dispositions with valid, zero-initialised structs.
        unsafe {
            let mut old: libc::sigaction = core::mem::zeroed();
            if libc::sigaction(sig, core::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                continue;
            }
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_fatal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, core::ptr::null_mut());
        }
    }
}

/// The writer thread's side: the signal to finish with, when a dying thread asked for it.
pub fn flush_requested() -> Option<i32> {
    // Acquire: pairs with the handler's Release, so SIGNAL is the handler's.
    (FLUSH.load(Ordering::Acquire) == REQUESTED).then(|| SIGNAL.load(Ordering::Relaxed))
}

/// The writer thread's side: the capture is finished.
pub fn flush_done() {
    // Release: the handler may proceed to die.
    FLUSH.store(DONE, Ordering::Release);
}

extern "C" fn on_fatal(sig: i32, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let t = thread::current();
    if t.flags & thread::FLAG_WRITER == 0 && crate::recorder::running() {
        SIGNAL.store(sig, Ordering::Relaxed);
        // Only the first dying thread asks; others just wait with it.
        let _ = FLUSH.compare_exchange(IDLE, REQUESTED, Ordering::Release, Ordering::Relaxed);
        // The writer may be in a pause of up to 80 ms.
        crate::writer_thread::wake();
        for _ in 0..FLUSH_WAIT_MS {
            if FLUSH.load(Ordering::Acquire) == DONE {
                break;
            }
            // The nanosleep system call: async-signal-safe.
            crate::real::sleep_us(1000);
        }
    }
    // SAFETY: restoring the default action and re-raising are async-signal-safe. The signal is
    // blocked while we run, so it is delivered (default action) as soon as the handler returns;
    // a fault re-executes its instruction and faults again under SIG_DFL.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}
