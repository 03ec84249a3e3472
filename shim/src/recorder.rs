//! The recorder: the capture's life across threads. It starts the writer on the first sample,
//! hands events to the ring, finishes the capture on every exit path and before an exec, sends
//! the module map after a dlopen, and starts afresh in a forked child. Its phases (idle,
//! starting, running, finished...) are the recording state's (state.rs), which it moves along.
//!
//! Only writer threads touch the capture file (see writer/fdtable.rs): an exit path on an
//! application thread asks the writer to finish and waits for it, bounded.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memshim_format::EndKind;

use crate::config;
use crate::sampling::thread::{self, Busy};
use crate::state::{self, Phase, Recording};
use crate::sys::{modules, real};
use crate::transport::event::{stack_words, Event, EventKind};
use crate::transport::{arena, ring, ring::Ring};
use crate::writer::{self, thread as writer_thread};

/// The process whose capture this is: a vfork child shares our memory but must not finish it.
static OWNER_PID: AtomicU32 = AtomicU32::new(0);
/// Set by the atfork child handler: the pid of a process that is a real (not v-) fork child.
static FORK_CHILD_PID: AtomicU32 = AtomicU32::new(0);
/// The pid the constructor ran in (the process whose memory this is, unless forked since).
static INIT_PID: AtomicU32 = AtomicU32::new(0);

/// 64-byte units in the ring (an event takes 1 + its frame words / 7: a C stack 2-5, a deep
/// Python stack up to ~30). Sampled: 2 MiB, some 1,000 deep Python events or 10,000 C ones
/// between two turns of the writer; `all` mode produces millions a second: 8 MiB. Untouched
/// units cost no memory.
fn ring_capacity(all: bool) -> usize {
    if all {
        1 << 17
    } else {
        1 << 15
    }
}

/// How long a producer in `all` mode waits for a full ring's writer to make progress before
/// dropping (1 s: compressing a big flush takes tens of ms). That mode promises every
/// allocation, so producers wait for the writer (throttled to its pace, as memray and
/// heaptrack are by their synchronous writes) instead of leaving holes; the sampled default
/// never waits. If the writer ever makes no progress that long (say it waits on a lock a
/// producer holds), nobody waits again.
const ALL_MODE_PATIENCE_NS: u64 = 1_000_000_000;
static PATIENCE_NS: AtomicU64 = AtomicU64::new(0);

/// True for the events that open a capture: a sample this process took, and what is sent just
/// before it (its thread's name, the Python code objects of its stack). A free, a marker or an
/// allocation inherited from a parent does not: a fork child that never samples (every `$(...)`
/// of a shell) leaves no file, and what it inherited is in its parent's capture.
fn opens_capture(ev: &Event) -> bool {
    match EventKind::from_u8(ev.kind) {
        Some(EventKind::Alloc) => !ev.is_inherited(),
        // A mark: the program asked for a capture of this moment.
        Some(EventKind::ThreadName | EventKind::PyCode | EventKind::Mark) => true,
        _ => false,
    }
}

/// Sends one event to the writer; false when it was dropped. Waits only in `all` mode (above).
#[inline(always)]
pub fn push(ev: Event, frames: &[u64]) -> bool {
    // Running is published after the ring (state::publish_running), so a running capture's
    // ring is installed.
    match state::phase() {
        Phase::Running => {}
        Phase::Idle => {
            if !opens_capture(&ev) || state::exec_pending() || !start() {
                return false;
            }
        }
        Phase::Starting => {
            state::count(&state::STARTING_DROPS);
            return false;
        }
        _ => return false,
    }
    let Some(ring) = ring::current() else {
        return false;
    };
    // Relaxed: a setting, and a give-up flag where a stale read costs one more wait.
    let patience = PATIENCE_NS.load(Ordering::Relaxed);
    if cfg!(feature = "floor-no-ring")
        && (ev.kind == EventKind::Alloc as u8 || ev.kind == EventKind::Free as u8)
    {
        return true;
    }
    let pushed = ring.push(ev, frames, patience);
    match pushed {
        None if patience > 0 => {
            // Relaxed: a give-up flag (see the load above).
            PATIENCE_NS.store(0, Ordering::Relaxed);
        }
        Some(true) => writer_thread::nudge(),
        _ => {}
    }
    writer_thread::resume_if_due();
    pushed.is_some()
}

/// Starts recording: maps the ring and starts the writer thread, which opens the capture. Runs
/// once per process, in whichever thread records first, with that thread marked busy. That
/// thread may hold any lock of the C library (malloc is called from inside setlocale, dlopen...),
/// so it does only what needs no such lock: a raw mmap and pthread_create. Opening the file and
/// anything that formats text or walks the loader's lists happens on the writer thread.
#[cold]
fn start() -> bool {
    thread::current().setup_section(start_inner)
}

fn start_inner() -> bool {
    if let Err(phase) = state::begin_start() {
        return phase == Phase::Running;
    }
    let Some(cfg) = config::get() else {
        state::start_abandoned();
        return false;
    };
    let all = state::decided() == Recording::All;
    let ring = Ring::create(ring_capacity(all), stack_words(cfg.depth));
    // Relaxed: read by producers only after the ring is published (Release below).
    PATIENCE_NS.store(
        if all { ALL_MODE_PATIENCE_NS } else { 0 },
        Ordering::Relaxed,
    );
    if ring.is_null() {
        return disable("cannot map the event ring; running untraced");
    }
    writer::current::prepare();
    ring::install(ring);
    // Relaxed: read by this process's exit paths, which run after a sample they made or saw.
    OWNER_PID.store(real::getpid(), Ordering::Relaxed);
    state::publish_running();
    if !writer_thread::spawn() {
        // No writer, no capture (only a writer thread may hold its file).
        state::disable();
        return false;
    }
    true
}

fn disable(why: &str) -> bool {
    real::warn(why);
    state::disable();
    false
}

/// Finishes the capture: drains what is left, writes the End record, flushes. Every exit path
/// calls it; only the first call in the owning process does anything. A process (or fork
/// child) that never sampled has no capture and leaves no file.
pub fn finish(how: EndKind) {
    let pid = real::getpid();
    // Another thread may be starting the capture right now: give it a moment (bounded) rather
    // than lose everything recorded so far. By the clock, not by a count of yields: on a busy
    // machine the starting thread can be off the CPU for a whole time slice (a 2,000-yield wait
    // lost the capture of exit_thread.c about 1 run in 40 under load).
    let deadline = real::now_ns() + 200_000_000;
    while state::phase() == Phase::Starting && real::now_ns() < deadline {
        real::sleep_us(50);
    }
    // Relaxed: stored by the thread that started the capture, which this exit path's thread
    // has synchronised with through the phase (Acquire above).
    if OWNER_PID.load(Ordering::Relaxed) != pid {
        return; // a vfork child: the capture is its parent's
    }
    if state::begin_finish() {
        end_capture(how);
    }
}

/// Has the writer write the End record `how`: directly on a writer thread (its exit path), else
/// by asking the writer thread and waiting for it (bounded).
fn end_capture(how: EndKind) {
    let t = thread::current();
    if t.has(thread::FLAG_WRITER) {
        t.setup_section(|| writer::current::with_writer(|w| w.finish(how)));
    } else {
        t.setup_section(|| writer_thread::finish_and_wait(how));
    }
}

/// The loader's counters (`modules::packed`) with the last map a dlopen sent.
static SENT_MAP: AtomicU64 = AtomicU64::new(0);

/// After a dlopen: the calling thread snapshots the module map itself and hands it to the writer
/// through the ring, so samples taken in the new library are always written after a map that
/// has it, even if it is closed again before the writer looks. Only when the loader's counters
/// moved since the last map sent: a dlopen of a library already loaded (`ctypes.CDLL("libc.so.6")`
/// per request, RTLD_NOLOAD probes) changes nothing, and sending the whole map each time filled
/// the arena (and so lost every later map and Python name) after a few hundred calls.
pub fn after_dlopen() {
    if state::phase() != Phase::Running {
        return;
    }
    // A walk of ours under way in this very thread (a dlopen from an atfork prepare handler
    // that runs after ours): waiting would never end; the writer's next look sends the map.
    if modules::walk_is_mine() {
        return;
    }
    let sig = modules::signature();
    // Acquire: pairs with the Release store below, so the map another thread sent is in the
    // ring before this thread's next sample. (Two threads racing here both send: harmless.)
    if modules::packed(sig) == SENT_MAP.load(Ordering::Acquire) {
        return;
    }
    let t = thread::current();
    let Some(_busy) = Busy::enter(t) else {
        return;
    };
    t.setup_section(|| {
        let (mods, sig) = modules::snapshot();
        let Ok(bytes) = postcard::to_allocvec(&memshim_format::Record::Modules(mods)) else {
            return;
        };
        let Some(reserved) = arena::put(&bytes) else {
            return;
        };
        if let Some(offset) = reserved.offset() {
            // Tagged with the map's signature, so the writer can tell a map it already has.
            let ev = Event::blob(
                EventKind::Modules,
                modules::packed(sig),
                offset,
                bytes.len() as u64,
            );
            // A lost map makes every later sample in the library unreadable, and dlopen is rare
            // and slow: if the ring is full, give the writer a few turns (bounded) to make room.
            for _ in 0..200 {
                if push(ev, &[]) {
                    SENT_MAP.store(ev.t, Ordering::Release);
                    break;
                }
                std::thread::yield_now();
            }
        }
    });
}

/// Records the constructor's pid (see [`owns_this_memory`]).
pub fn note_init_pid() {
    // Relaxed: the constructor runs before any other thread exists.
    INIT_PID.store(real::getpid(), Ordering::Relaxed);
}

/// True in the process whose memory this is: the one the constructor ran in, or a real fork
/// child. A vfork child shares its parent's memory and must change nothing in it.
fn owns_this_memory(pid: u32) -> bool {
    // Relaxed: both are written before any thread of this process could read them.
    pid == INIT_PID.load(Ordering::Relaxed) || pid == FORK_CHILD_PID.load(Ordering::Relaxed)
}

/// Runs an exec call `f` between `before_exec` and, when it returns (it failed),
/// `after_failed_exec`.
pub fn exec(f: impl FnOnce() -> libc::c_int) -> libc::c_int {
    before_exec();
    let r = f();
    after_failed_exec();
    r
}

/// Before `execve` replaces the program: everything so far goes to disk with an End record of
/// kind Exec, and nothing starts or writes until the exec fails (a capture file half-written
/// when the new image replaces us would not decode). If the exec fails, recording goes on and a
/// later exit ends the capture again.
fn before_exec() {
    let pid = real::getpid();
    if !owns_this_memory(pid) {
        return; // a vfork child about to exec: nothing here is its to change
    }
    state::set_exec_pending(true);
    // Relaxed: as in finish().
    if OWNER_PID.load(Ordering::Relaxed) != pid {
        return; // no capture of this process yet
    }
    if state::phase() == Phase::Running {
        end_capture(EndKind::Exec);
    }
}

/// The exec failed and this program goes on.
fn after_failed_exec() {
    if owns_this_memory(real::getpid()) {
        state::set_exec_pending(false);
    }
}

/// In a forked child (single-threaded, from the atfork handler): forget the parent's capture so
/// the child's first event opens its own file with its own ring and writer.
pub fn after_fork_child() {
    ring::forget_in_fork_child();
    writer::current::forget_in_fork_child();
    writer_thread::after_fork_child();
    // Relaxed: single-threaded.
    FORK_CHILD_PID.store(real::getpid(), Ordering::Relaxed);
    state::idle_in_fork_child();
}
