//! Memory where application threads leave variable-sized data for the writer (a code object's
//! names, a module map) and send it a fixed-size event with the offset and length. Mapped on
//! first use, 32 MiB of address space, touched only as filled; when the part in use is full,
//! such data is lost (names unknown) rather than anything blocking.
//!
//! The arena is two halves. Producers fill the active one from its front; after each drain the
//! writer makes the other half active if it is free ([`Recycler`]), and the half it left is
//! free again once no reservation in it is under way and the writer has read every event
//! claimed by then. So a process that keeps sending names (code made at run time) loses some
//! only if it sends 16 MiB between two turns of the writer, not over its whole life, however
//! busy the ring. (A reservation that never ends, its thread gone between reserve and push,
//! say through a signal handler's longjmp, keeps its half busy: names are then lost once the
//! other half is full, never anything blocked.)

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::sys::real;

const ARENA_LEN: usize = 32 << 20;
const HALF: usize = ARENA_LEN / 2;
static ARENA: AtomicUsize = AtomicUsize::new(0);

/// One word, so that a reservation and the writer's switch of halves order by one
/// compare-and-swap: bytes used in the active half (low 32 bits), reservations under way in
/// half 0 and in half 1 (15 bits each, their events not yet pushed), the active half (top bit).
static STATE: AtomicU64 = AtomicU64::new(0);
const USED_MASK: u64 = (1 << 32) - 1;
const COUNT_BITS: u32 = 15;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const ACTIVE_BIT: u32 = 63;

fn count_shift(half: u64) -> u32 {
    32 + half as u32 * COUNT_BITS
}

fn in_flight(s: u64, half: u64) -> u64 {
    s >> count_shift(half) & COUNT_MAX
}

fn active(s: u64) -> u64 {
    s >> ACTIVE_BIT
}

/// Space reserved for one event's data; the reservation ends (drop) once the event is pushed
/// or given up.
pub struct Reservation {
    pub ptr: *mut u8,
    half: u64,
    /// The fork generation it was made in: a child (say forked from a signal handler that
    /// interrupted the reservation) has started the arena afresh and must not count it.
    fork_gen: u32,
}

impl Reservation {
    /// The offset to put in the event; None when the process forked since the reservation (a
    /// fork from a signal handler that interrupted it): the child's arena started afresh and
    /// may hand these bytes out again, so the event must not be sent.
    pub fn offset(&self) -> Option<u64> {
        // Relaxed: as in drop.
        (crate::state::fork_generation() == self.fork_gen)
            .then(|| (self.ptr as usize - ARENA.load(Ordering::Acquire)) as u64)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Relaxed: the generation changes only in a single-threaded fork child.
        if crate::state::fork_generation() == self.fork_gen {
            // Release: the event was pushed (claimed in the ring) before this, for a writer
            // that sees the count at zero.
            STATE.fetch_sub(1 << count_shift(self.half), Ordering::Release);
        }
    }
}

fn base() -> Option<usize> {
    let base = ARENA.load(Ordering::Acquire);
    if base != 0 {
        return Some(base);
    }
    let p = real::map_anon(ARENA_LEN)?;
    match ARENA.compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(p as usize),
        Err(other) => {
            // SAFETY: our own mapping, never shared.
            unsafe { real::munmap(p.cast(), ARENA_LEN) };
            Some(other)
        }
    }
}

/// Reserves `len` bytes for the caller alone; None when the active half is full. Keep the
/// reservation until the event naming it is pushed.
pub fn reserve(len: usize) -> Option<Reservation> {
    let base = base()?;
    // Relaxed: the compare-and-swap below decides.
    let mut s = STATE.load(Ordering::Relaxed);
    loop {
        let half = active(s);
        let used = (s & USED_MASK) as usize;
        if used + len > HALF || in_flight(s, half) == COUNT_MAX {
            return None;
        }
        let next = s + (1 << count_shift(half)) + len as u64;
        // Acquire: the writer read what it had of this half before making it active again.
        match STATE.compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => {
                return Some(Reservation {
                    ptr: (base + half as usize * HALF + used) as *mut u8,
                    half,
                    // Relaxed: as in drop.
                    fork_gen: crate::state::fork_generation(),
                });
            }
            Err(now) => s = now,
        }
    }
}

/// Copies `bytes` into a new reservation.
pub fn put(bytes: &[u8]) -> Option<Reservation> {
    let r = reserve(bytes.len())?;
    // SAFETY: `r.ptr` has bytes.len() bytes reserved for us alone.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), r.ptr, bytes.len()) };
    Some(r)
}

/// The writer's side: switches halves and learns when the one it left is free again. One per
/// writer (a fork child's writer starts with a fresh one, as the child's arena starts afresh).
#[derive(Debug)]
pub struct Recycler {
    /// The inactive half holds nothing the writer still has to read.
    other_free: bool,
    /// Once the inactive half's reservations were all seen ended: the ring's claim count then.
    /// Every event naming that half was claimed below it.
    mark: Option<u64>,
}

impl Default for Recycler {
    fn default() -> Self {
        Recycler {
            other_free: true,
            mark: None,
        }
    }
}

impl Recycler {
    /// After a drain. `claimed` is the ring's claim position now; `consumed`, how far the writer
    /// has read (every event below it is read).
    pub fn step(&mut self, claimed: impl FnOnce() -> u64, consumed: u64) {
        // Acquire: pairs with each reservation's Release end (its event claimed before it).
        let s = STATE.load(Ordering::Acquire);
        if !self.other_free {
            let old = 1 - active(s);
            if self.mark.is_none() && in_flight(s, old) == 0 {
                self.mark = Some(claimed());
            }
            match self.mark {
                Some(m) if consumed >= m => {
                    self.other_free = true;
                    self.mark = None;
                }
                _ => return,
            }
        }
        if s & USED_MASK == 0 {
            return; // nothing in the active half: no need to move
        }
        // The other half becomes active, empty. Its in-flight count is zero (all ended before
        // it was found free, and nobody reserves in an inactive half).
        let next = (s & !USED_MASK) ^ (1 << ACTIVE_BIT);
        // AcqRel: our reads of the half we hand out again come before its reuse.
        if STATE
            .compare_exchange(s, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.other_free = false;
        }
    }
}

/// In a forked child: the parent's events went with its ring, and reservations of its other
/// threads will never end.
pub fn after_fork_child() {
    STATE.store(0, Ordering::Relaxed);
}

/// The bytes an event points at.
///
/// # Safety
/// `(offset, len)` comes from an event whose producer filled that range before pushing it.
pub unsafe fn get(offset: u64, len: u64) -> &'static [u8] {
    let base = ARENA.load(Ordering::Acquire);
    // SAFETY: the range was reserved and fully written before the event was pushed, and its
    // half is not handed out again before the writer has read that event (see Recycler).
    unsafe { core::slice::from_raw_parts((base + offset as usize) as *const u8, len as usize) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_is_reused_only_after_its_reservations_ended_and_their_events_were_read() {
        after_fork_child();
        let mut rec = Recycler::default();
        let a = put(b"hello").unwrap();
        assert_eq!(a.offset(), Some(0));
        // The writer moves producers to the other half at once (it is free).
        rec.step(|| 10, 10);
        let b = put(b"abc").unwrap();
        assert_eq!(b.offset(), Some(HALF as u64));
        // Half 0 still has `a` under way: nothing is freed, no switch.
        rec.step(|| 11, 11);
        assert_eq!(put(b"x").unwrap().offset(), Some(HALF as u64 + 3));
        drop(a);
        // `a` ended: its event was claimed below the ring's claim position now (12); the
        // writer has read up to 11 only.
        rec.step(|| 12, 11);
        assert_eq!(put(b"y").unwrap().offset(), Some(HALF as u64 + 4));
        // Read up to 12: half 0 is free, and producers move there, from its front.
        rec.step(|| 20, 12);
        assert_eq!(put(b"z").unwrap().offset(), Some(0));
        drop(b);
        // A full half refuses, counting nothing.
        assert!(reserve(HALF + 1).is_none());
        after_fork_child();
        assert_eq!(STATE.load(Ordering::Relaxed), 0);
    }
}
