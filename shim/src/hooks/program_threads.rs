//! The program's own threads: counted, so the shim knows when the last one is leaving.
//!
//! glibc ends the process when its count of threads reaches zero (`exit(0)` in the last thread
//! to end), and our writer thread is in that count: a program whose main thread leaves through
//! `pthread_exit` would never end. So every thread the program makes with `pthread_create`
//! starts in `memshim_thread_start` (thread_start.c), whose cleanup handler runs however the
//! thread ends, and the main thread's `pthread_exit` is interposed. When the count of the
//! program's threads reaches zero (checked against /proc, for threads made some other way), the
//! writer steps aside for good before the last thread finishes leaving, so glibc's count reaches
//! zero in that thread: it runs `exit(0)` there, with the program's descriptors, its atexit
//! handlers run, and our destructor has a new writer finish the capture.

use core::ffi::c_void;
use core::sync::atomic::{AtomicI64, Ordering};

use crate::transport::event::{Event, EventKind};
use crate::{
    recorder, sampling::thread, sys::procinfo, sys::real, sys::underlying,
    writer::thread as writer_thread,
};

/// The program's threads alive: the main thread, plus those made through our pthread_create
/// that have not ended.
static LIVE: AtomicI64 = AtomicI64::new(1);

type StartFn = extern "C" fn(*mut c_void) -> *mut c_void;

/// Mirrors `struct memshim_start` in thread_start.c.
#[repr(C)]
struct Start {
    f: StartFn,
    arg: *mut c_void,
    release: unsafe extern "C" fn(*mut c_void),
    ended: extern "C" fn(),
}

unsafe extern "C" {
    // SAFETY (of the declaration): thread_start.c defines it with this signature; it may be
    // called with any record `create` made.
    safe fn memshim_thread_start(p: *mut c_void) -> *mut c_void;
}

/// `pthread_create` for the program: its routine runs inside [`memshim_thread_start`].
///
/// # Safety
/// As for pthread_create.
pub unsafe fn create(
    out: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    f: StartFn,
    arg: *mut c_void,
) -> i32 {
    // The program's first thread takes part in setxid broadcasts: glibc's handler back.
    crate::sys::setxid::restore_glibc();
    // SAFETY: a private allocation of the underlying allocator, released by the new thread.
    let start = unsafe { underlying::malloc(core::mem::size_of::<Start>()) } as *mut Start;
    if start.is_null() {
        // SAFETY: forwarding unchanged; the thread then goes uncounted (the /proc check and the
        // writer's own look cover it).
        return unsafe { real::pthread_create(out, attr, f, arg) };
    }
    // SAFETY: `start` is a fresh allocation of the right size and alignment (malloc's).
    unsafe {
        start.write(Start {
            f,
            arg,
            release: release_start,
            ended: program_thread_ended,
        })
    };
    // Relaxed: the count is only compared with zero by threads that end, each after its own
    // increment; the thread made below cannot end before this.
    LIVE.fetch_add(1, Ordering::Relaxed);
    // SAFETY: forwarding with our start routine and its record.
    let rc = unsafe { real::pthread_create(out, attr, memshim_thread_start, start.cast()) };
    if rc != 0 {
        LIVE.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the record was not handed to any thread.
        unsafe { underlying::free(start.cast()) };
    }
    rc
}

/// Called by memshim_thread_start with its record, once copied.
///
/// # Safety
/// `p` is the record `create` allocated.
unsafe extern "C" fn release_start(p: *mut c_void) {
    // SAFETY: allocated by create() with the same allocator.
    unsafe { underlying::free(p) }
}

/// Called by memshim_thread_start's cleanup handler as a program thread ends.
extern "C" fn program_thread_ended() {
    forget_last_stack();
    // AcqRel: the last thread to end sees every other's decrement.
    if LIVE.fetch_sub(1, Ordering::AcqRel) == 1 {
        last_leaving();
    }
}

/// Tells the writer to forget the ending thread's last stack (see `alloc::push_alloc`), so its
/// table of them holds live threads only, however many the process makes over its life.
fn forget_last_stack() {
    let t = thread::current();
    if t.last_len() == 0 {
        return;
    }
    let Some(_busy) = thread::Busy::enter(t) else {
        return;
    };
    t.forget_stack();
    // Dropped (a full ring), the entry stays: one stale entry, never a wrong stack, since a new
    // thread with this id starts with nothing remembered.
    recorder::push(
        Event::new(EventKind::ThreadEnd, t.tid(), real::stamp_ns(), 0, 0),
        &[],
    );
}

unsafe extern "C" {
    // SAFETY (of the declaration): thread_start.c defines it with this signature.
    safe fn memshim_set_before_pthread_exit(f: extern "C" fn());
}

/// Has the interposed `pthread_exit` (thread_start.c) call [`before_pthread_exit`] first.
pub fn hook_pthread_exit() {
    memshim_set_before_pthread_exit(before_pthread_exit);
}

/// Called by the interposed `pthread_exit`: the main thread is leaving (other threads end
/// through their start routine's cleanup handler).
extern "C" fn before_pthread_exit() {
    // SAFETY: gettid has no preconditions.
    let main = unsafe { libc::syscall(libc::SYS_gettid) } == real::getpid() as i64;
    // AcqRel: as in program_thread_ended.
    if main && LIVE.fetch_sub(1, Ordering::AcqRel) == 1 {
        last_leaving();
    }
}

/// The program's last thread is ending (unless /proc shows a thread made some other way).
fn last_leaving() {
    let t = thread::current();
    let Some(_busy) = thread::Busy::enter(t) else {
        return;
    };
    t.setup_section(|| {
        // A writer spawned a moment ago may not have said its id yet: then it is the one other
        // thread allowed.
        let (writer, known) = writer_thread::writer();
        let allowed = usize::from(writer && known == 0);
        if procinfo::other_live_threads(known).is_some_and(|n| n <= allowed) {
            writer_thread::leave_for_exit();
        }
    });
}

/// In a fork child: one thread.
pub fn after_fork_child() {
    LIVE.store(1, Ordering::Relaxed);
}
