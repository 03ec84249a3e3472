//! Forwarding signals to the child, and leaving with the child's signal.
//!
//! SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to `memshim run` are passed on to
//! the child. A SIGINT/SIGQUIT/SIGHUP the kernel sent (a terminal's Ctrl-C, Ctrl-\, hangup) went
//! to the whole foreground process group, child included, so it is not sent a second time.

use std::sync::atomic::{AtomicI32, Ordering};

pub const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The child's pid once it runs; 0 before.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid <= 0 {
        return;
    }
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t for the duration of the call.
    let code = unsafe { (*info).si_code };
    let from_terminal = code > 0 && matches!(sig, libc::SIGINT | libc::SIGQUIT | libc::SIGHUP);
    if !from_terminal {
        // SAFETY: kill is async-signal-safe; pid is our child's.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Installs the forwarding handlers (before the child is spawned, so none is lost; the child's
/// exec resets them to the default).
pub fn install() {
    for sig in FORWARDED {
        // SAFETY: a zeroed sigaction is valid; the handler only reads an atomic and calls kill.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// From now on signals go to `pid`.
pub fn set_child(pid: u32) {
    CHILD.store(pid as i32, Ordering::Relaxed);
}

/// Ends memshim the way the child ended: killed by `sig` (without a second core dump). Falls back
/// to exit code 128 + sig if the signal does not kill.
pub fn die_like(sig: i32) -> ! {
    // SAFETY: plain libc calls on our own process.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}
