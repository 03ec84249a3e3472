//! Append-only memory where application threads leave variable-sized data for the writer (a
//! code object's names, a module map) and send it a fixed-size event with the offset and length.
//! Mapped on first use, 32 MiB of address space, touched only as filled; when full, such data is
//! lost (names unknown) rather than anything blocking.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::real;

const ARENA_LEN: usize = 32 << 20;
static ARENA: AtomicUsize = AtomicUsize::new(0);
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

/// Reserves `len` bytes for the caller alone; None when the arena is full.
pub fn reserve(len: usize) -> Option<*mut u8> {
    let mut base = ARENA.load(Ordering::Acquire);
    if base == 0 {
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
            Ok(_) => base = p as usize,
            Err(other) => {
                // SAFETY: our own mapping, never shared.
                unsafe { real::munmap(p, ARENA_LEN) };
                base = other;
            }
        }
    }
    // Relaxed: the offset only has to be unique; the event that names it publishes the bytes.
    let at = ARENA_USED.fetch_add(len, Ordering::Relaxed);
    (at + len <= ARENA_LEN).then(|| (base + at) as *mut u8)
}

/// Copies `bytes` into the arena; the offset to put in the event.
pub fn put(bytes: &[u8]) -> Option<u64> {
    let dst = reserve(bytes.len())?;
    // SAFETY: `dst` has bytes.len() bytes reserved for us alone.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    Some(offset_of(dst) as u64)
}

/// The offset of a pointer [`reserve`] returned.
pub fn offset_of(p: *mut u8) -> usize {
    p as usize - ARENA.load(Ordering::Acquire)
}

/// The bytes an event points at.
///
/// # Safety
/// `(offset, len)` comes from an event whose producer filled that range before pushing it.
pub unsafe fn get(offset: u64, len: u64) -> &'static [u8] {
    let base = ARENA.load(Ordering::Acquire);
    // SAFETY: the range was reserved and fully written before the event was pushed.
    unsafe { core::slice::from_raw_parts((base + offset as usize) as *const u8, len as usize) }
}
