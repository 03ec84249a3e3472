//! Memory where application threads leave variable-sized data for the writer (a code object's
//! names, a module map) and send it a fixed-size event with the offset and length. Mapped on
//! first use, 32 MiB of address space, touched only as filled; when full, such data is lost
//! (names unknown) rather than anything blocking.
//!
//! Space is handed out from the front and taken back all at once: whenever the writer finds the
//! ring empty and no reservation under way, it starts the arena over ([`try_reset`]). So a
//! process that keeps sending names (code made at run time) fills it only if it sends 32 MiB
//! between two moments the writer catches up, not over its whole life.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::real;

const ARENA_LEN: usize = 32 << 20;
static ARENA: AtomicUsize = AtomicUsize::new(0);

/// Bytes handed out (low 48 bits) and reservations whose event is not yet pushed (high 16), in
/// one word so that the writer's reset can tell, with one compare-and-swap, that nothing was
/// reserved since it looked.
static STATE: AtomicU64 = AtomicU64::new(0);
const USED_BITS: u32 = 48;
const USED_MASK: u64 = (1 << USED_BITS) - 1;
const ONE_IN_FLIGHT: u64 = 1 << USED_BITS;

/// Space reserved for one event's data; the reservation ends (drop) once the event is pushed
/// or given up.
pub struct Reservation {
    pub ptr: *mut u8,
    /// The fork generation it was made in: a child (say forked from a signal handler that
    /// interrupted the reservation) has started the arena afresh and must not count it.
    fork_gen: u32,
}

impl Reservation {
    /// The offset to put in the event.
    pub fn offset(&self) -> u64 {
        (self.ptr as usize - ARENA.load(Ordering::Acquire)) as u64
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Relaxed: the generation changes only in a single-threaded fork child.
        if crate::sampler::FORK_GEN.load(Ordering::Relaxed) == self.fork_gen {
            // Release: the event was pushed before this, for a reset that sees the count at 0.
            STATE.fetch_sub(ONE_IN_FLIGHT, Ordering::Release);
        }
    }
}

fn base() -> Option<usize> {
    let base = ARENA.load(Ordering::Acquire);
    if base != 0 {
        return Some(base);
    }
    // SAFETY: a fresh private anonymous mapping; the result is checked.
    let p = unsafe {
        real::mmap(
            core::ptr::null_mut(),
            ARENA_LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p as isize == -1 {
        return None;
    }
    match ARENA.compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(p as usize),
        Err(other) => {
            // SAFETY: our own mapping, never shared.
            unsafe { real::munmap(p, ARENA_LEN) };
            Some(other)
        }
    }
}

/// Reserves `len` bytes for the caller alone; None when the arena is full. Keep the
/// reservation until the event naming it is pushed.
pub fn reserve(len: usize) -> Option<Reservation> {
    let base = base()?;
    // Relaxed: the compare-and-swap below decides.
    let mut s = STATE.load(Ordering::Relaxed);
    loop {
        let used = (s & USED_MASK) as usize;
        if used + len > ARENA_LEN || s >> USED_BITS == u16::MAX as u64 {
            return None;
        }
        let next = s + ONE_IN_FLIGHT + len as u64;
        // Acquire: after a reset, the writer is done reading what is handed out again.
        match STATE.compare_exchange_weak(s, next, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => {
                return Some(Reservation {
                    ptr: (base + used) as *mut u8,
                    // Relaxed: as in drop.
                    fork_gen: crate::sampler::FORK_GEN.load(Ordering::Relaxed),
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

/// The writer, having read every event it was handed: starts the arena over if nothing was
/// reserved since then. `ring_empty` tells whether no event is in the ring, published or not;
/// it is asked after the reservation count was seen at zero, so every reserved range's event
/// was pushed by then, and an empty ring means each was read.
pub fn try_reset(ring_empty: impl FnOnce() -> bool) {
    // Acquire: pairs with the Release of each reservation's end (its event pushed before it).
    let s = STATE.load(Ordering::Acquire);
    if s == 0 || s >> USED_BITS != 0 || !ring_empty() {
        return;
    }
    // AcqRel: fails if anyone reserved since the load; our reads of the old data come first.
    let _ = STATE.compare_exchange(s, 0, Ordering::AcqRel, Ordering::Relaxed);
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
    // SAFETY: the range was reserved and fully written before the event was pushed, and is not
    // handed out again before the writer has read it (see try_reset).
    unsafe { core::slice::from_raw_parts((base + offset as usize) as *const u8, len as usize) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arena_starts_over_only_when_nothing_is_reserved_or_queued() {
        after_fork_child();
        let a = put(b"hello").unwrap();
        let b = reserve(3).unwrap();
        assert_eq!(b.offset(), a.offset() + 5);
        drop(a);
        // `b`'s event is not pushed yet: no reset.
        try_reset(|| true);
        assert_eq!(STATE.load(Ordering::Relaxed) & USED_MASK, 8);
        drop(b);
        // Its event is still in the ring: no reset.
        try_reset(|| false);
        assert_eq!(STATE.load(Ordering::Relaxed) & USED_MASK, 8);
        // Read: the arena starts over.
        try_reset(|| true);
        assert_eq!(STATE.load(Ordering::Relaxed), 0);
        assert_eq!(put(b"again").unwrap().offset(), 0);
        // Full: refused, nothing counted.
        after_fork_child();
        assert!(reserve(ARENA_LEN + 1).is_none());
        assert_eq!(STATE.load(Ordering::Relaxed), 0);
    }
}
