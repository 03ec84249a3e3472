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

use core::ffi::{c_int, c_void};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, Ordering};

use memshim_format::AllocKind as Kind;

use crate::config::{self, CaptureKind};
use crate::recorder;
use crate::sampling::decide::{self, Decision};
use crate::sampling::thread::{self, Busy, Thread, FLAG_FREE_FAST, FLAG_NAMED};
use crate::stacks::python;
use crate::stacks::unwind::Entry;
use crate::stacks::StackBuf;
use crate::state;
use crate::sys::region::{self, NewSlot};
use crate::sys::{procinfo, real, underlying};
use crate::transport::event::{Event, EventKind};

// ---- fast paths, inlined into the exports ----

/// # Safety
/// As for C `malloc`.
#[inline(always)]
pub unsafe fn malloc(size: usize) -> *mut c_void {
    if thread::fast::take(size as u64) {
        // SAFETY: forwarding.
        return unsafe { underlying::malloc(size) };
    }
    // SAFETY: as for malloc.
    unsafe { alloc_slow(size, 16, Kind::Malloc) }
}

/// # Safety
/// As for C `free`.
#[inline(always)]
pub unsafe fn free(p: *mut c_void) {
    if !region::contains(p) && thread::fast::flags() & FLAG_FREE_FAST != 0 {
        // SAFETY: not a region pointer, so the allocator's (or null).
        return unsafe { underlying::free(p) };
    }
    // SAFETY: as for free.
    unsafe { free_slow(p) }
}

/// # Safety
/// As for C `calloc`.
#[inline(always)]
pub unsafe fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        // SAFETY: the allocator reports the overflow (NULL, ENOMEM).
        return unsafe { underlying::calloc(n, size) };
    };
    if thread::fast::take(total as u64) {
        // SAFETY: forwarding.
        return unsafe { underlying::calloc(n, size) };
    }
    // SAFETY: as for calloc.
    unsafe { alloc_slow(total, 16, Kind::Calloc) }
}

/// # Safety
/// As for C `realloc`.
#[inline(always)]
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // A positive countdown means this thread is in sampled (or off) mode, where the allocator's
    // pointers need no bookkeeping; null, zero size and region pointers have their own semantics.
    if !region::contains(p) && !p.is_null() && size != 0 && thread::fast::take(size as u64) {
        // SAFETY: forwarding the allocator's pointer.
        return unsafe { underlying::realloc(p, size) };
    }
    // SAFETY: as for realloc.
    unsafe { realloc_slow(p, size) }
}

/// # Safety
/// As for C `reallocarray`.
#[inline(always)]
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: as for realloc.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            real::set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// # Safety
/// As for C `posix_memalign`.
#[inline(always)]
pub unsafe fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return libc::EINVAL;
    }
    let errno = real::errno();
    // SAFETY: as for memalign with a valid alignment.
    let p = unsafe { aligned(align, size) };
    if p.is_null() {
        return libc::ENOMEM;
    }
    real::set_errno(errno); // success must leave errno alone
                            // SAFETY: the caller passes a valid out-pointer.
    unsafe { *out = p };
    0
}

/// # Safety
/// As for C `memalign` (and glibc's `aligned_alloc`, which is memalign).
#[inline(always)]
pub unsafe fn memalign(align: usize, size: usize) -> *mut c_void {
    // glibc rounds a non-power-of-two alignment up to the next power of two.
    let a = align.max(1).checked_next_power_of_two().unwrap_or(0);
    if a == 0 {
        real::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    // SAFETY: a is a power of two.
    unsafe { aligned(a, size) }
}

/// # Safety
/// As for C `valloc`.
#[inline(always)]
pub unsafe fn valloc(size: usize) -> *mut c_void {
    // SAFETY: page alignment is a power of two.
    unsafe { aligned(PAGE, size) }
}

/// # Safety
/// As for C `pvalloc`.
#[inline(always)]
pub unsafe fn pvalloc(size: usize) -> *mut c_void {
    let Some(rounded) = size.max(1).checked_next_multiple_of(PAGE) else {
        real::set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    // SAFETY: page alignment is a power of two.
    unsafe { aligned(PAGE, rounded) }
}

/// The page size valloc and pvalloc align to (x86-64's).
const PAGE: usize = 4096;

/// Shared body of the aligned allocators: the same countdown as malloc's fast path.
///
/// # Safety
/// `align` is a power of two.
#[inline(always)]
unsafe fn aligned(align: usize, size: usize) -> *mut c_void {
    if thread::fast::take(size as u64) {
        // SAFETY: forwarding with a valid alignment.
        return unsafe { underlying::memalign(align, size) };
    }
    // SAFETY: as for memalign.
    unsafe { alloc_slow(size, align, Kind::Aligned) }
}

// ---- slow paths ----

/// Allocations the shim itself made on an application thread outside a one-time section: the
/// sampled path promises none (checked by a test through `memshim_debug_reentrant_allocs`).
pub static REENTRANT_ALLOCS: AtomicU64 = AtomicU64::new(0);

/// What `memshim_debug_reentrant_allocs` reports.
pub fn reentrant_allocs() -> u64 {
    // Relaxed: a statistic.
    REENTRANT_ALLOCS.load(Ordering::Relaxed)
}

/// Counts a recursive allocation made from inside the shim on an application thread.
fn note_reentrant(t: Thread) {
    if !t.has(thread::FLAG_WRITER | thread::FLAG_SETUP) {
        // Relaxed: a statistic.
        REENTRANT_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends this thread's name with its first event.
fn name_thread(t: Thread, tid: u32) {
    if t.has(FLAG_NAMED) {
        return;
    }
    t.raise(FLAG_NAMED);
    let name = procinfo::thread_name();
    let words: [u64; 2] = [
        u64::from_ne_bytes(name[..8].try_into().unwrap()),
        u64::from_ne_bytes(name[8..].try_into().unwrap()),
    ];
    recorder::push(
        Event::new(EventKind::ThreadName, tid, real::now_ns(), 0, 0),
        &words,
    );
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
/// A trampoline: it adds the stack pointer and %rbp it was entered with (see
/// [`unwind::Entry`]), so the stack walk starts at the program's frame, not at the shim's.
///
/// # Safety
/// As for malloc; `align` is a power of two.
#[unsafe(naked)]
pub unsafe extern "C" fn alloc_slow(size: usize, align: usize, kind: Kind) -> *mut c_void {
    // The three arguments stay in rdi, rsi, edx; rcx and r8 take the entry's registers; the
    // jump leaves the return address where it is, so `alloc_slow_at` returns to the caller.
    core::arch::naked_asm!(
        "mov rcx, rsp",
        "mov r8, rbp",
        "jmp {at}",
        at = sym alloc_slow_at,
    )
}

/// `alloc_slow`'s body, with the registers it was entered with.
///
/// # Safety
/// As for malloc; `align` is a power of two; `sp` and `bp` were the stack pointer and %rbp at
/// the first instruction of a function the program called.
#[cold]
#[inline(never)]
unsafe extern "C" fn alloc_slow_at(
    size: usize,
    align: usize,
    kind: Kind,
    sp: u64,
    bp: u64,
) -> *mut c_void {
    let entry = Some(Entry { sp, bp });
    let t = thread::current();
    let Some(_busy) = Busy::enter(t) else {
        note_reentrant(t);
        // SAFETY: our own allocation (unwinder, writer start): straight to glibc.
        return unsafe { forward(size, align, kind) };
    };
    match decide::allocation(t, size as u64) {
        // SAFETY: forwarding.
        Decision::Skip => unsafe { forward(size, align, kind) },
        Decision::Sample => {
            let p = sample_into_region(t, size, align, kind, entry);
            if !p.is_null() {
                return p;
            }
            // SAFETY: forwarding.
            let q = unsafe { forward(size, align, kind) };
            if !q.is_null() {
                // A sample the region could not serve and glibc did: recorded nowhere, counted.
                state::count(&state::REGION_FULL);
            }
            q
        }
        Decision::Record => {
            // SAFETY: forwarding.
            let p = unsafe { forward(size, align, kind) };
            if !p.is_null() {
                record_alloc(t, p, size, kind, entry);
            }
            p
        }
    }
}

/// This thread's stack: from the program's frame when the call's entry is known, else from
/// here (the CLI drops the shim's frames).
#[inline(always)]
fn stack_of(buf: &mut MaybeUninit<StackBuf>, entry: Option<Entry>) -> &StackBuf {
    match entry {
        Some(e) => StackBuf::capture_from(buf, recorder::push, e),
        None => StackBuf::capture(buf, recorder::push),
    }
}

/// Records an allocation glibc (or the kernel) made, with this thread's stack.
fn record_alloc(t: Thread, p: *const c_void, size: usize, kind: Kind, entry: Option<Entry>) {
    let mut buf = MaybeUninit::uninit();
    let stack = stack_of(&mut buf, entry);
    let tid = t.tid();
    name_thread(t, tid);
    let ev = stack.event(kind, tid, p as u64, size as u64, real::stamp_ns());
    push_alloc(t, ev, stack.all());
}

/// Sends an Alloc event; without its stack words when the writer already has them as this
/// thread's last stack (a loop allocating from one place: in `all` mode, most events). The ring
/// then carries one unit instead of two or more, and the writer skips interning the stack.
/// Snapshot mode aggregates by the words themselves, so it always gets them.
fn push_alloc(t: Thread, ev: Event, words: &[u64]) {
    let events = config::get().is_some_and(|c| c.capture == CaptureKind::Events);
    if events && t.same_stack(words) {
        // Dropped or not, the writer's last stack for this thread stays what it was.
        recorder::push(ev.repeating_stack(), &[]);
    } else if recorder::push(ev, words) && events {
        t.remember_stack(words);
    } else {
        // The writer did not get these words: the next Alloc must carry its own.
        t.forget_stack();
    }
}

/// Frees a pointer of the region: records it, then gives the slot back. Invalid or double frees
/// of region pointers are ignored (the memory stays reserved) rather than crash the host.
fn free_sampled(t: Thread, p: *mut c_void, record: bool) {
    if let Some(f) = region::begin_free(p) {
        if record && f.header.claim_inherited(state::fork_generation()) {
            // Inherited from the parent and freed before this capture's writer listed it.
            let h = f.header;
            let ev = Event::inherited(h.kind, h.nframes, h.tid, h.user, h.size);
            recorder::push(ev, h.frames());
        }
        if record {
            if python::finalizing_started() {
                mark_finalizing(t.tid());
            }
            // The Free must be queued before the slot can be handed out again, so the writer
            // never sees the next owner's Alloc before this Free.
            let ev = Event::free(t.tid(), real::stamp_ns(), p as u64, f.header.size);
            recorder::push(ev, &[]);
        }
        region::release(f);
    }
}

/// Records that the interpreter began finalizing, in order with the frees that follow it.
fn mark_finalizing(tid: u32) {
    recorder::push(
        Event::new(EventKind::PyFinalizing, tid, real::stamp_ns(), 0, 0),
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
        if let Decision::Record = decide::free(t) {
            let tid = t.tid();
            if python::finalizing_started() {
                mark_finalizing(tid);
            }
            recorder::push(Event::free(tid, real::stamp_ns(), p as u64, 0), &[]);
        }
    }
    // SAFETY: `p` is glibc's (not in our region).
    unsafe { underlying::free(p) }
}

/// The slow path of `realloc`: a trampoline, as [`alloc_slow`] is.
///
/// # Safety
/// As for realloc.
#[unsafe(naked)]
pub unsafe extern "C" fn realloc_slow(p: *mut c_void, size: usize) -> *mut c_void {
    // The two arguments stay in rdi and rsi; rdx and rcx take the entry's registers.
    core::arch::naked_asm!(
        "mov rdx, rsp",
        "mov rcx, rbp",
        "jmp {at}",
        at = sym realloc_slow_at,
    )
}

/// `realloc_slow`'s body, with the registers it was entered with.
///
/// # Safety
/// As for realloc; `sp` and `bp` as for [`alloc_slow_at`].
#[cold]
#[inline(never)]
unsafe extern "C" fn realloc_slow_at(p: *mut c_void, size: usize, sp: u64, bp: u64) -> *mut c_void {
    let entry = Some(Entry { sp, bp });
    if p.is_null() {
        // SAFETY: realloc(NULL, n) is malloc(n), entered from the same caller.
        return unsafe { alloc_slow_at(size, 16, Kind::Malloc, sp, bp) };
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
    match decide::allocation(t, size as u64) {
        // SAFETY: `p` is live with `old_size` bytes, sampled or not as `sampled` says.
        Decision::Skip => unsafe { realloc_unrecorded(t, p, size, old_size, sampled.is_some()) },
        Decision::Sample => {
            let q = sample_into_region(t, size, 16, Kind::Realloc, entry);
            if q.is_null() {
                // SAFETY: no region slot: fall back to glibc's realloc semantics.
                let r = unsafe { realloc_unrecorded(t, p, size, old_size, sampled.is_some()) };
                if !r.is_null() {
                    state::count(&state::REGION_FULL);
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
            // Queue the Free first: once glibc releases `p`, another thread may get it back.
            let ev = Event::free(t.tid(), real::stamp_ns(), p as u64, old_size as u64);
            recorder::push(ev, &[]);
            // SAFETY: forwarding a glibc pointer (no region in `all` mode).
            let q = unsafe { underlying::realloc(p, size) };
            // On failure `p` is still live: record it again.
            let (addr, n) = if q.is_null() {
                (p, old_size)
            } else {
                (q, size)
            };
            record_alloc(t, addr, n, Kind::Realloc, entry);
            q
        }
    }
}

/// Serves a sampled allocation from the region and records it; null (counted) when the region
/// cannot serve it.
fn sample_into_region(
    t: Thread,
    size: usize,
    align: usize,
    kind: Kind,
    entry: Option<Entry>,
) -> *mut c_void {
    let mut buf = MaybeUninit::uninit();
    let stack = stack_of(&mut buf, entry);
    let tid = t.tid();
    let now = real::stamp_ns();
    let p = region::alloc(NewSlot {
        size,
        align,
        kind: kind.index(),
        t: now,
        tid,
        fork_gen: state::fork_generation(),
        frames: stack.native(),
        zero: kind == Kind::Calloc,
    });
    if !p.is_null() {
        name_thread(t, tid);
        push_alloc(
            t,
            stack.event(kind, tid, p as u64, size as u64, now),
            stack.all(),
        );
    }
    p
}

/// realloc without recording the result.
///
/// # Safety
/// `p` is live with `old_size` usable bytes; `sampled` says whether it is a region pointer.
unsafe fn realloc_unrecorded(
    t: Thread,
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
pub unsafe fn malloc_usable_size(p: *mut c_void) -> usize {
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
    match decide::allocation(t, len as u64) {
        Decision::Skip => {}
        Decision::Sample | Decision::Record => record_alloc(t, p, len, Kind::Mmap, None),
    }
}

/// Records an unmapped range (the CLI clips the recorded mappings it overlaps).
pub fn after_munmap(p: *mut c_void, len: usize) {
    if !state::running() {
        return;
    }
    let t = thread::current();
    let Some(_busy) = Busy::enter(t) else { return };
    let ev = Event::new(
        EventKind::Munmap,
        t.tid(),
        real::stamp_ns(),
        p as u64,
        len as u64,
    );
    recorder::push(ev, &[]);
}

/// After a fork, in the child: new thread id, reseed on the next sample.
pub fn after_fork_child() {
    let t = thread::current();
    t.set_cached_tid(0);
    t.set_countdown(0);
    t.lower(FLAG_NAMED);
    // The child's capture starts with no stack known for any thread.
    t.forget_stack();
}
