//! The recording state machine shared by all threads: starts the writer on the first sample,
//! hands events to the ring, finishes the capture on every exit path, and starts afresh in a
//! forked child.
//!
//! ```text
//! IDLE --first sample--> STARTING --ring mapped, writer spawned--> RUNNING --exit/_exit--> FINISHED
//!                          \--writer cannot open the output--> DISABLED (one warning, untraced)
//! RUNNING --a write failed, or MEMSHIM_MAX_SIZE--> STOPPED (silent: the capture says why)
//! fork child: RUNNING/STARTING/IDLE/STOPPED --> IDLE (new file, new ring, new writer on its
//!             first sample; a child of a STOPPED parent records again, into its own file)
//! ```
//!
//! Only writer threads touch the capture file (see fdtable.rs): an exit path on an application
//! thread asks the writer to finish and waits for it, bounded.

use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering,
};
use std::sync::Mutex;

use memshim_format::{Drops, EndKind};

use crate::ring::{Event, EventKind, Ring};
use crate::writer::Writer;
use crate::{config, real, thread};

const IDLE: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
const DISABLED: u8 = 3;
const FINISHED: u8 = 4;
/// This process's capture stopped (a failed write, the size bound); a fork child starts afresh.
const STOPPED: u8 = 5;

static STATE: AtomicU8 = AtomicU8::new(IDLE);
static RING: AtomicPtr<Ring> = AtomicPtr::new(core::ptr::null_mut());
/// The writer's state; `None` until the writer thread (or an exit path) opens the capture.
static WRITER: AtomicPtr<Mutex<Option<Writer>>> = AtomicPtr::new(core::ptr::null_mut());
/// The capture's descriptor when the writer shares the program's descriptor table (the
/// fallback of fdtable.rs), so a fork child can close its inherited copy; -1 otherwise.
static SHARED_FD: AtomicI32 = AtomicI32::new(-1);
/// The process whose capture this is: a vfork child shares our memory but must not finish it.
static OWNER_PID: AtomicU32 = AtomicU32::new(0);
/// Set by the atfork child handler: the pid of a process that is a real (not v-) fork child.
static FORK_CHILD_PID: AtomicU32 = AtomicU32::new(0);
/// The pid the constructor ran in (the process whose memory this is, unless forked since).
static INIT_PID: AtomicU32 = AtomicU32::new(0);
/// Between an exec hook's start and the exec's failure: starting a capture or writing more of
/// it now would leave a file cut by the new program image (glibc's execvp may allocate while it
/// tries each PATH entry).
static EXEC_PENDING: AtomicBool = AtomicBool::new(false);
/// Events dropped while another thread was still starting the writer.
static STARTING_DROPS: AtomicU64 = AtomicU64::new(0);
/// Sampled allocations that did not fit the region (served unrecorded by libc).
pub static REGION_FULL: AtomicU64 = AtomicU64::new(0);
/// When this process's capture began (constructor, or fork for a child).
pub static START_MONO: AtomicU64 = AtomicU64::new(0);

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
        Some(EventKind::Alloc) => ev.alloc_kind & crate::hooks::INHERITED == 0,
        // A mark: the program asked for a capture of this moment.
        Some(EventKind::ThreadName | EventKind::PyCode | EventKind::Mark) => true,
        _ => false,
    }
}

/// Sends one event to the writer; false when it was dropped. Waits only in `all` mode (above).
pub fn push(ev: Event, frames: &[u64]) -> bool {
    // Acquire: RUNNING is stored after RING, so a RUNNING state means the ring pointer is valid.
    match STATE.load(Ordering::Acquire) {
        RUNNING => {}
        IDLE => {
            // Acquire: pairs with before_exec's store.
            if !opens_capture(&ev) || EXEC_PENDING.load(Ordering::Acquire) || !start() {
                return false;
            }
        }
        STARTING => {
            // Relaxed: a statistic.
            STARTING_DROPS.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        _ => return false,
    }
    let ring = RING.load(Ordering::Acquire);
    if ring.is_null() {
        return false;
    }
    // Relaxed: a setting, and a give-up flag where a stale read costs one more wait.
    let patience = PATIENCE_NS.load(Ordering::Relaxed);
    // SAFETY: a non-null RING points at a live ring (it is only replaced in a fork child, which is
    // single-threaded at that moment).
    let ring = unsafe { &*ring };
    if cfg!(feature = "floor-no-ring")
        && (ev.kind == EventKind::Alloc as u8 || ev.kind == EventKind::Free as u8)
    {
        return true;
    }
    let pushed = ring.push(ev, frames, patience);
    if !pushed && patience > 0 {
        PATIENCE_NS.store(0, Ordering::Relaxed);
    }
    if ring.half_full() {
        crate::writer_thread::nudge();
    }
    crate::writer_thread::resume_if_due();
    pushed
}

/// True while a capture is being written (events would be kept).
pub fn running() -> bool {
    STATE.load(Ordering::Relaxed) == RUNNING
}

/// True once an exit path has claimed the capture and the writer is to finish it.
pub fn finishing() -> bool {
    // Acquire: pairs with finish()'s CAS.
    STATE.load(Ordering::Acquire) == FINISHED
}

/// Drop counters as the capture reports them.
pub fn drops() -> Drops {
    let ring = RING.load(Ordering::Acquire);
    let ring_dropped = if ring.is_null() {
        0
    } else {
        // SAFETY: as in push().
        unsafe { &*ring }.dropped.0.load(Ordering::Relaxed)
    };
    Drops {
        ring_full: ring_dropped + STARTING_DROPS.load(Ordering::Relaxed),
        region_full: REGION_FULL.load(Ordering::Relaxed),
    }
}

/// Starts recording: maps the ring and starts the writer thread, which opens the capture. Runs
/// once per process, in whichever thread records first, with that thread marked busy. That
/// thread may hold any lock of the C library (malloc is called from inside setlocale, dlopen...),
/// so it does only what needs no such lock: a raw mmap and pthread_create. Opening the file and
/// anything that formats text or walks the loader's lists happens on the writer thread.
#[cold]
fn start() -> bool {
    thread::setup_section(start_inner)
}

fn start_inner() -> bool {
    if STATE
        .compare_exchange(IDLE, STARTING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return STATE.load(Ordering::Acquire) == RUNNING;
    }
    let Some(cfg) = config::get() else {
        STATE.store(IDLE, Ordering::Release);
        return false;
    };
    let words = cfg.depth + crate::python::MAX_PY_FRAMES * crate::python::WORDS_PER_FRAME;
    let all = cfg.mode == config::Mode::All;
    let ring = Ring::create(ring_capacity(all), words);
    // Relaxed: read by producers only after RING is published (Release below).
    PATIENCE_NS.store(
        if all { ALL_MODE_PATIENCE_NS } else { 0 },
        Ordering::Relaxed,
    );
    if ring.is_null() {
        return disable("cannot map the event ring; running untraced");
    }
    WRITER.store(Box::into_raw(Box::new(Mutex::new(None))), Ordering::Release);
    RING.store(ring, Ordering::Release);
    // SAFETY: getpid has no preconditions.
    OWNER_PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
    // Release: publishes RING and WRITER to every thread that sees RUNNING.
    STATE.store(RUNNING, Ordering::Release);
    if !crate::writer_thread::spawn() {
        // No writer, no capture (only a writer thread may hold its file).
        crate::hooks::disable();
        STATE.store(DISABLED, Ordering::Release);
        return false;
    }
    true
}

/// Runs `f` on the open writer, opening the capture first if nobody has yet. False when the
/// capture cannot be written (recording is then disabled, with one warning). Writer threads
/// only: the file lives in their descriptor table.
pub fn with_writer(f: impl FnOnce(&mut Writer)) -> bool {
    debug_assert!(thread::current().flags & thread::FLAG_WRITER != 0);
    let w = WRITER.load(Ordering::Acquire);
    if w.is_null() {
        return false;
    }
    // SAFETY: the writer box is never freed while its process's capture runs.
    let Ok(mut guard) = (unsafe { &*w }).lock() else {
        return false;
    };
    if guard.is_none() {
        let Some(cfg) = config::get() else {
            return false;
        };
        // SAFETY: getpid has no preconditions.
        let path = config::output_path(&cfg.output, unsafe { libc::getpid() } as u32);
        let table = crate::fdtable::mode().unwrap_or(crate::fdtable::Table::Shared);
        match Writer::create(&path, cfg, RING.load(Ordering::Acquire), table) {
            Ok(writer) => {
                if let Some(fd) = writer.shared_fd() {
                    SHARED_FD.store(fd, Ordering::Relaxed);
                }
                *guard = Some(writer);
            }
            Err(e) => {
                drop(guard);
                disable(&format!(
                    "cannot write capture {path}: {e}; running untraced"
                ));
                return false;
            }
        }
    }
    f(guard.as_mut().expect("opened above"));
    true
}

/// The capture cannot be written any more (the writer's first failed write, or the size bound):
/// recording stops. Silently: the program's stderr is the program's, and the capture's last
/// record says why when it could still be written. Unlike DISABLED, a forked child records
/// again (its own file; see after_fork_child).
pub fn stop_writing() {
    // AcqRel: only a running capture stops (an exit flush has already moved it to FINISHED, and
    // then the hooks stay on: a process forking from its atexit handlers still traces the
    // children). The state first: a fork in between leaves a STOPPED child, which re-enables.
    if STATE
        .compare_exchange(RUNNING, STOPPED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        crate::hooks::disable();
    }
}

fn disable(why: &str) -> bool {
    real::warn(why);
    crate::hooks::disable();
    STATE.store(DISABLED, Ordering::Release);
    false
}

/// Finishes the capture: drains what is left, writes the End record, flushes. Every exit path
/// calls it; only the first call in the owning process does anything. A process (or fork
/// child) that never sampled has no capture and leaves no file.
pub fn finish(how: EndKind) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    // Another thread may be starting the capture right now: give it a moment (bounded) rather
    // than lose everything recorded so far. By the clock, not by a count of yields: on a busy
    // machine the starting thread can be off the CPU for a whole time slice (a 2,000-yield wait
    // lost the capture of exit_thread.c about 1 run in 40 under load).
    let deadline = real::now_ns() + 200_000_000;
    while STATE.load(Ordering::Acquire) == STARTING && real::now_ns() < deadline {
        real::sleep_us(50);
    }
    if OWNER_PID.load(Ordering::Relaxed) != pid {
        return; // a vfork child: the capture is its parent's
    }
    if STATE
        .compare_exchange(RUNNING, FINISHED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    end_capture(how);
}

/// Has the writer write the End record `how`: directly on a writer thread (its exit path), else
/// by asking the writer thread and waiting for it (bounded).
fn end_capture(how: EndKind) {
    if thread::current().flags & thread::FLAG_WRITER != 0 {
        thread::setup_section(|| with_writer(|w| w.finish(how)));
    } else {
        thread::setup_section(|| crate::writer_thread::finish_and_wait(how));
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
    if STATE.load(Ordering::Acquire) != RUNNING {
        return;
    }
    // A walk of ours under way in this very thread (a dlopen from an atfork prepare handler
    // that runs after ours): waiting would never end; the writer's next look sends the map.
    if crate::modules::walk_is_mine() {
        return;
    }
    let sig = crate::modules::signature();
    // Acquire: pairs with the Release store below, so the map another thread sent is in the
    // ring before this thread's next sample. (Two threads racing here both send: harmless.)
    if crate::modules::packed(sig) == SENT_MAP.load(Ordering::Acquire) {
        return;
    }
    let t = thread::current();
    let Some(_busy) = thread::Busy::enter(t) else {
        return;
    };
    thread::setup_section(|| {
        let (mods, sig) = crate::modules::snapshot();
        let Ok(bytes) = postcard::to_allocvec(&memshim_format::Record::Modules(mods)) else {
            return;
        };
        let Some(reserved) = crate::arena::put(&bytes) else {
            return;
        };
        if let Some(offset) = reserved.offset() {
            let ev = Event {
                kind: EventKind::Modules as u8,
                alloc_kind: 0,
                nframes: 0,
                tid: 0,
                // The map's signature, so the writer can tell a map it already has.
                t: crate::modules::packed(sig),
                addr: offset,
                size: bytes.len() as u64,
            };
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
    // SAFETY: getpid has no preconditions.
    INIT_PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
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
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    if !owns_this_memory(pid) {
        return; // a vfork child about to exec: nothing here is its to change
    }
    // Release: a writer thread that sees it (under the writer's lock) writes nothing more.
    EXEC_PENDING.store(true, Ordering::Release);
    if OWNER_PID.load(Ordering::Relaxed) != pid {
        return; // no capture of this process yet
    }
    if STATE.load(Ordering::Acquire) == RUNNING {
        end_capture(EndKind::Exec);
    }
}

/// The exec failed and this program goes on.
fn after_failed_exec() {
    // SAFETY: getpid has no preconditions.
    if owns_this_memory(unsafe { libc::getpid() } as u32) {
        // Release: pairs with push's and the writer's loads.
        EXEC_PENDING.store(false, Ordering::Release);
    }
}

/// True while an exec is under way (the writer thread then writes nothing).
pub fn exec_pending() -> bool {
    // Acquire: pairs with before_exec's store.
    EXEC_PENDING.load(Ordering::Acquire)
}

/// In a forked child (single-threaded, from the atfork handler): forget the parent's capture so
/// the child's first event opens its own file with its own ring and writer.
pub fn after_fork_child() {
    let ring = RING.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !ring.is_null() {
        // SAFETY: the parent's writer thread does not exist in the child; no one else runs.
        unsafe { Ring::destroy(ring) };
    }
    // The parent's writer may have held its mutex at the fork: never lock it; leak it
    // (copy-on-write pages shared with the parent). Its file is in the parent writer's private
    // table, which the child does not have; only in the shared-table fallback did the child
    // inherit a copy, closed here before any code of the program's has run in the child.
    WRITER.store(core::ptr::null_mut(), Ordering::Release);
    let fd = SHARED_FD.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: closing the child's own copy of the parent's capture descriptor, in the atfork
        // child handler: the program has not run since fork, so the number is still ours.
        unsafe { libc::close(fd) };
    }
    crate::writer_thread::after_fork_child();
    STARTING_DROPS.store(0, Ordering::Relaxed);
    REGION_FULL.store(0, Ordering::Relaxed);
    // SAFETY: getpid has no preconditions.
    FORK_CHILD_PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
    EXEC_PENDING.store(false, Ordering::Relaxed);
    START_MONO.store(real::now_ns(), Ordering::Relaxed);
    if STATE.load(Ordering::Relaxed) != DISABLED {
        // The hooks back to what the constructor decided, whatever the parent's capture did (a
        // STOPPED parent turned them off; a fork racing stop_writing may have caught them off in
        // any state). A process the constructor left untraced stays so in its children.
        crate::hooks::restore_decided();
        STATE.store(IDLE, Ordering::Release);
    }
}
