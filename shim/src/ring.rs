//! The lock-free ring that carries events from application threads to the writer thread.
//!
//! A bounded multi-producer queue after Vyukov: each slot has a sequence number; a producer claims
//! a position with one CAS on `enqueue`, fills the slot, and publishes it by storing `pos + 1` into
//! the slot's sequence. When the writer has not yet freed the slot a lap earlier, the ring is full
//! and the producer drops the event (counted) instead of waiting. Slots are fixed-size (room for the
//! configured stack depth) in memory mapped with a raw system call, so nothing here allocates.

use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::real;

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    Alloc = 1,
    Free = 2,
    Munmap = 3,
    /// `frames` holds the thread's name (16 bytes).
    ThreadName = 4,
    /// Python finalization began.
    PyFinalizing = 5,
    /// A code object's names: `addr`/`size` locate them in the code arena (python.rs).
    PyCode = 6,
    /// The module map right after a dlopen: `addr`/`size` locate a postcard `Record::Modules` in
    /// the arena (arena.rs).
    Modules = 7,
}

impl EventKind {
    /// The kind an event's `kind` byte names.
    pub fn from_u8(k: u8) -> Option<EventKind> {
        use EventKind::*;
        [
            Alloc,
            Free,
            Munmap,
            ThreadName,
            PyFinalizing,
            PyCode,
            Modules,
        ]
        .into_iter()
        .find(|e| *e as u8 == k)
    }
}

/// The fixed part of a slot; `nframes` frames follow it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub kind: u8,
    /// `memshim_format::AllocKind` as its index.
    pub alloc_kind: u8,
    /// Native frames (return addresses) at the start of the slot's word area.
    pub nframes: u16,
    /// Python frames after them, two words each (see python.rs).
    pub npy: u16,
    pub tid: u32,
    pub t: u64,
    pub addr: u64,
    pub size: u64,
}

#[repr(C)]
struct SlotHead {
    /// Vyukov's sequence number minus the slot's index, so that the all-zero memory of a fresh
    /// mapping is the valid initial state and untouched slots cost no memory.
    seq: AtomicU64,
    ev: Event,
    /// Words actually stored after the head.
    words: u32,
}

#[repr(C, align(64))]
pub struct Padded(pub AtomicU64);

/// The ring's control block; lives at the start of its own mapping.
#[repr(C)]
pub struct Ring {
    enqueue: Padded,
    dequeue: Padded,
    /// Events dropped because the ring was full.
    pub dropped: Padded,
    slots: *mut u8,
    stride: usize,
    mask: u64,
    /// Words of frame space per slot.
    words: usize,
    map_len: usize,
}

// SAFETY: all shared mutation goes through atomics; slot contents are handed from one producer to
// the consumer by the Release/Acquire pair on the slot's sequence number.
unsafe impl Sync for Ring {}

impl Ring {
    /// Maps a ring of `capacity` (a power of two) slots with room for `words` frame words each.
    /// Returns null when the kernel refuses the memory.
    pub fn create(capacity: usize, words: usize) -> *mut Ring {
        let stride = (core::mem::size_of::<SlotHead>() + words * 8).next_multiple_of(64);
        let head = core::mem::size_of::<Ring>().next_multiple_of(4096);
        let map_len = head + stride * capacity;
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let base = unsafe {
            real::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base as isize == -1 {
            return core::ptr::null_mut();
        }
        let ring = base as *mut Ring;
        // SAFETY: the mapping is large enough, zeroed, and 4096-aligned; nothing else sees it yet.
        unsafe {
            ring.write(Ring {
                enqueue: Padded(AtomicU64::new(0)),
                dequeue: Padded(AtomicU64::new(0)),
                dropped: Padded(AtomicU64::new(0)),
                slots: (base as *mut u8).add(head),
                stride,
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

    /// The sequence number of the slot for `pos` (see [`SlotHead::seq`]).
    fn seq(&self, pos: u64, order: Ordering) -> u64 {
        self.slot(pos).seq.load(order).wrapping_add(pos & self.mask)
    }

    fn set_seq(&self, pos: u64, seq: u64, order: Ordering) {
        self.slot(pos)
            .seq
            .store(seq.wrapping_sub(pos & self.mask), order)
    }

    fn slot(&self, pos: u64) -> &SlotHead {
        // SAFETY: (pos & mask) < capacity, and every slot lies inside the mapping.
        unsafe { &*(self.slots.add((pos & self.mask) as usize * self.stride) as *const SlotHead) }
    }

    fn frames_ptr(&self, pos: u64) -> *mut u64 {
        // SAFETY: the frames follow the head inside the same slot.
        unsafe {
            self.slots
                .add((pos & self.mask) as usize * self.stride + core::mem::size_of::<SlotHead>())
                as *mut u64
        }
    }

    /// Publishes one event; false (and counted) when the ring is full. `words` are the event's
    /// `nframes` native frames then its `npy` Python frames (callers keep them within the ring's
    /// word capacity; anything beyond is cut). With `patience_ns` 0 it never waits; otherwise a
    /// full ring is retried (sleeping 20 us at a time) for up to that long before dropping.
    pub fn push(&self, ev: Event, words: &[u64], patience_ns: u64) -> bool {
        let n = words.len().min(self.words);
        let mut deadline = 0;
        // Relaxed: the CAS below orders claims; the slot's seq orders the data.
        let mut pos = self.enqueue.0.load(Ordering::Relaxed);
        loop {
            // Acquire: pairs with the consumer's Release when it emptied this slot a lap ago.
            let seq = self.seq(pos, Ordering::Acquire);
            let diff = seq as i64 - pos as i64;
            if diff == 0 {
                match self.enqueue.0.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(actual) => pos = actual,
                }
            } else if diff < 0 {
                if patience_ns > 0 {
                    let now = real::now_ns();
                    if deadline == 0 {
                        deadline = now + patience_ns;
                    }
                    if now < deadline {
                        real::sleep_us(20);
                        pos = self.enqueue.0.load(Ordering::Relaxed);
                        continue;
                    }
                }
                // Relaxed: a statistic.
                self.dropped.0.fetch_add(1, Ordering::Relaxed);
                return false;
            } else {
                pos = self.enqueue.0.load(Ordering::Relaxed);
            }
        }
        let slot = self.slot(pos);
        // SAFETY: we own the slot between claiming `pos` and publishing it; the consumer reads it
        // only after seeing seq == pos + 1.
        unsafe {
            let head = slot as *const SlotHead as *mut SlotHead;
            core::ptr::addr_of_mut!((*head).ev).write(ev);
            core::ptr::copy_nonoverlapping(words.as_ptr(), self.frames_ptr(pos), n);
            (*head).words = n as u32;
        }
        // Release: makes the event visible to the consumer that Acquires seq.
        self.set_seq(pos, pos + 1, Ordering::Release);
        true
    }

    /// Hands the next published event to `f`; false when none is ready. Single consumer only.
    pub fn pop(&self, f: impl FnOnce(&Event, &[u64])) -> bool {
        // Relaxed: only the consumer writes `dequeue`.
        let pos = self.dequeue.0.load(Ordering::Relaxed);
        let slot = self.slot(pos);
        // Acquire: pairs with the producer's Release publish.
        if self.seq(pos, Ordering::Acquire) != pos + 1 {
            return false;
        }
        // SAFETY: published slot, owned by the consumer until it stores the next lap's seq.
        let (ev, frames) = unsafe {
            let ev = &slot.ev;
            (
                ev,
                core::slice::from_raw_parts(self.frames_ptr(pos), slot.words as usize),
            )
        };
        f(ev, frames);
        self.dequeue.0.store(pos + 1, Ordering::Relaxed);
        // Release: the producer that reuses this slot must see our reads finished.
        self.set_seq(pos, pos + self.mask + 1, Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(addr: u64) -> Event {
        Event {
            kind: EventKind::Alloc as u8,
            alloc_kind: 0,
            nframes: 0,
            npy: 0,
            tid: 1,
            t: 0,
            addr,
            size: 8,
        }
    }

    #[test]
    fn every_event_kind_decodes() {
        use EventKind::*;
        for k in [
            Alloc,
            Free,
            Munmap,
            ThreadName,
            PyFinalizing,
            PyCode,
            Modules,
        ] {
            assert_eq!(EventKind::from_u8(k as u8), Some(k));
        }
        assert_eq!(EventKind::from_u8(0), None);
    }

    #[test]
    fn a_patient_push_waits_for_room_then_gives_up() {
        // SAFETY: a fresh ring, never destroyed in this test.
        let r = unsafe { &*Ring::create(2, 1) };
        assert!(r.push(ev(1), &[], 0) && r.push(ev(2), &[], 0));
        let t = crate::real::now_ns();
        assert!(!r.push(ev(3), &[], 2_000_000), "nobody makes room: dropped");
        assert!(
            crate::real::now_ns() - t >= 2_000_000,
            "after waiting its patience"
        );
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                assert!(r.pop(|e, _| assert_eq!(e.addr, 1)));
            });
            assert!(r.push(ev(4), &[], 1_000_000_000), "room made while waiting");
        });
        assert_eq!(r.dropped.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn fifo_and_full() {
        // SAFETY: a fresh ring, never destroyed in this test.
        let r = unsafe { &*Ring::create(4, 8) };
        for i in 0..4 {
            assert!(r.push(ev(i), &[i, i + 1], 0));
        }
        assert!(!r.push(ev(9), &[], 0));
        assert_eq!(r.dropped.0.load(Ordering::Relaxed), 1);
        for i in 0..4 {
            assert!(r.pop(|e, f| {
                assert_eq!(e.addr, i);
                assert_eq!(f, &[i, i + 1]);
            }));
        }
        assert!(!r.pop(|_, _| unreachable!()));
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
                        if ring().push(ev(p << 32 | i), &[i], 0) {
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
                    if !popped && finished {
                        break;
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
