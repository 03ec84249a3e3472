//! The writer thread's life: spawned on the first sample, drains the ring until the capture
//! ends, finishes it when an exit path asks, ends the process when the program's last thread
//! left through `pthread_exit`, and steps aside while the process forks (CPython 3.12+) or makes
//! a call that needs a single-threaded process (`unshare`, `setns`).
//!
//! It is the only thread that touches the capture file: it keeps it in a descriptor table of its
//! own (fdtable.rs). Exit paths on application threads post a request ([`finish_and_wait`]) and
//! wait for it, bounded; a stepped-aside writer is spawned again to serve it.
//!
//! glibc ends a process when its count of threads reaches zero, and a thread made with
//! `pthread_create` (ours) is counted: when the main thread leaves through `pthread_exit` and
//! the program's other threads end, our writer would keep the process alive, and, blocking every
//! signal, leave SIGTERM undeliverable. So at each tick the writer looks whether it is the only
//! thread left ([`procinfo::only_thread_left`], a read of /proc/self/stat while the main thread
//! lives) and then calls `exit(0)`, as glibc's last thread does: atexit handlers run, and our
//! destructor finishes the capture.
//!
//! CPython 3.12+ counts the process's threads right after `os.fork()` returns in the parent (the
//! 20th field of /proc/self/stat) and prints a DeprecationWarning when there is more than one: our
//! writer alone would make a single-threaded service print it at every fork. So the atfork
//! prepare handler asks the writer to stop (flushed, not finished) and joins it, bounded; the
//! thread is spawned again by the first event at least [`RESUME_DELAY_NS`] after the fork, when
//! the interpreter's check is long done. Events of that gap wait in the ring. Elsewhere the
//! writer runs through forks (nothing counts it, and a gap would only delay the flushes).

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use memshim_format::EndKind;

use super::current::with_writer;
use super::{capture_file, fdtable};
use crate::sampling::thread;
use crate::stacks::python;
use crate::state;
use crate::sys::{procinfo, real};

const RUN: u32 = 0;
/// The forking thread asks the writer to stop.
const STOP_ASKED: u32 = 1;
/// The writer agreed and is leaving: whoever asked must join it.
const STOPPING: u32 = 2;

/// What the forking thread asks of the writer (RUN, STOP_ASKED, STOPPING).
static CONTROL: AtomicU32 = AtomicU32::new(RUN);
/// What the writer writes each time it sleeps, on a cache line of its own: producers read
/// their own flags (RESUME_AT, the recording phase) on every event, and a line the writer
/// keeps writing would make each of those reads a miss.
#[repr(C, align(64))]
struct Sleep {
    /// The futex the writer sleeps on between rounds: bumped by whoever wakes it (a stop
    /// request, a producer finding the ring half full), so a wake that comes just before the
    /// sleep still counts.
    wake: AtomicU32,
    /// Set while the writer sleeps (or is about to): the one producer that clears it wakes the
    /// writer.
    sleeping: AtomicBool,
}

static SLEEP: Sleep = Sleep {
    wake: AtomicU32::new(0),
    sleeping: AtomicBool::new(false),
};
/// The running writer thread (0: none).
static THREAD: AtomicU64 = AtomicU64::new(0);
/// Its kernel thread id (0: none), to tell it from the program's threads in /proc.
static WRITER_TID: AtomicU32 = AtomicU32::new(0);
/// While the writer is stopped for a fork: when an event may spawn it again (0: not stopped).
static RESUME_AT: AtomicU64 = AtomicU64::new(0);
/// An exit path's request: the End record to write (see [`encode`]), 0 for none.
static REQUEST: AtomicU64 = AtomicU64::new(0);
/// Bumped by the writer each time it has served a request (a futex the requester waits on).
static SERVED: AtomicU32 = AtomicU32::new(0);
/// How long an exit path waits for the writer to finish the capture. Far more than it takes
/// (draining a full `all`-mode ring and compressing it: a few hundred ms); a writer stuck behind
/// a lock the exiting thread holds (an `_exit` from a signal handler that interrupted malloc)
/// costs the process this much at exit, once.
const FINISH_WAIT_NS: u64 = 3_000_000_000;

fn encode(how: EndKind) -> u64 {
    match how {
        EndKind::Exit => 1,
        EndKind::QuickExit => 2,
        EndKind::Exec => 3,
        EndKind::Signal(s) => 4 | (s as u32 as u64) << 8,
    }
}

fn decode(v: u64) -> Option<EndKind> {
    Some(match v & 0xff {
        1 => EndKind::Exit,
        2 => EndKind::QuickExit,
        3 => EndKind::Exec,
        4 => EndKind::Signal((v >> 8) as u32 as i32),
        _ => return None,
    })
}

/// How long after a fork the writer stays away.
const RESUME_DELAY_NS: u64 = 20_000_000;
/// How long a fork waits for the writer to stop before going ahead with it running.
const STOP_WAIT_NS: u64 = 100_000_000;

/// The writer thread's stack.
const WRITER_STACK: usize = 2 << 20;

/// Starts the writer with every signal blocked, so the host's signals never land on our thread.
/// False when no thread could be made.
pub fn spawn() -> bool {
    // SAFETY: plain libc calls on valid, local out-parameters; the old mask is restored.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut tid: libc::pthread_t = 0;
        // glibc's, not ours (exports.rs): the writer is not one of the program's threads.
        let program_setxid = crate::sys::setxid::before_writer();
        // A 2 MiB stack instead of RLIMIT_STACK's (8 MiB here): the writer's deepest call
        // (a zstd block) needs far less, and its address space counts against RLIMIT_AS.
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        let have_attr = libc::pthread_attr_init(&mut attr) == 0
            && libc::pthread_attr_setstacksize(&mut attr, WRITER_STACK) == 0;
        let attr_ptr = if have_attr {
            &attr as *const libc::pthread_attr_t
        } else {
            core::ptr::null()
        };
        let rc = real::pthread_create(&mut tid, attr_ptr, run, core::ptr::null_mut());
        if have_attr {
            libc::pthread_attr_destroy(&mut attr);
        }
        crate::sys::setxid::after_writer(program_setxid);
        if rc == 0 {
            // Relaxed: read by the fork handler of this process only, after the spawn returned.
            THREAD.store(tid as u64, Ordering::Relaxed);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        rc == 0
    }
}

extern "C" fn run(_: *mut c_void) -> *mut c_void {
    let t = thread::current();
    t.set_busy(1);
    t.raise(thread::FLAG_WRITER);
    capture_file::new_writer();
    // Relaxed: read by program threads that end, to leave us out of their count.
    WRITER_TID.store(t.tid(), Ordering::Relaxed);
    let table = fdtable::isolate();
    // SAFETY: PR_SET_NAME reads a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"memshim-writer".as_ptr()) };
    // Opened (or, for a writer after a step aside, reopened) before the copies of the program's
    // 0-2 go: a wrong MEMSHIM_OUTPUT is the one warning the program's stderr gets.
    let open = with_writer(|_| {});
    fdtable::seal(table);
    let (mut last_consumed, mut last_round) = (0u64, real::now_ns());
    let mut last_look = last_round;
    // While an exit path that claimed the capture is about to post its request.
    let mut finishing_since = 0;
    if !open {
        leave_for_good();
        return core::ptr::null_mut();
    }
    loop {
        // Acquire: pairs with finish_and_wait's store, so the exit path's state is ours.
        if let Some(how) = decode(REQUEST.swap(0, Ordering::Acquire)) {
            with_writer(|w| w.finish(how));
            // Release: the requester sees the capture finished.
            SERVED.fetch_add(1, Ordering::Release);
            futex_wake_all(&SERVED);
            if how == EndKind::Exec {
                continue; // the exec may fail, and recording then goes on
            }
            // The process is ending (the exit path that asked goes on to exit_group). Never
            // return into glibc's thread exit: a writer spawned by an exit path after the
            // program's last thread left (pthread_exit) would bring glibc's count of threads to
            // zero, and glibc would run exit(0) here, racing the exit under way.
            park_forever();
        }
        if state::finishing() {
            let now = real::now_ns();
            if finishing_since == 0 {
                finishing_since = now;
            } else if now - finishing_since > FINISH_WAIT_NS {
                break;
            }
            sleep_unless_asked(1000);
            continue;
        }
        if !state::running() {
            break;
        }
        let (mut progress, mut flush_in) = ((0, 0), 0);
        // Checked under the writer's lock: an exec hook sets it before taking the lock to end
        // the capture, after which nothing more may be written (see the recorder's before_exec).
        if !with_writer(|w| {
            if !state::exec_pending() {
                w.step();
            }
            progress = w.ring_progress();
            flush_in = w.flush_due_in_us();
        }) {
            break;
        }
        // AcqRel: the forking thread joins us once it sees STOPPING.
        if CONTROL
            .compare_exchange(STOP_ASKED, STOPPING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            with_writer(|w| w.flush_now());
            // Close our private table's files now, not in the kernel's thread exit: the thread
            // that asked waits until this thread is gone from /proc (step_aside).
            if table == fdtable::Table::Private {
                // SAFETY: closes every descriptor of this thread's private table only.
                unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
            }
            return core::ptr::null_mut(); // joined by the thread that asked
        }
        let now = real::now_ns();
        if now - last_look >= super::FLUSH_NS {
            last_look = now;
            if procinfo::only_thread_left() {
                // The program's last thread is gone: end the process as glibc would have.
                // SAFETY: exit runs the atexit handlers and destructors (ours finishes the
                // capture on this thread) and never returns.
                unsafe { libc::exit(0) };
            }
        }
        let (consumed, capacity) = progress;
        // Wake for the next flush on time (ticks stay 80 ms apart), whatever the pace.
        let pause = pause_us(
            consumed.wrapping_sub(last_consumed),
            now.saturating_sub(last_round),
            capacity,
        )
        .min(flush_in.max(MIN_PAUSE_US));
        (last_consumed, last_round) = (consumed, now);
        sleep_unless_asked(pause);
    }
    leave_for_good();
    core::ptr::null_mut()
}

/// The writer leaves for good (capture finished or disabled): nobody will join it.
fn leave_for_good() {
    // SAFETY: detaching the calling thread.
    unsafe { libc::pthread_detach(libc::pthread_self()) };
    // Relaxed: only this process's fork handler reads it.
    THREAD.store(0, Ordering::Relaxed);
    WRITER_TID.store(0, Ordering::Relaxed);
}

/// Waits for the process to end.
fn park_forever() -> ! {
    let word = AtomicU32::new(0);
    loop {
        // SAFETY: FUTEX_WAIT on a live local u32 that nobody wakes: sleeps until exit_group.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                0u32,
                core::ptr::null::<libc::timespec>(),
            );
        }
    }
}

/// An exit path on an application thread: asks the writer to write the End record `how` and
/// waits until it has (at most [`FINISH_WAIT_NS`]). A writer that stepped aside is spawned
/// again for it.
pub fn finish_and_wait(how: EndKind) {
    // Acquire: the count before our request, so the wait below ends on this request's service.
    let before = SERVED.load(Ordering::Acquire);
    // Release: the writer that takes it sees the state this thread left.
    REQUEST.store(encode(how), Ordering::Release);
    // Relaxed: this process's own handle and schedule.
    if THREAD.load(Ordering::Relaxed) == 0 {
        RESUME_AT.store(0, Ordering::Relaxed);
        if !spawn() {
            return;
        }
    }
    wake();
    let deadline = real::now_ns() + FINISH_WAIT_NS;
    // Acquire: pairs with the writer's Release bump.
    while SERVED.load(Ordering::Acquire) == before {
        let now = real::now_ns();
        if now >= deadline {
            return;
        }
        let ts = real::timespec_us((deadline - now).min(10_000_000) / 1000);
        // SAFETY: FUTEX_WAIT on a live, aligned u32 with a relative timeout; returns at once if
        // SERVED moved since `before`.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                SERVED.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                before,
                &ts as *const libc::timespec,
            );
        }
    }
}

fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live, aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// Longest pause between rounds: until the next flush and tick (every 80 ms), which bound every
/// pause anyway. A wake costs tens of microseconds of CPU on this kind of VM, more than the
/// round's own work when the ring is quiet: capped at 20 ms, as it was, an idle writer cost
/// twice what waking only for the flushes costs (`scripts/bench-malloc --floor`, "without
/// ring"). A burst in between wakes it early (producers nudge at half a ring).
const MAX_PAUSE_US: u64 = super::FLUSH_NS / 1000;
/// Shortest pause: `all` mode fills the ring as fast as the writer can drain it.
const MIN_PAUSE_US: u64 = 100;

/// How long to sleep after a round that found `units` ring units filled over `elapsed_ns`: long
/// enough that the next round finds about a quarter of the ring filled at the same pace, within
/// [MIN_PAUSE_US, MAX_PAUSE_US]. Every wake costs a context switch and refetches the ring's lines
/// from the producers' caches, so a writer that woke every millisecond (as it did) cost more CPU
/// than its work on a busy sampled process; a quarter of the ring leaves room for a burst
/// several times the measured pace before anything is dropped.
fn pause_us(units: u64, elapsed_ns: u64, capacity: u64) -> u64 {
    if units == 0 {
        return MAX_PAUSE_US;
    }
    let quarter = (capacity / 4) as u128;
    let us = quarter * elapsed_ns as u128 / units as u128 / 1000;
    (us as u64).clamp(MIN_PAUSE_US, MAX_PAUSE_US)
}

/// Sleeps up to `us` microseconds; a stop request or a [`nudge`] ends the sleep early.
fn sleep_unless_asked(us: u64) {
    // Acquire: pairs with wake(); read before CONTROL, so a request made after this load either
    // is seen below or changes SLEEP.wake and fails the wait.
    let seen = SLEEP.wake.load(Ordering::Acquire);
    // A producer that finds the ring half full while this is set wakes us. One that looked just
    // before may miss it; the next push that finds the ring half full looks again, and a full
    // ring costs at most this pause's drops (patient `all`-mode producers wait far longer).
    SLEEP.sleeping.store(true, Ordering::SeqCst);
    // Acquire: as for CONTROL; a request posted after this load changes SLEEP.wake (its wake()).
    if CONTROL.load(Ordering::Acquire) == RUN && REQUEST.load(Ordering::Acquire) == 0 {
        let ts = real::timespec_us(us);
        // SAFETY: FUTEX_WAIT on a live, aligned u32 with a relative timeout; it returns at once
        // if SLEEP.wake moved since `seen`, or on a wake, a signal or the timeout. No allocation, no
        // lock.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                SLEEP.wake.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                seen,
                &ts as *const libc::timespec,
            );
        }
    }
    SLEEP.sleeping.store(false, Ordering::Relaxed);
}

/// Called by a producer that found the ring more than half full: wakes the writer if it sleeps.
/// The sleep is paced for the rate the writer last measured; a burst from a quiet start can
/// outrun it (a Python service's first requests dropped thousands of deep-stack samples). At
/// most one producer per sleep makes the system call; the rest read one flag.
#[inline]
pub fn nudge() {
    // Relaxed load first: a shared flag, read-mostly. SeqCst swap: see sleep_unless_asked().
    if SLEEP.sleeping.load(Ordering::Relaxed) && SLEEP.sleeping.swap(false, Ordering::SeqCst) {
        wake();
    }
}

/// The atfork prepare handler's part: in a CPython 3.12+ process, stop the writer (flushed) so
/// the parent has only its own threads when the interpreter counts them after the fork.
pub fn before_fork() {
    // Relaxed: set once in the constructor.
    if python::counts_threads_at_fork() && step_aside() {
        resume_later();
    }
}

/// Around a call that fails in a multi-threaded process (`unshare` of a user namespace, `setns`):
/// the writer steps aside for the call and comes back after it.
pub fn single_threaded<R>(call: impl FnOnce() -> R) -> R {
    let aside = step_aside();
    let r = call();
    if aside {
        // errno is the call's: the scheduling below must not change it (it makes no call that
        // sets errno, but say so where it matters).
        resume_later();
    }
    r
}

/// True for the `unshare` flags the kernel refuses in a multi-threaded process (a user
/// namespace implies CLONE_THREAD; see the kernel's check_unshare_flags).
pub fn needs_one_thread(flags: i32) -> bool {
    flags & (libc::CLONE_NEWUSER | libc::CLONE_THREAD | libc::CLONE_SIGHAND | libc::CLONE_VM) != 0
}

/// True when `setns(fd, nstype)` would be refused in a multi-threaded process: joining a user
/// namespace, or a mount namespace (threads share their filesystem context). `nstype` 0 means
/// "whatever `fd` is": asked of the kernel (NS_GET_NSTYPE); a pidfd names its namespaces in
/// `nstype`.
pub fn setns_needs_one_thread(fd: i32, nstype: i32) -> bool {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let kind = if nstype != 0 {
        nstype
    } else {
        // SAFETY: an ioctl that only reads the descriptor's namespace type; it fails (-1) on
        // anything but a namespace descriptor.
        match unsafe { libc::ioctl(fd, NS_GET_NSTYPE) } {
            -1 => return true, // unknown: step aside, to be safe
            k => k,
        }
    };
    kind & (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0
}

/// Stops the writer (flushed, not finished) and joins it, bounded; true when it stopped. The
/// writer is spawned again by an event after [`resume_later`]'s delay, or by an exit path.
fn step_aside() -> bool {
    // Relaxed: the writer's handle, written by this process's spawner.
    let tid = THREAD.load(Ordering::Relaxed);
    if tid == 0 || !state::running() || thread::current().has(thread::FLAG_WRITER) {
        return false;
    }
    // AcqRel: pairs with the writer's CAS.
    if CONTROL
        .compare_exchange(RUN, STOP_ASKED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    wake();
    let deadline = real::now_ns() + STOP_WAIT_NS;
    loop {
        // Acquire: pairs with the writer's agreement.
        if CONTROL.load(Ordering::Acquire) == STOPPING {
            break;
        }
        if real::now_ns() >= deadline {
            // Withdraw the request; if the writer agreed meanwhile, it is leaving: join it.
            if CONTROL
                .compare_exchange(STOP_ASKED, RUN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return false;
            }
            break;
        }
        real::sleep_us(100);
    }
    let ktid = WRITER_TID.load(Ordering::Relaxed);
    // SAFETY: `tid` is our writer, joinable (it detaches itself only when leaving for good, and
    // it agreed to stop instead); it is returning from its start function now.
    unsafe { libc::pthread_join(tid as libc::pthread_t, core::ptr::null_mut()) };
    // pthread_join returns when the kernel clears the thread's id, before the thread has left
    // the process's task list (CPython 3.12+ counts that list right after fork): wait, bounded,
    // until it has.
    wait_gone(ktid);
    // Relaxed: the handle is this process's; publication order is irrelevant.
    THREAD.store(0, Ordering::Relaxed);
    WRITER_TID.store(0, Ordering::Relaxed);
    CONTROL.store(RUN, Ordering::Release);
    true
}

/// The program's last thread is leaving: the writer steps aside for good (flushed), so that
/// glibc's count of threads reaches zero in that thread, which then runs `exit(0)` (see
/// program_threads.rs). The exit path spawns a writer again to finish the capture.
pub fn leave_for_exit() {
    step_aside();
}

/// Whether a writer thread runs, and its kernel thread id (0 until it has said it).
pub fn writer() -> (bool, u32) {
    // Relaxed: see WRITER_TID; THREAD is this process's own handle.
    if THREAD.load(Ordering::Relaxed) == 0 {
        (false, 0)
    } else {
        (true, WRITER_TID.load(Ordering::Relaxed))
    }
}

/// Waits (at most 20 ms) until kernel thread `tid` is no longer in /proc/self/task.
fn wait_gone(tid: u32) {
    if tid == 0 {
        return;
    }
    let mut path = [0u8; 48];
    let prefix = b"/proc/self/task/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 10];
    let (mut n, mut v) = (0, tid);
    while v > 0 || n == 0 {
        digits[n] = b'0' + (v % 10) as u8;
        v /= 10;
        n += 1;
    }
    for i in 0..n {
        path[prefix.len() + i] = digits[n - 1 - i];
    }
    let deadline = real::now_ns() + 20_000_000;
    // SAFETY: `path` is NUL-terminated (zeroed past the digits); access only asks the kernel.
    while unsafe { libc::access(path.as_ptr().cast(), libc::F_OK) } == 0 {
        if real::now_ns() >= deadline {
            return;
        }
        real::sleep_us(50);
    }
}

/// Lets the next event after [`RESUME_DELAY_NS`] spawn the writer again.
fn resume_later() {
    // Relaxed: a schedule, read by pushes of this process.
    RESUME_AT.store(real::now_ns() + RESUME_DELAY_NS, Ordering::Relaxed);
}

/// Called by every event push: spawns the writer again once a fork's gap has passed.
#[inline]
pub fn resume_if_due() {
    // Relaxed: a schedule; a stale read delays the resume to a later event.
    let at = RESUME_AT.load(Ordering::Relaxed);
    if at == 0 || real::now_ns() < at {
        return;
    }
    // One event wins the respawn.
    if RESUME_AT
        .compare_exchange(at, 0, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        thread::current().setup_section(spawn);
    }
}

/// In a forked child: no writer exists here; the child's first event spawns its own.
pub fn after_fork_child() {
    THREAD.store(0, Ordering::Relaxed);
    WRITER_TID.store(0, Ordering::Relaxed);
    RESUME_AT.store(0, Ordering::Relaxed);
    CONTROL.store(RUN, Ordering::Relaxed);
    SLEEP.sleeping.store(false, Ordering::Relaxed);
    REQUEST.store(0, Ordering::Relaxed);
}

/// Wakes the writer from its pause (a stop request, a half-full ring, an exit path's request).
/// Async-signal-safe: an atomic add and a futex wake.
pub fn wake() {
    // Release: whoever is woken sees what the waker did before.
    SLEEP.wake.fetch_add(1, Ordering::Release);
    // SAFETY: FUTEX_WAKE on a live, aligned u32 wakes at most one waiter (the writer).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            SLEEP.wake.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_fits_a_quarter_ring_at_the_measured_pace() {
        let cap = 1 << 15;
        // Idle: the longest pause.
        assert_eq!(pause_us(0, 5_000_000, cap), MAX_PAUSE_US);
        // 2,048 units in 1 ms: a quarter ring (8,192) takes 4 ms.
        assert_eq!(pause_us(2048, 1_000_000, cap), 4000);
        // A trickle: capped so flushes stay on time.
        assert_eq!(pause_us(10, 10_000_000, cap), MAX_PAUSE_US);
        // A flood (all mode): as short as allowed.
        assert_eq!(pause_us(1 << 20, 1_000_000, cap), MIN_PAUSE_US);
    }
}
