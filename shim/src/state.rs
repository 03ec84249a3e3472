//! The recording state: one owner for what every layer asks, whether and how this process
//! records now.
//!
//! Two things live here, and nowhere else:
//! - **the recording mode** the hooks follow: off, sampled at a rate, or all. The constructor
//!   decides it (after the region's reservation and the allocator check); a capture that cannot
//!   be written turns it off; a fork child goes back to what the constructor decided.
//! - **the recorder's phase**, its state machine across threads:
//!
//! ```text
//! IDLE --first sample--> STARTING --ring mapped, writer spawned--> RUNNING --exit/_exit--> FINISHED
//!                          \--writer cannot open the output--> DISABLED (one warning, untraced)
//! RUNNING --a write failed, or MEMSHIM_MAX_SIZE--> STOPPED (silent: the capture says why)
//! fork child: RUNNING/STARTING/IDLE/STOPPED --> IDLE (new file, new ring, new writer on its
//!             first sample; a child of a STOPPED parent records again, into its own file)
//! ```
//!
//! (The capture *kind*, events or snapshots, is a setting of the writer's, not a state.)
//! Also here: the process facts each layer needs to agree on (the fork generation, when this
//! process's capture began, an exec under way) and the counters the capture reports.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::config::Mode;

/// What the hooks do with an allocation, as [`mode`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Before the constructor: ask again on the next call.
    Undecided,
    Off,
    /// Poisson byte sampling at this rate (mean bytes between samples).
    Sampled(u64),
    /// Every allocation.
    All,
    /// Recording held off (`MEMSHIM_START=paused`, `memshim ctl PID stop`): like Off, but the
    /// hooks look for a control request every few MiB allocated.
    Paused,
}

const MODE_UNINIT: u8 = 0;
const MODE_OFF: u8 = 1;
const MODE_SAMPLED: u8 = 2;
const MODE_ALL: u8 = 3;
const MODE_PAUSED: u8 = 4;

/// The mode the hooks follow now.
static MODE: AtomicU8 = AtomicU8::new(MODE_UNINIT);
/// What the constructor decided: a fork child goes back to this, whatever its parent's capture
/// did since; an untraced parent has untraced children.
static DECIDED: AtomicU8 = AtomicU8::new(MODE_UNINIT);
/// The rate of the sampled mode; set once, before MODE says sampled.
static RATE: AtomicU64 = AtomicU64::new(0);

/// The constructor's decision (the setting, or Off when the process cannot be traced), held off
/// until a start request when `paused`.
pub fn decide(mode: Mode, paused: bool) {
    let m = match mode {
        Mode::Sampled(r) => {
            // Relaxed: published by the Release store of MODE below.
            RATE.store(r, Ordering::Relaxed);
            MODE_SAMPLED
        }
        Mode::All => MODE_ALL,
        Mode::Off => MODE_OFF,
    };
    // Relaxed: read only by the fork child handler, single-threaded, after the constructor.
    DECIDED.store(m, Ordering::Relaxed);
    let now = if paused && m != MODE_OFF {
        MODE_PAUSED
    } else {
        m
    };
    // Release: a thread that sees the mode sees the rate.
    MODE.store(now, Ordering::Release);
}

/// Holds recording off (a stop request): sampled or all mode becomes Paused.
pub fn pause() {
    for from in [MODE_SAMPLED, MODE_ALL] {
        // AcqRel: as the Release in decide(); only a recording mode is paused (never Off).
        let _ = MODE.compare_exchange(from, MODE_PAUSED, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Recording again at the constructor's mode (a start request); false when it was not paused.
pub fn resume() -> bool {
    // Relaxed: DECIDED is written once, before any other thread exists.
    let decided = DECIDED.load(Ordering::Relaxed);
    // AcqRel: as in pause().
    MODE.compare_exchange(MODE_PAUSED, decided, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// The mode the hooks follow now.
#[inline]
pub fn mode() -> Recording {
    // Acquire: pairs with decide()'s Release, so a sampled mode comes with its rate.
    match MODE.load(Ordering::Acquire) {
        // Relaxed: ordered by the Acquire above.
        MODE_SAMPLED => Recording::Sampled(RATE.load(Ordering::Relaxed)),
        MODE_ALL => Recording::All,
        MODE_OFF => Recording::Off,
        MODE_PAUSED => Recording::Paused,
        _ => Recording::Undecided,
    }
}

/// True while the hooks record (sampled or `all` mode): the shim is loaded, set up and tracing.
pub fn recording() -> bool {
    matches!(mode(), Recording::Sampled(_) | Recording::All)
}

/// Set by `memshim_snapshot`: the writer writes a snapshot (or flushes) at its next round.
static SNAPSHOT_ASKED: AtomicBool = AtomicBool::new(false);

/// Asks the writer for a snapshot now; false when no capture is being written.
pub fn ask_snapshot() -> bool {
    // Relaxed: a request flag the writer polls; it carries no data.
    SNAPSHOT_ASKED.store(true, Ordering::Relaxed);
    running()
}

/// The writer takes the request, if there is one.
pub fn take_snapshot_request() -> bool {
    // Relaxed: as in ask_snapshot.
    SNAPSHOT_ASKED.swap(false, Ordering::Relaxed)
}

/// What the constructor decided, whatever happened since (the capture's header says this).
pub fn decided() -> Recording {
    // Relaxed: written once by the constructor, before any thread but the main one exists.
    match DECIDED.load(Ordering::Relaxed) {
        // Relaxed: as above.
        MODE_SAMPLED => Recording::Sampled(RATE.load(Ordering::Relaxed)),
        MODE_ALL => Recording::All,
        MODE_OFF => Recording::Off,
        _ => Recording::Undecided,
    }
}

/// Recording stops: the hooks forward everything. Region pointers are still freed right.
fn turn_off() {
    // Release: pairs with mode()'s Acquire (no data rides on it; kept symmetric).
    MODE.store(MODE_OFF, Ordering::Release);
}

// ---- the recorder's phase ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Idle = 0,
    Starting = 1,
    Running = 2,
    Disabled = 3,
    Finished = 4,
    /// This process's capture stopped (a failed write, the size bound); a fork child starts afresh.
    Stopped = 5,
}

static PHASE: AtomicU8 = AtomicU8::new(Phase::Idle as u8);

fn phase_of(v: u8) -> Phase {
    match v {
        0 => Phase::Idle,
        1 => Phase::Starting,
        2 => Phase::Running,
        3 => Phase::Disabled,
        4 => Phase::Finished,
        _ => Phase::Stopped,
    }
}

/// The recorder's phase. Acquire: a thread that sees Running sees what the starting thread
/// published before it (the ring, see [`publish_running`]).
#[inline]
pub fn phase() -> Phase {
    phase_of(PHASE.load(Ordering::Acquire))
}

/// True while a capture is being written (events would be kept).
#[inline]
pub fn running() -> bool {
    // Relaxed: a hint for callers that would only skip work (an unmap nobody records).
    PHASE.load(Ordering::Relaxed) == Phase::Running as u8
}

/// True once an exit path has claimed the capture and the writer is to finish it.
pub fn finishing() -> bool {
    phase() == Phase::Finished
}

/// Idle -> Starting, for the one thread that starts the capture; otherwise the phase found.
pub fn begin_start() -> Result<(), Phase> {
    // AcqRel: the winner's later stores are ordered after it; losers see the phase won.
    PHASE
        .compare_exchange(
            Phase::Idle as u8,
            Phase::Starting as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map(|_| ())
        .map_err(phase_of)
}

/// Starting -> Idle: the capture could not start yet (no configuration).
pub fn start_abandoned() {
    PHASE.store(Phase::Idle as u8, Ordering::Release);
}

/// Starting -> Running. Release: publishes to every thread that sees Running (through
/// [`phase`]'s Acquire) what the starting thread stored before (the ring pointer).
pub fn publish_running() {
    PHASE.store(Phase::Running as u8, Ordering::Release);
}

/// Recording cannot happen in this process (no ring, no writer, an unwritable output): the
/// hooks stop for good, for its fork children too.
pub fn disable() {
    turn_off();
    PHASE.store(Phase::Disabled as u8, Ordering::Release);
}

/// The capture cannot be written any more (the writer's first failed write, or the size
/// bound): recording stops, silently. Only a running capture stops: once an exit path moved it
/// to Finished, the hooks stay on (a process forking from its atexit handlers still traces its
/// children). The phase first: a fork in between leaves a Stopped child, which re-enables.
pub fn stop_writing() {
    // AcqRel: as in begin_start.
    if PHASE
        .compare_exchange(
            Phase::Running as u8,
            Phase::Stopped as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        turn_off();
    }
}

/// Running -> Finished, for the one exit path that ends the capture.
pub fn begin_finish() -> bool {
    // AcqRel: as in begin_start.
    PHASE
        .compare_exchange(
            Phase::Running as u8,
            Phase::Finished as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
}

// ---- process facts ----

/// Bumped in each fork child: thread states seeded, arena reservations and code ids sent before
/// it belong to the parent's capture.
static FORK_GEN: AtomicU32 = AtomicU32::new(0);

/// The fork generation. Relaxed: it changes only in a single-threaded fork child.
#[inline]
pub fn fork_generation() -> u32 {
    FORK_GEN.load(Ordering::Relaxed)
}

/// When this process's capture began (constructor, or fork for a child), `CLOCK_MONOTONIC` ns.
static CAPTURE_START_NS: AtomicU64 = AtomicU64::new(0);

pub fn capture_start_ns() -> u64 {
    // Relaxed: written before any thread that reads it exists (constructor, fork child).
    CAPTURE_START_NS.load(Ordering::Relaxed)
}

pub fn set_capture_start_ns(t: u64) {
    // Relaxed: as above.
    CAPTURE_START_NS.store(t, Ordering::Relaxed);
}

/// Between an exec hook's start and the exec's failure: starting a capture or writing more of
/// it now would leave a file cut by the new program image (glibc's execvp may allocate while it
/// tries each PATH entry).
static EXEC_PENDING: AtomicBool = AtomicBool::new(false);

/// True while an exec is under way (nothing starts and the writer writes nothing).
pub fn exec_pending() -> bool {
    // Acquire: pairs with set_exec_pending's Release.
    EXEC_PENDING.load(Ordering::Acquire)
}

pub fn set_exec_pending(pending: bool) {
    // Release: a writer thread that sees it (under the writer's lock) writes nothing more.
    EXEC_PENDING.store(pending, Ordering::Release);
}

// ---- counters the capture reports ----

/// Events dropped while another thread was still starting the writer.
pub static STARTING_DROPS: AtomicU64 = AtomicU64::new(0);
/// Sampled allocations that did not fit the region (served unrecorded by the allocator).
pub static REGION_FULL: AtomicU64 = AtomicU64::new(0);

/// Counts one event (of `counter`). Relaxed: a statistic.
#[inline]
pub fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// In a forked child (single-threaded, from the atfork handler, before the other layers forget
/// their parent's state): a new generation, a new start, no exec under way, counters at zero.
pub fn after_fork_child(now_ns: u64) {
    // Relaxed (all of these): the child is single-threaded here.
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    CAPTURE_START_NS.store(now_ns, Ordering::Relaxed);
    EXEC_PENDING.store(false, Ordering::Relaxed);
    STARTING_DROPS.store(0, Ordering::Relaxed);
    REGION_FULL.store(0, Ordering::Relaxed);
}

/// In a forked child, once the parent's capture is forgotten: unless this process was disabled,
/// the constructor's mode and an idle recorder, so the child's first sample opens its own
/// capture. (A Stopped parent turned the hooks off; a fork racing stop_writing may have caught
/// them off in any phase. A process the constructor left untraced stays so.)
pub fn idle_in_fork_child() {
    if phase() != Phase::Disabled {
        // Relaxed: single-threaded. Release: as in decide(). A paused parent has paused
        // children: a start request names one process.
        let m = DECIDED.load(Ordering::Relaxed);
        if m != MODE_UNINIT && MODE.load(Ordering::Relaxed) != MODE_PAUSED {
            MODE.store(m, Ordering::Release);
        }
        PHASE.store(Phase::Idle as u8, Ordering::Release);
    }
}
