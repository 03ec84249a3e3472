//! The lock-free ring that carries events from application threads to the writer thread.
//!
//! A bounded multi-producer, single-consumer queue in 64-byte units. A producer claims the units
//! its event needs (a 3-frame stack takes 1, a 10-frame one 2, a deep Python one 15) with one
//! CAS on `enqueue`, fills them, and publishes the event by storing `pos + 1` into its head
//! unit's first word. When the claim would pass the units the consumer has released, the ring is
//! full and the producer drops the event (counted) instead of waiting.
//!
//! The consumer never writes to the units, and publishes how far it has read (`released`) once
//! per batch, not per event: a producer's push is then a few loads from lines it already holds
//! and stores the store buffer absorbs. (A Vyukov ring, where the consumer marks every unit free
//! again, made each push wait for lines the writer's core had just written: more than half of a
//! sample's cost on the application thread.) Fixed-size slots with room for the deepest stack
//! made every event cost 3 KiB of ring; units keep it to what the event needs. The memory is
//! mapped with a raw system call, so nothing here allocates.

use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, Ordering};

use super::event::{Event, MAX_STACK_WORDS};
use crate::sys::real;

/// One cache line of the ring. An event takes a head unit (sequence, the event packed in 32
/// bytes, three frame words) and as many continuation units as its frames need (seven words
/// each, after a first word left alone: it keeps an old sequence number, never a live one).
/// Packing the event into 32 bytes (40 as an `Event`, plus two counts) made room for three
/// frame words instead of one: a shallow C stack's sample now takes one line, not two.
const UNIT: usize = 64;
/// Frame words in the head unit and in each continuation unit.
const HEAD_WORDS: usize = (UNIT - core::mem::size_of::<SlotHead>()) / 8;
const CONT_WORDS: usize = UNIT / 8 - 1;

#[repr(C)]
struct SlotHead {
    /// `pos + 1` once the event whose head is at ring position `pos` is published. Any other
    /// value (zero in a fresh mapping, an older lap's position) means not yet: positions only
    /// grow, so a stale value never equals it.
    seq: AtomicU64,
    tid: u32,
    /// kind, alloc_kind, nframes and the frame words stored; see [`Meta`].
    meta: u32,
    t: u64,
    addr: u64,
    size: u64,
}

const _: () = assert!(core::mem::size_of::<SlotHead>() == 40 && HEAD_WORDS == 3);

/// The small fields of an event in one word: nframes (9 bits), frame words stored (10), kind
/// (4) and alloc_kind (8, its INHERITED flag included).
struct Meta;

impl Meta {
    const WORDS_SHIFT: u32 = 9;
    const KIND_SHIFT: u32 = 19;
    const ALLOC_KIND_SHIFT: u32 = 23;
    /// Most frame words an event can carry (MAX_STACK_WORDS is below it).
    const MAX_WORDS: usize = (1 << 10) - 1;

    fn pack(ev: &Event, words: usize) -> u32 {
        (ev.nframes as u32).min(511)
            | (words as u32) << Self::WORDS_SHIFT
            | (ev.kind as u32 & 0xf) << Self::KIND_SHIFT
            | (ev.alloc_kind as u32) << Self::ALLOC_KIND_SHIFT
    }

    fn words(meta: u32) -> usize {
        (meta >> Self::WORDS_SHIFT & 0x3ff) as usize
    }

    fn event(h: &SlotHead) -> Event {
        Event {
            kind: (h.meta >> Self::KIND_SHIFT & 0xf) as u8,
            alloc_kind: (h.meta >> Self::ALLOC_KIND_SHIFT) as u8,
            nframes: (h.meta & 0x1ff) as u16,
            tid: h.tid,
            t: h.t,
            addr: h.addr,
            size: h.size,
        }
    }
}

const _: () = assert!(MAX_STACK_WORDS <= Meta::MAX_WORDS && crate::config::MAX_DEPTH < 512);

/// Units an event of `n` frame words takes.
#[inline(always)]
fn units_for(n: usize) -> u64 {
    if n <= HEAD_WORDS {
        return 1;
    }
    1 + (n - HEAD_WORDS).div_ceil(CONT_WORDS) as u64
}

#[repr(C, align(64))]
pub struct Padded(pub AtomicU64);

/// How far ahead of its claim a producer prefetches the ring's lines, in units.
const PREFETCH_AHEAD: u64 = 64;

/// CPUID.80000001H:ECX.PRFCHW[bit 8]: the CPU executes `prefetchw`.
fn has_prefetchw() -> bool {
    // Leaf 0x8000_0000 gives the highest extended leaf, checked before 0x8000_0001 is asked.
    let max = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    max >= 0x8000_0001 && core::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 8) != 0
}

/// The ring's control block; lives at the start of its own mapping.
#[repr(C)]
pub struct Ring {
    /// Next position producers claim.
    enqueue: Padded,
    /// Next position the consumer reads (only the consumer writes it).
    dequeue: Padded,
    /// Units before this position are free again: the consumer's `dequeue` as of its last
    /// [`Ring::release`]. Producers read it on every push; it changes a few times per lap.
    released: Padded,
    /// Events dropped because the ring was full.
    pub dropped: Padded,
    units: *mut u8,
    /// The CPU has `prefetchw` (CPUID PRFCHW): producers prefetch for writing.
    write_hint: bool,
    mask: u64,
    /// Most frame words an event may carry (more are cut).
    words: usize,
    map_len: usize,
}

// SAFETY: all shared mutation goes through atomics; unit contents are handed from one producer
// to the consumer by the Release/Acquire pair on the head unit's sequence number.
unsafe impl Sync for Ring {}

impl Ring {
    /// Maps a ring of `capacity` (a power of two) 64-byte units; events carry up to `words`
    /// frame words. Returns null when the kernel refuses the memory.
    pub fn create(capacity: usize, words: usize) -> *mut Ring {
        let words = words
            .min((capacity - 1) * CONT_WORDS + HEAD_WORDS)
            .min(Meta::MAX_WORDS);
        let head = core::mem::size_of::<Ring>().next_multiple_of(4096);
        let map_len = head + UNIT * capacity;
        let Some(base) = real::map_anon(map_len) else {
            return core::ptr::null_mut();
        };
        let ring = base as *mut Ring;
        // SAFETY: the mapping is large enough, zeroed, and 4096-aligned; nothing else sees it yet.
        unsafe {
            ring.write(Ring {
                enqueue: Padded(AtomicU64::new(0)),
                dequeue: Padded(AtomicU64::new(0)),
                released: Padded(AtomicU64::new(0)),
                dropped: Padded(AtomicU64::new(0)),
                units: base.add(head),
                write_hint: has_prefetchw(),
                mask: capacity as u64 - 1,
                words,
                map_len,
            });
        }
        ring
    }

    /// Unmaps a ring nobody uses any more (the child's copy of its parent's ring).
    ///
    /// # Safety
    /// `ring` came from [`Ring::create`] and no thread can touch it again.
    pub unsafe fn destroy(ring: *mut Ring) {
        // SAFETY: per the contract, the mapping is ours and dead.
        unsafe { real::munmap(ring as *mut c_void, (*ring).map_len) };
    }

    fn unit(&self, pos: u64) -> *mut u8 {
        // SAFETY: (pos & mask) < capacity, and every unit lies inside the mapping.
        unsafe { self.units.add((pos & self.mask) as usize * UNIT) }
    }

    fn seq_cell(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: every unit starts with its sequence word, an aligned AtomicU64.
        unsafe { &*(self.unit(pos) as *const AtomicU64) }
    }

    /// Copies the `n` frame words of the event whose head is at `pos` from `buf` into the ring
    /// (`into_ring`) or out of it into `buf`: a straight copy per unit (the head's three words,
    /// then seven per continuation unit), not an address computed per word.
    ///
    /// # Safety
    /// The caller owns the event's units (a producer between claim and publish, or the consumer
    /// of a published event) and `buf` holds `n` words.
    #[inline(always)]
    unsafe fn copy_words(&self, pos: u64, buf: *mut u64, n: usize, into_ring: bool) {
        let mut done = 0;
        let mut unit = pos;
        let mut off = core::mem::size_of::<SlotHead>() / 8;
        while done < n {
            let take = (n - done).min(UNIT / 8 - off);
            // SAFETY: `take` words from word `off` stay inside the unit; `buf` holds `n` words
            // (the caller's contract); ring units and the caller's buffer never overlap.
            unsafe {
                let ring = (self.unit(unit) as *mut u64).add(off);
                let other = buf.add(done);
                if into_ring {
                    core::ptr::copy_nonoverlapping(other, ring, take);
                } else {
                    core::ptr::copy_nonoverlapping(ring, other, take);
                }
            }
            done += take;
            unit += 1;
            off = 1;
        }
    }

    /// Publishes one event; false (and counted) when the ring is full. `words` are the event's
    /// `nframes` native frames then its Python frames (anything beyond the ring's word limit is
    /// cut). With `patience_ns` 0 it never waits; otherwise a full ring is retried
    /// (sleeping 20 us at a time) as long as the consumer keeps freeing units, and dropped once it
    /// has freed none for that long.
    ///
    /// Returns None when the event was dropped, else whether more than half the ring awaited
    /// the consumer as this event was claimed (the producer then wakes it early). That comes
    /// from the counters the claim read: loading them again after the event missed in the
    /// cache (`released` is the consumer's), 18% of `all` mode's Alloc push in `perf`.
    #[inline(always)]
    pub fn push(&self, ev: Event, words: &[u64], patience_ns: u64) -> Option<bool> {
        let n = words.len().min(self.words);
        let k = units_for(n);
        let (pos, released) = match self.claim(k) {
            Some(claimed) => claimed,
            None => match self.claim_patiently(k, patience_ns) {
                Some(claimed) => claimed,
                None => {
                    // Relaxed: a statistic.
                    self.dropped.0.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            },
        };
        // SAFETY: we own units pos..pos+k between claiming them and publishing the head: the
        // consumer released them (it reads them again only after seeing the head's seq ==
        // pos + 1), and no other producer can claim them.
        unsafe {
            let head = self.unit(pos) as *mut SlotHead;
            (*head).tid = ev.tid;
            (*head).meta = Meta::pack(&ev, n);
            (*head).t = ev.t;
            (*head).addr = ev.addr;
            (*head).size = ev.size;
            // The words are only read: `into_ring` copies from `buf`.
            self.copy_words(pos, words[..n].as_ptr().cast_mut(), n, true);
        }
        // Release: makes the event visible to the consumer that Acquires seq.
        self.seq_cell(pos).store(pos + 1, Ordering::Release);
        self.prefetch(pos + k + PREFETCH_AHEAD, self.write_hint);
        Some(pos + k - released > self.capacity() / 2)
    }

    /// Asks for the unit at `pos` ahead of its use: for writing (`prefetchw`, which also takes
    /// the line from the consumer's cache) when `write` and the CPU has it, else for reading.
    /// (The writer does not prefetch: close behind the producers, its prefetch would take back
    /// lines they are about to write.)
    /// A producer's store to a unit the writer read a lap ago misses; the locked claim of the
    /// next event then waited for that store to drain (half of a push's time in `perf` on the
    /// 16 B-128 KiB loop at `all`). Asked for 64 units (4 KiB) ahead, the line is there by then.
    #[inline(always)]
    fn prefetch(&self, pos: u64, write: bool) {
        let p = self.unit(pos);
        // SAFETY: prefetches are hints: they touch no memory architecturally and fault on
        // nothing; `p` is inside the ring's mapping anyway.
        unsafe {
            if write {
                core::arch::asm!("prefetchw [{p}]", p = in(reg) p, options(nostack, preserves_flags));
            } else {
                core::arch::asm!("prefetcht0 [{p}]", p = in(reg) p, options(nostack, preserves_flags));
            }
        }
    }

    /// Claims `k` units; None when the ring has no room for them. Returns where they start and
    /// the consumer's release count the claim was checked against.
    #[inline(always)]
    fn claim(&self, k: u64) -> Option<(u64, u64)> {
        // Relaxed: the CAS below orders claims; the head unit's seq orders the data.
        let mut pos = self.enqueue.0.load(Ordering::Relaxed);
        loop {
            // Acquire: the consumer has finished reading every unit before `released`.
            let released = self.released.0.load(Ordering::Acquire);
            if pos + k > released + self.capacity() {
                return None;
            }
            match self.enqueue.0.compare_exchange_weak(
                pos,
                pos + k,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((pos, released)),
                Err(actual) => pos = actual,
            }
        }
    }

    /// A full ring: waits (sleeping 20 us at a time) while the consumer makes progress, and
    /// gives up after `patience_ns` without any (it may be blocked on something this thread
    /// holds). Out of line: the common push never comes here.
    #[cold]
    #[inline(never)]
    fn claim_patiently(&self, k: u64, patience_ns: u64) -> Option<(u64, u64)> {
        if patience_ns == 0 {
            return None;
        }
        let (mut deadline, mut seen) = (0, u64::MAX);
        loop {
            if let Some(claimed) = self.claim(k) {
                return Some(claimed);
            }
            // Acquire: as in claim().
            let released = self.released.0.load(Ordering::Acquire);
            let now = real::now_ns();
            if released != seen {
                deadline = now + patience_ns;
                seen = released;
            }
            if now >= deadline {
                return None;
            }
            real::sleep_us(20);
        }
    }

    /// Units the consumer has read so far (a running count; the writer paces itself by it).
    pub fn consumed(&self) -> u64 {
        // Relaxed: a progress count, read by the consumer itself.
        self.dequeue.0.load(Ordering::Relaxed)
    }

    /// Units claimed by producers so far (published or still being written): every event
    /// claimed before this call lies below it.
    pub fn claimed(&self) -> u64 {
        // Acquire: a claim that happened before (say, before a producer's release of its arena
        // reservation that the caller has seen) is counted.
        self.enqueue.0.load(Ordering::Acquire)
    }

    /// Units in the ring.
    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Hands the next published event to `f`; false when none is ready. Single consumer only.
    /// Its units are given back to producers at the next [`Ring::release`] (or once an eighth
    /// of the ring awaits release, so a long drain keeps room for waiting producers).
    pub fn pop(&self, f: impl FnOnce(&Event, &[u64])) -> bool {
        // Relaxed: only the consumer writes `dequeue`.
        let pos = self.dequeue.0.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's Release publish.
        if self.seq_cell(pos).load(Ordering::Acquire) != pos + 1 {
            return false;
        }
        // Left uninitialised beyond what is copied in: zeroing 3 KiB per event cost the writer
        // more than the rest of its work on the event.
        let mut frames = [core::mem::MaybeUninit::<u64>::uninit(); MAX_STACK_WORDS];
        // SAFETY: a published event, owned by the consumer until it releases its units; the
        // first `n` words of `frames` are written before they are read as initialised.
        let (ev, words, k) = unsafe {
            let head = &*(self.unit(pos) as *const SlotHead);
            let stored = Meta::words(head.meta);
            let n = stored.min(frames.len());
            self.copy_words(pos, frames.as_mut_ptr().cast::<u64>(), n, false);
            let words = core::slice::from_raw_parts(frames.as_ptr().cast::<u64>(), n);
            (Meta::event(head), words, units_for(stored))
        };
        f(&ev, words);
        self.dequeue.0.store(pos + k, Ordering::Relaxed);
        // Relaxed: the consumer's own earlier store.
        if pos + k - self.released.0.load(Ordering::Relaxed) >= self.capacity() / 8 {
            self.release();
        }
        true
    }

    /// Gives every unit read so far back to producers. Consumer only.
    pub fn release(&self) {
        // Release: our reads of those units are done before a producer may overwrite them.
        self.released
            .0
            .store(self.dequeue.0.load(Ordering::Relaxed), Ordering::Release);
    }
}

/// This process's ring, once its capture started.
static CURRENT: core::sync::atomic::AtomicPtr<Ring> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Makes `ring` this process's ring. Release: a thread that loads it sees it initialised.
pub fn install(ring: *mut Ring) {
    CURRENT.store(ring, Ordering::Release);
}

/// This process's ring, if its capture started.
#[inline]
pub fn current() -> Option<&'static Ring> {
    // Acquire: pairs with install().
    let ring = CURRENT.load(Ordering::Acquire);
    // SAFETY: a non-null CURRENT points at a live ring: it is only replaced (and the old one
    // unmapped) in a fork child, which is single-threaded at that moment.
    (!ring.is_null()).then(|| unsafe { &*ring })
}

/// In a fork child (single-threaded): unmaps the parent's ring; the child's capture makes its own.
pub fn forget_in_fork_child() {
    let ring = CURRENT.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !ring.is_null() {
        // SAFETY: the parent's writer thread does not exist in the child; no one else runs.
        unsafe { Ring::destroy(ring) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(addr: u64) -> Event {
        Event::alloc(memshim_format::AllocKind::Malloc, 0, 1, 0, addr, 8)
    }

    #[test]
    fn events_of_every_size_wrap_around_intact() {
        // SAFETY: a fresh ring, never destroyed in this test.
        let r = unsafe { &*Ring::create(64, 300) };
        for round in 0..50u64 {
            // Sizes that take 1 to 9 units, so events straddle the end of the ring.
            let sizes = [0usize, 1, 2, 8, 9, 15, 16, 30, 57];
            let mut pushed = Vec::new();
            for (j, &n) in sizes.iter().enumerate() {
                let words: Vec<u64> = (0..n as u64)
                    .map(|w| round << 32 | (j as u64) << 16 | w)
                    .collect();
                if r.push(ev(round * 100 + j as u64), &words, 0).is_some() {
                    pushed.push((round * 100 + j as u64, words));
                }
            }
            assert!(!pushed.is_empty());
            for (addr, words) in pushed {
                assert!(r.pop(|e, f| {
                    assert_eq!(e.addr, addr);
                    assert_eq!(f, &words[..]);
                }));
            }
            assert!(!r.pop(|_, _| unreachable!()));
            r.release();
        }
    }

    #[test]
    fn a_push_says_when_more_than_half_the_ring_awaits_the_consumer() {
        // SAFETY: a fresh ring, never destroyed in this test.
        let r = unsafe { &*Ring::create(64, 1) };
        let halves: Vec<bool> = (0..40).map(|n| r.push(ev(n), &[], 0).unwrap()).collect();
        // One unit each: from the 33rd event on, more than 32 of the 64 units are claimed.
        assert_eq!(halves.iter().position(|&h| h), Some(32));
        assert!(halves[32..].iter().all(|&h| h));
        for _ in 0..20 {
            assert!(r.pop(|_, _| {}));
        }
        r.release();
        assert_eq!(
            r.push(ev(99), &[], 0),
            Some(false),
            "21 of 64 units await the consumer"
        );
    }

    #[test]
    fn popped_units_come_back_only_when_released() {
        // SAFETY: a fresh ring, never destroyed in this test.
        let r = unsafe { &*Ring::create(64, 1) };
        let mut n = 0;
        while r.push(ev(n), &[], 0).is_some() {
            n += 1;
        }
        assert_eq!(n, 64, "one unit per event");
        // Five reads: under the eighth of the ring that releases by itself.
        for i in 0..5 {
            assert!(r.pop(|e, _| assert_eq!(e.addr, i)));
        }
        assert!(
            r.push(ev(100), &[], 0).is_none(),
            "read but not released: still the consumer's"
        );
        r.release();
        for i in 0..5 {
            assert!(r.push(ev(200 + i), &[], 0).is_some());
        }
        assert!(r.push(ev(300), &[], 0).is_none());
        // Everything arrives in order, the reused units intact.
        for i in 5..64 {
            assert!(r.pop(|e, _| assert_eq!(e.addr, i)));
        }
        for i in 0..5 {
            assert!(r.pop(|e, _| assert_eq!(e.addr, 200 + i)));
        }
        assert!(!r.pop(|_, _| unreachable!()));
    }

    #[test]
    fn a_patient_push_waits_for_room_then_gives_up() {
        // SAFETY: a fresh ring, never destroyed in this test.
        let r = unsafe { &*Ring::create(2, 1) };
        assert!(r.push(ev(1), &[], 0).is_some() && r.push(ev(2), &[], 0).is_some());
        let t = crate::sys::real::now_ns();
        assert!(
            r.push(ev(3), &[], 2_000_000).is_none(),
            "nobody makes room: dropped"
        );
        assert!(
            crate::sys::real::now_ns() - t >= 2_000_000,
            "after waiting its patience"
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                assert!(r.pop(|e, _| assert_eq!(e.addr, 1)));
                r.release();
            });
            assert!(
                r.push(ev(4), &[], 1_000_000_000).is_some(),
                "room made while waiting"
            );
        });
        assert_eq!(r.dropped.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn fifo_and_full() {
        // SAFETY: a fresh ring, never destroyed in this test.
        let r = unsafe { &*Ring::create(8, 8) };
        assert_eq!(
            (units_for(3), units_for(4), units_for(10), units_for(11)),
            (1, 2, 2, 3)
        );
        for i in 0..4 {
            assert!(r.push(ev(i), &[i, i + 1, i + 2, i + 3], 0).is_some());
        }
        assert!(r.push(ev(9), &[], 0).is_none());
        assert_eq!(r.dropped.0.load(Ordering::Relaxed), 1);
        for i in 0..4 {
            assert!(r.pop(|e, f| {
                assert_eq!(e.addr, i);
                assert_eq!(f, &[i, i + 1, i + 2, i + 3]);
            }));
        }
        assert!(!r.pop(|_, _| unreachable!()));
    }

    #[test]
    fn every_field_survives_the_packing() {
        // SAFETY: a fresh ring, never destroyed in this test.
        let r = unsafe { &*Ring::create(64, 400) };
        let words: Vec<u64> = (0..300).collect();
        let sent = Event {
            t: u64::MAX - 1,
            ..Event::inherited(3, 256, 4_194_303, 0x7fff_ffff_f000, 1 << 40)
        };
        assert!(r.push(sent, &words, 0).is_some());
        assert!(r.pop(|e, f| {
            assert_eq!(f, &words[..]);
            assert_eq!(
                (e.kind, e.alloc_kind, e.nframes, e.tid, e.t, e.addr, e.size),
                (
                    sent.kind,
                    sent.alloc_kind,
                    sent.nframes,
                    sent.tid,
                    sent.t,
                    sent.addr,
                    sent.size
                )
            );
        }));
    }

    #[test]
    fn many_producers_lose_nothing_but_what_they_count() {
        let r = Ring::create(1024, 4) as usize;
        // SAFETY: the ring is never destroyed, so the address stays valid for every thread.
        let ring = move || unsafe { &*(r as *const Ring) };
        let producers: Vec<_> = (0..4)
            .map(|p| {
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    for i in 0..20_000u64 {
                        if ring().push(ev(p << 32 | i), &[i], 0).is_some() {
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        let mut got = 0u64;
        let mut last = [None::<u64>; 4];
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                loop {
                    // Acquire: once producers are done, everything they pushed is visible.
                    let finished = done.load(Ordering::Acquire);
                    let popped = ring().pop(|e, f| {
                        let (p, i) = ((e.addr >> 32) as usize, e.addr & 0xffff_ffff);
                        assert_eq!(f, &[i]);
                        // Each producer's events arrive in its own order.
                        assert!(last[p].is_none_or(|l| l < i));
                        last[p] = Some(i);
                        got += 1;
                    });
                    if !popped {
                        // As the writer does after each drain.
                        ring().release();
                        if finished {
                            break;
                        }
                    }
                }
            });
            let pushed: u64 = producers.into_iter().map(|h| h.join().unwrap()).sum();
            assert!(pushed > 0);
            done.store(true, Ordering::Release);
        });
        let dropped = ring().dropped.0.load(Ordering::Relaxed);
        assert_eq!(got + dropped, 80_000);
    }
}
