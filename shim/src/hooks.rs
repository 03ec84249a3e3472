//! What each interposed call does. Every hook has a fast path, inlined into its export, and a
//! `#[cold]` slow path.
//!
//! Fast-path budget (sampled mode, the default):
//! - malloc/calloc/realloc/aligned: one initial-exec TLS load, a compare and a subtract of the
//!   byte countdown, then a tail call into glibc.
//! - free: a subtract and a compare against constants (is the pointer in the region?) and one TLS
//!   flag test; no shared memory is touched.
//!
//! The slow path is taken once per sample, by a thread's first allocation, for every pointer of
//! the region, and for everything in `all` mode.

use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::config::{self, Mode};
use crate::real;
use crate::recorder;
use crate::region::{self, NewSlot};
use crate::ring::{Event, EventKind};
use crate::sampler::{self, FORK_GEN};
use crate::thread::{self, Busy, ThreadState, FLAG_FREE_FAST, FLAG_NAMED};
use crate::underlying;
use crate::{python, unwind};

const MODE_UNINIT: u8 = 0;
const MODE_OFF: u8 = 1;
const MODE_SAMPLED: u8 = 2;
const MODE_ALL: u8 = 3;

/// Set once by the constructor (and to OFF if the capture cannot be written).
static MODE: AtomicU8 = AtomicU8::new(MODE_UNINIT);
/// What the constructor decided (after the region's reservation): a fork child goes back to
/// this, whatever its parent's capture did since; an untraced parent has untraced children.
static DECIDED: AtomicU8 = AtomicU8::new(MODE_UNINIT);
static RATE: AtomicU64 = AtomicU64::new(0);
/// Allocations the shim itself made on an application thread outside a one-time section: the
/// sampled path promises none (checked by a test through `memshim_debug_reentrant_allocs`).
pub static REENTRANT_ALLOCS: AtomicU64 = AtomicU64::new(0);

/// Counts a recursive allocation made from inside the shim on an application thread.
fn note_reentrant(t: &ThreadState) {
    if t.flags & (thread::FLAG_WRITER | thread::FLAG_SETUP) == 0 {
        // Relaxed: a statistic.
        REENTRANT_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Flag in an Alloc event's `alloc_kind`: an allocation a forked child inherited.
pub const INHERITED: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Malloc = 0,
    Calloc = 1,
    Realloc = 2,
    Aligned = 3,
    Mmap = 4,
}

/// Called by the constructor once the configuration is known.
pub fn enable(mode: Mode) {
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
    // Release: a thread that sees the mode sees the rate.
    MODE.store(m, Ordering::Release);
}

/// In a fork child: the hooks back to what the constructor decided.
pub fn restore_decided() {
    // Relaxed: see DECIDED. Release: as in enable().
    let m = DECIDED.load(Ordering::Relaxed);
    if m != MODE_UNINIT {
        MODE.store(m, Ordering::Release);
    }
}

/// True while the hooks record (sampled or `all` mode): the shim is loaded, set up and tracing.
pub fn recording() -> bool {
    // Relaxed: a yes/no for the program's own use; no data is read through it.
    matches!(MODE.load(Ordering::Relaxed), MODE_SAMPLED | MODE_ALL)
}

/// Stops recording (the capture could not be written). Region pointers are still freed right.
pub fn disable() {
    MODE.store(MODE_OFF, Ordering::Release);
}

enum Decision {
    /// Forward to glibc, record nothing.
    Skip,
    /// Serve from the region and record (sampled mode).
    Sample,
    /// Forward to glibc and record (`all` mode).
    Record,
}

/// Updates the thread's sampling state for an allocation of `size` and says what to do with it.
fn decide(t: &mut ThreadState, size: u64) -> Decision {
    // Acquire: pairs with enable().
    match MODE.load(Ordering::Acquire) {
        MODE_SAMPLED => {
            t.flags |= FLAG_FREE_FAST;
            let rate = RATE.load(Ordering::Relaxed);
            // Relaxed: a stale generation only delays the reseed to the next sample.
            if t.rng == 0 || t.fork_gen != FORK_GEN.load(Ordering::Relaxed) {
                let tid = thread::tid(t);
                sampler::seed(t, config::get().and_then(|c| c.seed), tid);
                t.countdown = 0;
            }
            if t.countdown == 0 {
                // A new thread (or a reseed): draw its first gap.
                t.countdown = sampler::next_gap(t, rate);
            }
            // The fast paths test this too; callers that come here for other reasons (a region
            // pointer's realloc, an mmap) must count down like any allocation.
            if size < t.countdown {
                t.countdown -= size;
                return Decision::Skip;
            }
            t.countdown = sampler::next_gap(t, rate);
            Decision::Sample
        }
        MODE_ALL => {
            t.flags &= !FLAG_FREE_FAST;
            t.countdown = 0;
            Decision::Record
        }
        MODE_OFF => {
            t.flags |= FLAG_FREE_FAST;
            t.countdown = u64::MAX;
            Decision::Skip
        }
        _ => Decision::Skip, // before the constructor: countdown stays 0, ask again next time
    }
}

/// Sends this thread's name with its first event.
fn name_thread(t: &mut ThreadState, tid: u32) {
    if t.flags & FLAG_NAMED != 0 {
        return;
    }
    t.flags |= FLAG_NAMED;
    let name = crate::procinfo::thread_name();
    let words: [u64; 2] = [
        u64::from_ne_bytes(name[..8].try_into().unwrap()),
        u64::from_ne_bytes(name[8..].try_into().unwrap()),
    ];
    let ev = Event {
        kind: EventKind::ThreadName as u8,
        alloc_kind: 0,
        nframes: 0,
        tid,
        t: real::now_ns(),
        addr: 0,
        size: 0,
    };
    recorder::push(ev, &words);
}

/// An event without frames, stamped now.
fn event(kind: EventKind, alloc_kind: Kind, tid: u32, addr: *const c_void, size: usize) -> Event {
    event_at(kind, alloc_kind, tid, addr, size, real::stamp_ns())
}

fn event_at(
    kind: EventKind,
    alloc_kind: Kind,
    tid: u32,
    addr: *const c_void,
    size: usize,
    t: u64,
) -> Event {
    Event {
        kind: kind as u8,
        alloc_kind: alloc_kind as u8,
        nframes: 0,
        tid,
        t,
        addr: addr as u64,
        size: size as u64,
    }
}

const STACK_WORDS: usize = config::MAX_DEPTH + python::MAX_PY_FRAMES * python::WORDS_PER_FRAME;

/// A sampled stack: native return addresses, then Python frames (two words each). Left
/// uninitialised beyond what the walkers wrote: zeroing 4 KiB per sample is measurable.
struct StackBuf {
    words: [MaybeUninit<u64>; STACK_WORDS],
    native: usize,
    py: usize,
}

impl StackBuf {
    /// Unwinds this thread's native stack and reads its own Python frames (see `python::capture`).
    /// Inlined so the buffer is built in the caller's frame, not copied out.
    #[inline(always)]
    fn capture(s: &mut MaybeUninit<StackBuf>) -> &StackBuf {
        let depth = config::get().map_or(config::DEFAULT_DEPTH, |c| c.depth);
        // Built field by field in the caller's buffer: a struct literal mixing `uninit()` words
        // with zeroed counts let LLVM zero all 3 KiB with one memset (18% of a sample's cost),
        // and returning it by value copied it.
        let p = s.as_mut_ptr();
        // SAFETY: `words` is an array of MaybeUninit, valid in any state; the two counts are
        // written before assume_init, so every field is initialised.
        unsafe {
            let words = &mut *core::ptr::addr_of_mut!((*p).words);
            let native = unwind::capture(&mut words[..depth]);
            let py = python::capture(&mut words[native..]);
            core::ptr::addr_of_mut!((*p).native).write(native);
            core::ptr::addr_of_mut!((*p).py).write(py);
            s.assume_init_ref()
        }
    }

    fn native(&self) -> &[u64] {
        // SAFETY: the unwinder initialised the first `native` words.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast(), self.native) }
    }

    fn all(&self) -> &[u64] {
        let n = self.native + self.py * python::WORDS_PER_FRAME;
        // SAFETY: the unwinder, then the Python walker, initialised the first `n` words.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast(), n) }
    }

    /// The Alloc event carrying this stack, stamped `t`.
    fn event(&self, kind: Kind, tid: u32, addr: *const c_void, size: usize, t: u64) -> Event {
        Event {
            nframes: self.native as u16,
            ..event_at(EventKind::Alloc, kind, tid, addr, size, t)
        }
    }
}

/// Forwards an allocation request to glibc.
///
/// # Safety
/// As for the glibc function it calls.
unsafe fn forward(size: usize, align: usize, kind: Kind) -> *mut c_void {
    // SAFETY: plain forwarding; the arguments were the caller's.
    unsafe {
        match kind {
            Kind::Calloc => underlying::calloc(1, size),
            Kind::Aligned => underlying::memalign(align, size),
            _ => underlying::malloc(size),
        }
    }
}

/// The slow path of every allocating hook. `extern "C"` (it cannot unwind: a panic aborts) so
/// the hooks call it without a landing pad, as a tail jump: their fast paths need no frame.
///
/// # Safety
/// As for malloc; `align` is a power of two.
#[cold]
#[inline(never)]
pub unsafe extern "C" fn alloc_slow(size: usize, align: usize, kind: Kind) -> *mut c_void {
    let t = thread::current();
    let Some(_busy) = Busy::enter(t) else {
        note_reentrant(t);
        // SAFETY: our own allocation (unwinder, writer start): straight to glibc.
        return unsafe { forward(size, align, kind) };
    };
    match decide(t, size as u64) {
        // SAFETY: forwarding.
        Decision::Skip => unsafe { forward(size, align, kind) },
        Decision::Sample => {
            let p = sample_into_region(t, size, align, kind);
            if !p.is_null() {
                return p;
            }
            // SAFETY: forwarding.
            let q = unsafe { forward(size, align, kind) };
            if !q.is_null() {
                // A sample the region could not serve and glibc did: recorded nowhere, counted.
                // Relaxed: a statistic.
                recorder::REGION_FULL.fetch_add(1, Ordering::Relaxed);
            }
            q
        }
        Decision::Record => {
            // SAFETY: forwarding.
            let p = unsafe { forward(size, align, kind) };
            if !p.is_null() {
                record_alloc(t, p, size, kind);
            }
            p
        }
    }
}

/// Records an allocation glibc (or the kernel) made, with this thread's stack.
fn record_alloc(t: &mut ThreadState, p: *const c_void, size: usize, kind: Kind) {
    let mut buf = MaybeUninit::uninit();
    let stack = StackBuf::capture(&mut buf);
    let tid = thread::tid(t);
    name_thread(t, tid);
    recorder::push(
        stack.event(kind, tid, p, size, real::stamp_ns()),
        stack.all(),
    );
}

/// Frees a pointer of the region: records it, then gives the slot back. Invalid or double frees
/// of region pointers are ignored (the memory stays reserved) rather than crash the host.
fn free_sampled(t: &mut ThreadState, p: *mut c_void, record: bool) {
    if let Some(f) = region::begin_free(p) {
        // Relaxed: the generation changes only in a single-threaded fork child.
        let gen = FORK_GEN.load(Ordering::Relaxed);
        if record && f.header.claim_inherited(gen) {
            // Inherited from the parent and freed before this capture's writer listed it.
            let h = f.header;
            let ev = Event {
                kind: EventKind::Alloc as u8,
                alloc_kind: h.kind | INHERITED,
                nframes: h.nframes,
                tid: h.tid,
                t: 0,
                addr: h.user,
                size: h.size,
            };
            recorder::push(ev, h.frames());
        }
        if record {
            if python::finalizing_started() {
                mark_finalizing(thread::tid(t));
            }
            let tid = thread::tid(t);
            // The Free must be queued before the slot can be handed out again, so the writer
            // never sees the next owner's Alloc before this Free.
            recorder::push(
                event(
                    EventKind::Free,
                    Kind::Malloc,
                    tid,
                    p,
                    f.header.size as usize,
                ),
                &[],
            );
        }
        region::release(f);
    }
}

/// Records that the interpreter began finalizing, in order with the frees that follow it.
fn mark_finalizing(tid: u32) {
    recorder::push(
        event(
            EventKind::PyFinalizing,
            Kind::Malloc,
            tid,
            core::ptr::null(),
            0,
        ),
        &[],
    );
}

/// The slow path of `free`.
///
/// # Safety
/// As for free.
#[cold]
#[inline(never)]
pub unsafe extern "C" fn free_slow(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let t = thread::current();
    let busy = Busy::enter(t);
    if region::contains(p) && region::is_reserved() {
        free_sampled(t, p, busy.is_some());
        return;
    }
    if busy.is_some() {
        // Decide the thread's mode (sets FLAG_FREE_FAST when frees need no recording).
        if let Decision::Record = decide_free(t) {
            let tid = thread::tid(t);
            if python::finalizing_started() {
                mark_finalizing(tid);
            }
            recorder::push(event(EventKind::Free, Kind::Malloc, tid, p, 0), &[]);
        }
    }
    // SAFETY: `p` is glibc's (not in our region).
    unsafe { underlying::free(p) }
}

fn decide_free(t: &mut ThreadState) -> Decision {
    match MODE.load(Ordering::Acquire) {
        MODE_ALL => Decision::Record,
        MODE_SAMPLED | MODE_OFF => {
            t.flags |= FLAG_FREE_FAST;
            Decision::Skip
        }
        _ => Decision::Skip,
    }
}

/// The slow path of `realloc`.
///
/// # Safety
/// As for realloc.
#[cold]
#[inline(never)]
pub unsafe extern "C" fn realloc_slow(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        // SAFETY: realloc(NULL, n) is malloc(n).
        return unsafe { alloc_slow(size, 16, Kind::Malloc) };
    }
    let sampled = region::header_of(p);
    if size == 0 {
        // glibc frees and returns NULL for realloc(p, 0).
        // SAFETY: as for free.
        unsafe { free_slow(p) };
        return core::ptr::null_mut();
    }
    let t = thread::current();
    let Some(_busy) = Busy::enter(t) else {
        note_reentrant(t);
        // Our own code never reallocs a sampled pointer; anything else goes to glibc.
        // SAFETY: forwarding a glibc pointer.
        return unsafe { underlying::realloc(p, size) };
    };
    let old_size = match sampled {
        Some(h) => h.size as usize,
        None if region::contains(p) && region::is_reserved() => return core::ptr::null_mut(),
        // SAFETY: `p` is a live allocation of the allocator underneath (the caller's contract).
        None => match unsafe { underlying::usable_size(p) } {
            Some(n) => n,
            // Its size is unknown, so it cannot be copied into the region: not sampled.
            // SAFETY: forwarding.
            None => return unsafe { underlying::realloc(p, size) },
        },
    };
    match decide(t, size as u64) {
        // SAFETY: `p` is live with `old_size` bytes, sampled or not as `sampled` says.
        Decision::Skip => unsafe { realloc_unrecorded(t, p, size, old_size, sampled.is_some()) },
        Decision::Sample => {
            let q = sample_into_region(t, size, 16, Kind::Realloc);
            if q.is_null() {
                // SAFETY: no region slot: fall back to glibc's realloc semantics.
                let r = unsafe { realloc_unrecorded(t, p, size, old_size, sampled.is_some()) };
                if !r.is_null() {
                    // Relaxed: a statistic.
                    recorder::REGION_FULL.fetch_add(1, Ordering::Relaxed);
                }
                return r;
            }
            // SAFETY: both blocks hold at least min(old, new) bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, old_size.min(size))
            };
            if sampled.is_some() {
                free_sampled(t, p, true);
            } else {
                // SAFETY: `p` is glibc's and no longer used.
                unsafe { underlying::free(p) };
            }
            q
        }
        Decision::Record => {
            let tid = thread::tid(t);
            // Queue the Free first: once glibc releases `p`, another thread may get it back.
            recorder::push(event(EventKind::Free, Kind::Realloc, tid, p, old_size), &[]);
            // SAFETY: forwarding a glibc pointer (no region in `all` mode).
            let q = unsafe { underlying::realloc(p, size) };
            // On failure `p` is still live: record it again.
            let (addr, n) = if q.is_null() {
                (p, old_size)
            } else {
                (q, size)
            };
            record_alloc(t, addr, n, Kind::Realloc);
            q
        }
    }
}

/// Serves a sampled allocation from the region and records it; null (counted) when the region
/// cannot serve it.
fn sample_into_region(t: &mut ThreadState, size: usize, align: usize, kind: Kind) -> *mut c_void {
    let mut buf = MaybeUninit::uninit();
    let stack = StackBuf::capture(&mut buf);
    let tid = thread::tid(t);
    let now = real::stamp_ns();
    let p = region::alloc(NewSlot {
        size,
        align,
        kind: kind as u8,
        t: now,
        tid,
        fork_gen: FORK_GEN.load(Ordering::Relaxed),
        frames: stack.native(),
        zero: kind == Kind::Calloc,
    });
    if !p.is_null() {
        name_thread(t, tid);
        recorder::push(stack.event(kind, tid, p, size, now), stack.all());
    }
    p
}

/// realloc without recording the result.
///
/// # Safety
/// `p` is live with `old_size` usable bytes; `sampled` says whether it is a region pointer.
unsafe fn realloc_unrecorded(
    t: &mut ThreadState,
    p: *mut c_void,
    size: usize,
    old_size: usize,
    sampled: bool,
) -> *mut c_void {
    if !sampled {
        // SAFETY: forwarding a glibc pointer.
        return unsafe { underlying::realloc(p, size) };
    }
    // SAFETY: as in realloc_slow's Skip arm.
    let q = unsafe { underlying::malloc(size) };
    if !q.is_null() {
        // SAFETY: both blocks hold at least min(old, new) bytes.
        unsafe { core::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, old_size.min(size)) };
        free_sampled(t, p, true);
    }
    q
}

/// `malloc_usable_size` for any pointer.
///
/// # Safety
/// As for malloc_usable_size.
pub unsafe fn usable_size(p: *mut c_void) -> usize {
    if region::contains(p) && region::is_reserved() {
        return region::header_of(p).map_or(0, |h| h.size as usize);
    }
    // SAFETY: a pointer of the allocator underneath, or null.
    unsafe { underlying::usable_size(p) }.unwrap_or(0)
}

/// Records a new anonymous mapping when it is sampled (or always in `all` mode).
pub fn after_mmap(p: *mut c_void, len: usize, flags: i32) {
    // Under another allocator (jemalloc, tcmalloc...) anonymous mappings are mostly its own
    // extents, made with its locks held: recording them would count its memory twice (its
    // blocks come through malloc) and could call into it from inside itself.
    if p as isize == -1 || flags & libc::MAP_ANONYMOUS == 0 || underlying::is_foreign() {
        return;
    }
    let t = thread::current();
    let Some(_busy) = Busy::enter(t) else { return };
    match decide(t, len as u64) {
        Decision::Skip => {}
        Decision::Sample | Decision::Record => record_alloc(t, p, len, Kind::Mmap),
    }
}

/// Records an unmapped range (the CLI clips the recorded mappings it overlaps).
pub fn after_munmap(p: *mut c_void, len: usize) {
    if !recorder::running() {
        return;
    }
    let t = thread::current();
    let Some(_busy) = Busy::enter(t) else { return };
    let tid = thread::tid(t);
    recorder::push(event(EventKind::Munmap, Kind::Mmap, tid, p, len), &[]);
}

/// After a fork, in the child: new thread id, reseed on the next sample.
pub fn after_fork_child() {
    let t = thread::current();
    t.tid = 0;
    t.countdown = 0;
    t.flags &= !FLAG_NAMED;
}
