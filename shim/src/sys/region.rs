//! The region that serves sampled allocations, so that `free` can tell a sampled pointer from any
//! other by a range check on constants: no memory access, no lookup (the tcmalloc approach).
//!
//! The region is one reservation of address space at a fixed address, split into zones; zone `c`
//! holds slots of `4096 << c` bytes, each aligned to its size. A slot starts with a [`SlotHeader`]
//! (what was allocated, when, by whom, and its stack), then the user's bytes. Because slots are
//! aligned to their size, the slot of any user pointer `p` is `(p - 1)` rounded down to the slot
//! size: no lookup table. Free slots of a zone form a lock-free stack (Treiber, with a generation
//! tag against ABA); fresh slots come from a per-zone bump index.
//!
//! Nothing is reserved up front: the range is only claimed (checked free at start), and memory
//! is mapped into it as it is used (`MAP_FIXED_NOREPLACE`, which never replaces a mapping):
//! small zones a megabyte at a time, big slots (over a megabyte) one header page each plus,
//! per allocation, just the pages it uses, unmapped again when it is freed (unless kept
//! resident, below). So the region's address space is what the samples use, as glibc's heap
//! would be: a process under an address-space limit (`ulimit -v`, `RLIMIT_AS`) is profiled, and
//! its allocations fail where they would without the shim. A mapping the limit refuses first
//! gives back the freed slots kept resident, then fails the sample, which glibc then serves or
//! refuses as it would have. A big slot that needs pages first takes them from a free big slot
//! kept resident, of any zone (`mremap` moves them, already faulted in): the resident memory
//! follows the sizes in use, as a freed chunk of glibc's heap serves the next block of any size.
//!
//! The headers double as the table of live samples: a forked child walks them to learn what it
//! inherited.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::sys::real;

/// Start of the reservation: far below where Linux places mmaps (top-down from 0x7f..) and far
/// above the executable and its heap (0x55.. for PIE is above, non-PIE at 0x400000 below).
pub const BASE: usize = 0x2000_0000_0000;
const ZONE_SHIFT: u32 = 40;
const ZONE_SIZE: usize = 1 << ZONE_SHIFT;
/// Slots from 4 KiB to 512 GiB: any allocation the machine could make fits one.
pub const ZONES: usize = 28;
/// The reservation: 32 TiB from BASE (0x2000_0000_0000 to 0x4000_0000_0000, below PIE
/// executables at 0x55..), PROT_NONE until used, so it costs no memory. Its 28 zones use the
/// first 28 TiB; the rest rounds the range to a power of two aligned to itself, so that
/// "is this pointer ours" is `p >> 45 == 1`: two instructions on every free.
pub const REGION_LEN: usize = 1 << REGION_SHIFT;
const REGION_SHIFT: u32 = 45;
const _: () = assert!(BASE == 1 << REGION_SHIFT && ZONES * ZONE_SIZE <= REGION_LEN);
const PAGE: usize = 4096;
const COMMIT_BYTES: usize = 1 << 20;
const CACHE_LINE: usize = 64;
/// Blocks from this size on are coloured (the page of room is then under 6% of the block).
const COLOUR_FROM: usize = 64 << 10;

const MAGIC: u64 = 0x6d65_6d73_6869_6d31; // "memshim1"
const LIVE: u32 = 1;
const FREE: u32 = 2;

/// Front of every slot. Frames (`nframes` u64 return addresses) follow it directly.
#[repr(C)]
#[derive(Debug)]
pub struct SlotHeader {
    pub magic: u64,
    state: AtomicU32,
    /// Fork generation at allocation: a child reports slots from older generations as inherited.
    pub fork_gen: u32,
    /// Free-list link: index + 1 of the next free slot, 0 for none.
    next: AtomicU64,
    pub user: u64,
    pub size: u64,
    pub t: u64,
    pub tid: u32,
    pub kind: u8,
    /// 1 when the slot was freed without MADV_DONTNEED (its pages are resident, not zero).
    resident: u8,
    pub nframes: u16,
    /// Big slots: bytes mapped from the slot's start (0 means the header page alone).
    mapped: u64,
    /// The newest fork generation whose capture has reported this allocation as inherited:
    /// whoever moves it forward (the child's writer walking the region, or the child freeing the
    /// slot first) reports it, exactly once per generation.
    reported_gen: AtomicU32,
}

const HEADER: usize = core::mem::size_of::<SlotHeader>();

impl SlotHeader {
    /// Claims the report of this inherited allocation for generation `gen`; true for the one
    /// caller that must report it.
    pub fn claim_inherited(&self, gen: u32) -> bool {
        // AcqRel: one claimant per generation; it must see the header it reports.
        self.fork_gen < gen && self.reported_gen.swap(gen, Ordering::AcqRel) < gen
    }

    /// The stack recorded with this allocation.
    pub fn frames(&self) -> &[u64] {
        // SAFETY: `nframes` frames were written right after the header when the slot was filled.
        unsafe {
            core::slice::from_raw_parts(
                (self as *const Self as *const u8).add(HEADER) as *const u64,
                self.nframes as usize,
            )
        }
    }
}

struct Zone {
    bump: AtomicU64,
    committed: AtomicU64,
    free: AtomicU64,
    /// Held by the one thread mapping units into the zone (a try-lock: a sample that finds it
    /// held is served by the allocator underneath instead of waiting).
    committing: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const ZONE_INIT: Zone = Zone {
    bump: AtomicU64::new(0),
    committed: AtomicU64::new(0),
    free: AtomicU64::new(0),
    committing: AtomicBool::new(false),
};
static ZONE_STATE: [Zone; ZONES] = [ZONE_INIT; ZONES];
static RESERVED: AtomicBool = AtomicBool::new(false);
/// Bytes of freed slots kept resident for reuse instead of being returned to the kernel.
static RETAINED: AtomicUsize = AtomicUsize::new(0);
/// At most this much freed slot memory stays resident. Big allocations are nearly always sampled:
/// returning their pages on every free would make every reuse fault them all in again (a service
/// that allocates a few-MB array per request ran 4.7x slower that way), where glibc would have
/// reused its heap. Beyond this bound, freed slots go back to the kernel. Each free slot is
/// charged what it keeps (see `charge`): a big slot its mapped pages, not its power-of-two size,
/// which let this budget hold as little as half of it in pages.
const RETAIN_LIMIT: usize = 64 << 20;
/// Per zone, when its last sampled allocation was made (coarse clock, ms): a zone unused this
/// long gives its resident free slots back when another zone needs the budget.
static LAST_USE_MS: [AtomicU64; ZONES] = [const { AtomicU64::new(0) }; ZONES];
const IDLE_MS: u64 = 1000;
/// Reclaiming budget from an idle zone releases up to this many of its resident free slots,
/// looking at up to RECLAIM_SCAN from the top of its free list (those released earlier sit on
/// top, put back where they were).
const RECLAIM_DEPTH: usize = 8;
const RECLAIM_SCAN: usize = 64;
/// Freed slots up to this size always stay resident, outside the budget: a slot is at most twice
/// its sample plus a page, so what they keep is bounded by the peak of live small samples, and
/// they are what a busy process samples most (two atomic updates of one shared counter per
/// sample cost more than the rest of the region's bookkeeping).
const RETAIN_FREELY: usize = 64 << 10;

/// True when `p` lies in the region's address range. This is the whole cost `free` pays for an
/// unsampled pointer: a subtraction and a compare against constants.
#[inline(always)]
pub fn contains(p: *const c_void) -> bool {
    p as usize >> REGION_SHIFT == 1
}

/// True once the region is ours; before that, pointers in its range belong to someone else.
pub fn is_reserved() -> bool {
    // Acquire: pairs with the Release in reserve().
    RESERVED.load(Ordering::Acquire)
}

/// Claims the region's range (constructor only); false when something is mapped in it already
/// (nothing of the range is then ours, and the shim runs untraced).
pub fn reserve() -> bool {
    if RESERVED.load(Ordering::Acquire) {
        return true;
    }
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    let taken = maps.lines().any(|l| {
        let Some((range, _)) = l.split_once(' ') else {
            return false;
        };
        let Some((a, b)) = range.split_once('-') else {
            return false;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            return true; // unreadable: assume the worst
        };
        a < BASE + REGION_LEN && BASE < b
    });
    if taken {
        return false;
    }
    // Release: the zone state (all zero) is valid before anyone can see RESERVED.
    RESERVED.store(true, Ordering::Release);
    true
}

/// Maps `len` bytes read-write at `addr` in our range; false when the kernel refuses (ENOMEM
/// under an address-space limit) or something is there already (EEXIST: a mapping the program
/// made at a fixed address in our range, which is never ours to touch; our own committers never
/// map the same unit twice, see `commit`).
fn map_at(addr: usize, len: usize) -> bool {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the result is checked.
    let p = unsafe {
        real::mmap(
            addr as *mut c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p as usize == addr {
        return true;
    }
    if p as isize != -1 {
        // An old kernel took the flag as a hint and mapped elsewhere: give it back.
        // SAFETY: `p` is the mapping just made.
        unsafe { real::munmap(p, len) };
    }
    false
}

/// [`map_at`], giving back the resident free slots and trying once more when the kernel
/// refuses (an address-space limit reached).
fn map_or_reclaim(addr: usize, len: usize) -> bool {
    map_at(addr, len) || (reclaim_all() && map_at(addr, len))
}

/// True for zones whose slots are mapped one by one (header page, then what each allocation
/// uses) rather than a megabyte of slots at a time.
fn big(class: usize) -> bool {
    slot_size(class) > COMMIT_BYTES
}

fn slot_size(class: usize) -> usize {
    PAGE << class
}

fn zone_base(class: usize) -> usize {
    BASE + class * ZONE_SIZE
}

fn slots_in_zone(class: usize) -> u64 {
    (ZONE_SIZE / slot_size(class)) as u64
}

fn slot_addr(class: usize, idx: u64) -> usize {
    zone_base(class) + idx as usize * slot_size(class)
}

fn header_at(addr: usize) -> &'static SlotHeader {
    // SAFETY: callers pass the start of a committed slot, which is mapped read-write for the
    // life of the process and starts with a SlotHeader (or zeroes, which fail the magic check).
    unsafe { &*(addr as *const SlotHeader) }
}

/// Makes slot `idx` of zone `class` usable: maps every unit from the zone's committed mark up
/// to the one holding `idx` (a megabyte of small slots, or a big slot's header page). One
/// committer at a time per zone; false (the sample goes to the allocator underneath) when
/// another thread is committing, or the kernel refuses.
fn commit(class: usize, idx: u64) -> bool {
    let z = &ZONE_STATE[class];
    // Acquire: slots below `committed` were mapped by whoever raised it.
    if idx < z.committed.load(Ordering::Acquire) {
        return true;
    }
    // Acquire: the previous committer's mappings and mark are visible once we hold it.
    if z.committing
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    let ok = commit_locked(class, idx);
    // Release: our mappings and mark for the next committer.
    z.committing.store(false, Ordering::Release);
    ok
}

fn commit_locked(class: usize, idx: u64) -> bool {
    let z = &ZONE_STATE[class];
    // Relaxed: we hold `committing`, whose Acquire ordered the last committer's store.
    let have = z.committed.load(Ordering::Relaxed);
    if idx < have {
        return true;
    }
    let batch = (COMMIT_BYTES / slot_size(class)).max(1) as u64;
    let end = ((idx / batch + 1) * batch).min(slots_in_zone(class));
    let mut unit = have / batch * batch;
    while unit < end {
        let start = slot_addr(class, unit);
        let len = if big(class) {
            PAGE
        } else {
            slot_addr(class, (unit + batch).min(end)) - start
        };
        if !map_or_reclaim(start, len) {
            return false;
        }
        unit += batch;
        // Unit by unit, so a refusal later leaves the mark on what is mapped (never mapped
        // twice). Release: publishes the mapping to threads that Acquire `committed`.
        z.committed.fetch_max(unit.min(end), Ordering::Release);
    }
    true
}

/// A big slot's mapped bytes (at least its header page).
fn mapped_len(h: &SlotHeader) -> usize {
    (h.mapped as usize).max(PAGE)
}

/// Maps a big slot's first `need` bytes (page-rounded); `None` when the kernel refuses, else
/// whether pages that may hold old bytes were moved in (see [`adopt_pages`]). A slot kept
/// resident keeps what it has mapped beyond that while smaller allocations reuse it: trimming it
/// would fault the pages in again at the next larger one (a serving loop's arrays of 1 to 8 MB
/// cost 20% more CPU that way). Its pages are given back when it is freed and not kept.
///
/// # Safety
/// The slot is ours alone (being allocated).
unsafe fn fit_big(start: usize, need: usize) -> Option<bool> {
    let h = start as *mut SlotHeader;
    let need = need.next_multiple_of(PAGE).max(PAGE);
    // SAFETY: the header page is mapped (committed) and the slot ours.
    let have = unsafe { mapped_len(&*h) };
    if need <= have {
        return Some(false);
    }
    let moved = adopt_pages(start, start + have, need - have);
    let from = start + have + moved;
    if from < start + need && !map_or_reclaim(from, start + need - from) {
        // What was moved in stays with the slot (its mark below), for its next use.
        // SAFETY: as above.
        unsafe { (*h).mapped = (have + moved) as u64 };
        return None;
    }
    // SAFETY: as above.
    unsafe { (*h).mapped = need as u64 };
    Some(moved > 0)
}

/// Moves up to `len` bytes of resident pages from a free big slot kept resident (not `own`) to
/// `dst`, unmapped space of the slot at `own` that is being allocated; the bytes moved (0 when
/// no such slot, or the kernel refuses). glibc serves a new block from the memory a freed one of
/// another size left in its heap; without this, each size's zone kept its own resident slots
/// (the budget filled with slots the next size could not use), and a smaller budget meant fresh
/// pages, faulted in and zeroed, on every big sample (a 32 MiB budget: 1.36x CPU on serve-big).
/// mremap moves the pages themselves: no fault, no zeroing. The donor gives from the top of what
/// it has mapped, and keeps the rest.
fn adopt_pages(own: usize, dst: usize, len: usize) -> usize {
    for class in (0..ZONES).rev() {
        if !big(class) {
            break;
        }
        let Some(idx) = pop_free(class) else { continue };
        let donor = slot_addr(class, idx);
        let h = donor as *mut SlotHeader;
        let mut moved = 0;
        // SAFETY: popped, so the donor is ours alone until pushed back; its header page stays.
        unsafe {
            let have = mapped_len(&*h);
            if donor != own && (*h).resident != 0 && have > PAGE {
                let m = len.min(have - PAGE);
                let src = donor + have - m;
                // SAFETY: [src, src + m) is the donor's own mapped range, unused while it is
                // free; [dst, dst + m) is unmapped room of a slot we are allocating (FIXED
                // replaces nothing there). A refusal (the range spans two of the donor's
                // mappings) leaves both as they were.
                let p = real::mremap(
                    src as *mut c_void,
                    m,
                    m,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    dst as *mut c_void,
                );
                if p as usize == dst {
                    moved = m;
                    (*h).mapped = (have - m) as u64;
                    (*h).resident = (have - m > PAGE) as u8;
                    // Relaxed: a budget, not a synchronisation. The donor's charge is its
                    // mapped bytes past the header page (see `charge`).
                    RETAINED.fetch_sub(m, Ordering::Relaxed);
                }
            }
        }
        push_free(class, idx);
        if moved > 0 {
            return moved;
        }
    }
    0
}

fn pop_free(class: usize) -> Option<u64> {
    let z = &ZONE_STATE[class];
    // Acquire: we read the next link of the slot the head names, written before its Release push.
    let mut head = z.free.load(Ordering::Acquire);
    loop {
        let top = head & 0xffff_ffff;
        if top == 0 {
            return None;
        }
        let idx = top - 1;
        // The slot stays mapped forever, so reading a stale link is safe; the tagged CAS fails then.
        let next = header_at(slot_addr(class, idx))
            .next
            .load(Ordering::Relaxed);
        let new = ((head >> 32).wrapping_add(1) << 32) | next;
        match z
            .free
            .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => return Some(idx),
            Err(h) => head = h,
        }
    }
}

fn push_free(class: usize, idx: u64) {
    let z = &ZONE_STATE[class];
    let hdr = header_at(slot_addr(class, idx));
    // Relaxed: the head CAS below orders it.
    let mut head = z.free.load(Ordering::Relaxed);
    loop {
        hdr.next.store(head & 0xffff_ffff, Ordering::Relaxed);
        let new = ((head >> 32).wrapping_add(1) << 32) | (idx + 1);
        // Release: the link store above is visible to whoever pops this slot.
        match z
            .free
            .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => return,
            Err(h) => head = h,
        }
    }
}

/// What a caller describes about a new sampled allocation.
#[derive(Debug, Clone, Copy)]
pub struct NewSlot<'a> {
    pub size: usize,
    pub align: usize,
    pub kind: u8,
    pub t: u64,
    pub tid: u32,
    pub fork_gen: u32,
    pub frames: &'a [u64],
    /// Zero the user's bytes (calloc).
    pub zero: bool,
}

/// Serves a sampled allocation from the region; null when it does not fit or the region is not
/// reserved (the caller then falls back to libc and counts the sample as dropped).
pub fn alloc(req: NewSlot<'_>) -> *mut c_void {
    // Acquire: pairs with reserve().
    if !RESERVED.load(Ordering::Acquire) {
        return core::ptr::null_mut();
    }
    let align = req.align.max(16);
    let offset = (HEADER + req.frames.len() * 8).next_multiple_of(align);
    // Big blocks get a colour: a slot-dependent shift of up to a page, in cache lines. Slots are
    // aligned to their power-of-two size, so without it every sampled array of a size would
    // start at the same offset modulo 4 MiB (say): copies between them then compete for the same
    // cache sets and alias in the store buffer. glibc's chunks have no such common alignment.
    let coloured = req.size >= COLOUR_FROM && align <= CACHE_LINE;
    let room = if coloured { PAGE } else { 0 };
    let Some(total) = offset
        .checked_add(req.size)
        .and_then(|t| t.checked_add(room))
    else {
        return core::ptr::null_mut();
    };
    let size = total.max(align).max(PAGE).next_power_of_two();
    let class = (size / PAGE).trailing_zeros() as usize;
    if class >= ZONES || size < total {
        return core::ptr::null_mut();
    }
    let (idx, fresh) = match pop_free(class) {
        Some(i) => (i, false),
        None => {
            // Relaxed: the index only has to be unique.
            let i = ZONE_STATE[class].bump.fetch_add(1, Ordering::Relaxed);
            if i >= slots_in_zone(class) || !commit(class, i) {
                return core::ptr::null_mut();
            }
            (i, true)
        }
    };
    // Relaxed: a hint for reclaim_idle(); the clock is the sample's coarse stamp. Only zones
    // under the budget, and only when the millisecond changed: a store on every sample would
    // bounce the line between the cores of threads sampling the same size.
    let ms = req.t / 1_000_000;
    if size > RETAIN_FREELY && LAST_USE_MS[class].load(Ordering::Relaxed) != ms {
        LAST_USE_MS[class].store(ms, Ordering::Relaxed);
    }
    let start = slot_addr(class, idx);
    let colour = if coloured {
        (idx as usize * 7 % (PAGE / CACHE_LINE)) * CACHE_LINE
    } else {
        0
    };
    let user = start + offset + colour;
    // SAFETY: the slot is ours alone (popped or freshly bumped) and its header page mapped.
    let hdr = unsafe { &*(start as *const SlotHeader) };
    let was_resident = !fresh && hdr.resident != 0;
    if was_resident && size > RETAIN_FREELY {
        // Relaxed: a budget, not a synchronisation. Before fit_big changes what is mapped.
        RETAINED.fetch_sub(charge(class, hdr), Ordering::Relaxed);
    }
    let fitted = if big(class) {
        // SAFETY: as above; `hdr` is not used past this point.
        unsafe { fit_big(start, user + req.size - start) }
    } else {
        Some(false)
    };
    let Some(recycled) = fitted else {
        // Refused (an address-space limit): the slot goes back, and the sample to the allocator
        // underneath, which refuses or serves it as it would have without the shim.
        // Only big slots get here. What the slot has mapped (its own pages, or pages moved in)
        // stays resident and may hold old bytes: it is kept, and charged again.
        // SAFETY: as above; a zeroed magic marks it as holding no allocation.
        unsafe {
            let h = start as *mut SlotHeader;
            (*h).magic = 0;
            let cost = charge(class, &*h);
            (*h).resident = (cost > 0) as u8;
            // Relaxed: a budget, not a synchronisation.
            RETAINED.fetch_add(cost, Ordering::Relaxed);
        }
        push_free(class, idx);
        return core::ptr::null_mut();
    };
    // SAFETY: the slot is committed, ours alone (popped or freshly bumped), and large enough for
    // header + frames + user bytes (size >= total).
    unsafe {
        let h = start as *mut SlotHeader;
        (*h).magic = MAGIC;
        (*h).fork_gen = req.fork_gen;
        (*h).user = user as u64;
        (*h).size = req.size as u64;
        (*h).t = req.t;
        (*h).tid = req.tid;
        (*h).kind = req.kind;
        (*h).nframes = req.frames.len() as u16;
        (*h).reported_gen.store(req.fork_gen, Ordering::Relaxed);
        core::ptr::copy_nonoverlapping(
            req.frames.as_ptr(),
            (start + HEADER) as *mut u64,
            req.frames.len(),
        );
        if req.zero && (!fresh || recycled) {
            // A retained slot holds old bytes throughout, and so do pages moved in from one;
            // otherwise pages after the first were released (MADV_DONTNEED, munmap) and read as
            // zero, and only the first page can be dirty.
            let dirty_end = if was_resident || recycled {
                user + req.size
            } else {
                (start + PAGE).min(user + req.size)
            };
            if dirty_end > user {
                core::ptr::write_bytes(user as *mut u8, 0, dirty_end - user);
            }
        }
        (*h).resident = 0;
        // Release: a fork walker that sees LIVE sees the header written above.
        (*h).state.store(LIVE, Ordering::Release);
    }
    user as *mut c_void
}

/// A sampled allocation being freed: recorded by the caller, then given back with [`release`].
#[derive(Debug)]
pub struct Freeing {
    class: usize,
    idx: u64,
    pub header: &'static SlotHeader,
}

/// The slot whose user pointer is `p`, if `p` is one the region handed out.
fn locate(p: *const c_void) -> Option<(usize, u64, &'static SlotHeader)> {
    let p = p as usize;
    // Acquire: pairs with reserve(); without a reservation nothing in the range is ours.
    if !contains(p as *const c_void) || !RESERVED.load(Ordering::Acquire) {
        return None;
    }
    let class = p.wrapping_sub(1).wrapping_sub(BASE) >> ZONE_SHIFT;
    if class >= ZONES {
        return None;
    }
    let idx = ((p - 1 - zone_base(class)) / slot_size(class)) as u64;
    // Acquire: as in commit(); a slot above `committed` was never handed out.
    if idx >= ZONE_STATE[class].committed.load(Ordering::Acquire) {
        return None;
    }
    let header = header_at(slot_addr(class, idx));
    (header.magic == MAGIC && header.user == p as u64).then_some((class, idx, header))
}

/// Finds the live sampled allocation `p` and marks it as being freed. `None` for a pointer that is
/// not one (never handed out, or freed twice): the caller must then leave it alone.
pub fn begin_free(p: *const c_void) -> Option<Freeing> {
    let (class, idx, header) = locate(p)?;
    // AcqRel: exactly one free wins the slot; it must see the allocation's header writes.
    header
        .state
        .compare_exchange(LIVE, FREE, Ordering::AcqRel, Ordering::Relaxed)
        .ok()?;
    Some(Freeing { class, idx, header })
}

/// Returns a freed slot to its zone, releasing its memory beyond the first page.
pub fn release(f: Freeing) {
    let start = slot_addr(f.class, f.idx);
    let size = slot_size(f.class);
    let cost = charge(f.class, f.header);
    let keep = size > PAGE
        && (size <= RETAIN_FREELY || retain(cost) || (reclaim_idle(f.class, cost) && retain(cost)));
    // SAFETY: the slot is ours until it is pushed on the free list below.
    unsafe { (*(start as *mut SlotHeader)).resident = keep as u8 };
    if size > PAGE && !keep {
        drop_pages(f.class, start, size);
    }
    push_free(f.class, f.idx);
}

/// Gives back the budget held by resident free slots of zones idle for [`IDLE_MS`] (up to
/// [`RECLAIM_DEPTH`] of each, largest zones first), until `need` bytes are back;
/// true if any were. Without it, a workload whose big sizes shift (another batch size, another
/// model) found the budget held by slots it would never reuse, and paid a release and a refault
/// of every big sample it freed.
fn reclaim_idle(except: usize, need: usize) -> bool {
    reclaim(except, need, IDLE_MS)
}

/// Gives back what every zone keeps resident (an address-space limit was reached); true if
/// anything was.
fn reclaim_all() -> bool {
    reclaim(ZONES, usize::MAX, 0)
}

fn reclaim(except: usize, need: usize, idle_ms: u64) -> bool {
    let now_ms = real::stamp_ns() / 1_000_000;
    let mut back = 0;
    for class in (0..ZONES).rev() {
        let size = slot_size(class);
        // Relaxed: a hint (a zone that just became busy again loses a few resident slots).
        if class == except
            || size <= RETAIN_FREELY
            || now_ms.saturating_sub(LAST_USE_MS[class].load(Ordering::Relaxed)) < idle_ms
        {
            continue;
        }
        let mut taken = [0u64; RECLAIM_SCAN];
        let (mut n, mut released, mut bare_in_a_row) = (0, 0, 0);
        // Released slots go back under the resident ones (below), so a run of them means the
        // zone has no resident slot left within reach: the look ends there instead of
        // rescanning the whole zone on every big free.
        while n < RECLAIM_SCAN && released < RECLAIM_DEPTH && bare_in_a_row < RECLAIM_DEPTH {
            let Some(idx) = pop_free(class) else { break };
            taken[n] = idx;
            n += 1;
            let start = slot_addr(class, idx);
            // SAFETY: popped, so ours alone until pushed back below; the header page stays.
            unsafe {
                let h = start as *mut SlotHeader;
                if (*h).resident != 0 {
                    let cost = charge(class, &*h);
                    drop_pages(class, start, size);
                    (*h).resident = 0;
                    // Relaxed: a budget, not a synchronisation.
                    RETAINED.fetch_sub(cost, Ordering::Relaxed);
                    back += cost;
                    released += 1;
                    bare_in_a_row = 0;
                } else {
                    bare_in_a_row += 1;
                }
            }
        }
        // Back with the released (and bare) slots under the resident ones, each group in its
        // order: the zone reuses its resident slots first, and the next look finds them first.
        for resident_pass in [false, true] {
            for &idx in taken[..n].iter().rev() {
                // SAFETY: popped above, still ours until pushed.
                let resident = unsafe { (*(slot_addr(class, idx) as *const SlotHeader)).resident };
                if (resident != 0) == resident_pass {
                    push_free(class, idx);
                }
            }
        }
        if back >= need {
            break;
        }
    }
    back > 0
}

/// Gives the pages of the slot at `start` after its header page back to the kernel: a big
/// slot's are unmapped (its address space too), a small one's dropped (they read back as
/// zeroes). The caller owns the slot (freeing it, or popped from its free list).
fn drop_pages(class: usize, start: usize, size: usize) {
    if big(class) {
        let h = start as *mut SlotHeader;
        // SAFETY: the slot is ours; its pages past the header are its own, unused now.
        unsafe {
            let have = mapped_len(&*h);
            if have > PAGE {
                real::munmap((start + PAGE) as *mut c_void, have - PAGE);
            }
            (*h).mapped = PAGE as u64;
        }
        return;
    }
    // SAFETY: the range is inside a slot nobody else owns now; DONTNEED on private anonymous
    // memory just drops the pages (they read back as zeroes).
    unsafe {
        real::madvise(
            (start + PAGE) as *mut c_void,
            size - PAGE,
            libc::MADV_DONTNEED,
        )
    };
}

/// What a free slot kept resident holds of the budget: a big slot its pages past the header (what
/// its allocations mapped, which a smaller one reusing it keeps), a small slot its size.
fn charge(class: usize, h: &SlotHeader) -> usize {
    if big(class) {
        mapped_len(h) - PAGE
    } else {
        slot_size(class)
    }
}

/// Reserves `size` bytes of the retention budget; false when it is spent.
fn retain(size: usize) -> bool {
    let mut cur = RETAINED.load(Ordering::Relaxed);
    loop {
        if cur + size > RETAIN_LIMIT {
            return false;
        }
        // Relaxed: a budget, not a synchronisation.
        match RETAINED.compare_exchange_weak(cur, cur + size, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return true,
            Err(c) => cur = c,
        }
    }
}

/// The header of a live sampled allocation `p` (for realloc and malloc_usable_size).
pub fn header_of(p: *const c_void) -> Option<&'static SlotHeader> {
    let (_, _, h) = locate(p)?;
    (h.state.load(Ordering::Acquire) == LIVE).then_some(h)
}

/// Calls `f` for every live sampled allocation made before fork generation `gen`.
pub fn for_each_inherited(gen: u32, mut f: impl FnMut(&SlotHeader)) {
    if !RESERVED.load(Ordering::Acquire) {
        return;
    }
    for (class, zone) in ZONE_STATE.iter().enumerate() {
        let n = zone.committed.load(Ordering::Acquire);
        for idx in 0..n {
            let h = header_at(slot_addr(class, idx));
            if h.magic == MAGIC && h.state.load(Ordering::Acquire) == LIVE && h.claim_inherited(gen)
            {
                f(h);
            }
        }
    }
}
