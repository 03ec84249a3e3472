//! Code objects: a stable identity for each, and a one-time copy of its names and line table
//! for the writer (the blob's layout is `transport::pycode`'s).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::{layout, word, Layout, Python};
use crate::stacks::Send;
use crate::state;
use crate::transport::arena;
use crate::transport::event::{Event, EventKind};

// ---- code objects: identity and a one-time copy of their names ----

/// Slots of the table of code ids already sent (open addressing, emptied when half full).
const SEEN_SLOTS: usize = 1 << 16;
static SEEN: [AtomicU64; SEEN_SLOTS] = [const { AtomicU64::new(0) }; SEEN_SLOTS];
/// Ids in SEEN (a forked child counts its parent's, which it can never match, too).
static SEEN_FILLED: AtomicUsize = AtomicUsize::new(0);

/// A code object's identity: its address mixed with its name, file and first line, so a new code
/// object that reuses a freed one's address gets a new id.
///
/// # Safety
/// `code` is a live code object of this interpreter.
pub(super) unsafe fn code_id(py: &Python, code: usize, send: Send) -> u64 {
    let l = &py.layout;
    // SAFETY: fields of a live code object.
    let (file, name, line) = unsafe {
        (
            word(code + l.code_filename),
            word(code + l.code_name),
            *((code + l.code_firstlineno) as *const i32),
        )
    };
    let mut h = code as u64;
    h ^= (file as u64).rotate_left(21);
    h ^= (name as u64).rotate_left(42);
    h ^= (line as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let id = h | 1; // never 0, the empty slot
    if mark_seen(id) {
        // SAFETY: `code` is live (held by a frame of this thread, see `capture`).
        unsafe { send_code(py, code, id, send) };
    }
    id
}

/// Records `id` as sent; true when it was not yet. Entries are keyed with the fork generation, so
/// a forked child (whose new capture needs every name again) finds none of its parent's.
///
/// Code built at run time (`exec`, `eval`, namedtuples, templates) keeps bringing new ids, and
/// a full table used to answer "not sent" for every frame of every sample: each one then cost
/// 64 failed probes and a copy of its names into the arena, until the arena was full and every
/// later name was lost. Now the table is emptied when half full (once per 32,768 new code
/// objects, some 20 us): the names still in use are sent once more, and the writer, which
/// remembers what it wrote, drops the repeats.
fn mark_seen(id: u64) -> bool {
    // Relaxed: the generation changes only in a single-threaded fork child.
    let gen = state::fork_generation() as u64;
    let id = (id ^ gen.wrapping_mul(0xD6E8_FEB8_6659_FD93)) | 1;
    let mut i = (id as usize).wrapping_mul(0x9E37_79B9) % SEEN_SLOTS;
    for _ in 0..64 {
        // Relaxed: two threads racing on one id may both send it; the writer keeps one. (Threads
        // that released the GIL read their frames at the same time as others.)
        match SEEN[i].compare_exchange(0, id, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                // Relaxed: a fill count; a racing clear loses at most a few counts.
                if SEEN_FILLED.fetch_add(1, Ordering::Relaxed) + 1 >= SEEN_SLOTS / 2 {
                    forget_sent();
                }
                return true;
            }
            Err(v) if v == id => return false,
            Err(_) => i = (i + 1) % SEEN_SLOTS,
        }
    }
    // A run of 64 taken slots below half full: empty the table rather than resend forever.
    forget_sent();
    true
}

/// Empties the table of ids sent.
fn forget_sent() {
    SEEN_FILLED.store(0, Ordering::Relaxed);
    for s in &SEEN {
        // Relaxed: an id cleared while another thread checks it is only sent again.
        s.store(0, Ordering::Relaxed);
    }
}

/// A fixed buffer on the stack that fills up and then ignores the rest (names are truncated
/// rather than allocated for: this runs inside malloc).
struct Buf<'a> {
    bytes: &'a mut [u8],
    len: usize,
}

impl Buf<'_> {
    fn push(&mut self, b: &[u8]) {
        let n = b.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }
}

/// A Python string object's text as UTF-8 bytes, appended to `out` (truncated to fit).
///
/// # Safety
/// `obj` is a live `str` object (or 0).
unsafe fn read_str(l: &Layout, obj: usize, out: &mut Buf<'_>) {
    const MAX: usize = 1024;
    if obj == 0 {
        return;
    }
    // SAFETY: fields of a live str object, per the layout.
    unsafe {
        let len = word(obj + l.unicode_length).min(MAX);
        let state = *((obj + l.unicode_state) as *const u32);
        let (kind, compact, ascii) = ((state >> 2) & 7, state >> 5 & 1 == 1, state >> 6 & 1 == 1);
        if !compact {
            out.push(b"?");
            return;
        }
        if ascii {
            let data = (obj + l.unicode_ascii_size) as *const u8;
            out.push(core::slice::from_raw_parts(data, len));
            return;
        }
        let utf8 = word(obj + l.unicode_utf8);
        if utf8 != 0 {
            let n = word(obj + l.unicode_utf8_length).min(MAX * 4);
            out.push(core::slice::from_raw_parts(utf8 as *const u8, n));
            return;
        }
        let data = obj + l.unicode_compact_size;
        let mut utf = [0u8; 4];
        for i in 0..len {
            let cp = match kind {
                1 => *((data + i) as *const u8) as u32,
                2 => *((data + 2 * i) as *const u16) as u32,
                _ => *((data + 4 * i) as *const u32),
            };
            let c = char::from_u32(cp).unwrap_or('\u{fffd}');
            out.push(c.encode_utf8(&mut utf).as_bytes());
        }
    }
}

/// Copies a code object's names and line table into the arena and tells the writer. Allocates
/// nothing: the names are gathered in a stack buffer, the line table copied straight across.
///
/// # Safety
/// `code` is a live code object, held by a frame of this thread (see [`capture`]).
#[cold]
unsafe fn send_code(py: &Python, code: usize, id: u64, send: Send) {
    let l = &py.layout;
    let mut storage = [0u8; 4096];
    let mut head = Buf {
        bytes: &mut storage,
        len: 0,
    };
    head.push(&id.to_le_bytes());
    // SAFETY: fields of a live code object.
    let first = unsafe { *((code + l.code_firstlineno) as *const i32) };
    head.push(&(first as u32).to_le_bytes());
    head.push(&[l.version.0, l.version.1]);
    for off in [l.code_name, l.code_qualname, l.code_filename] {
        let at = head.len;
        head.push(&[0; 4]);
        if off != layout::NONE {
            // SAFETY: the code object's str fields (3.9 has no co_qualname: left empty).
            unsafe { read_str(l, word(code + off), &mut head) };
        }
        let n = (head.len - at - 4) as u32;
        head.bytes[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }
    // SAFETY: co_linetable (co_lnotab in 3.9) is a bytes object of the live code object.
    let table: &[u8] = unsafe {
        let t = word(code + l.code_linetable);
        let n = if t == 0 {
            0
        } else {
            word(t + l.bytes_size).min(1 << 16)
        };
        core::slice::from_raw_parts((t + l.bytes_sval) as *const u8, n)
    };
    let len = head.len + 4 + table.len();
    // Held until the event is pushed (the arena is not started over under it).
    let Some(reserved) = arena::reserve(len) else {
        return;
    };
    let dst = reserved.ptr;
    // SAFETY: `dst` has `len` bytes reserved for us alone.
    unsafe {
        core::ptr::copy_nonoverlapping(head.bytes.as_ptr(), dst, head.len);
        let n = (table.len() as u32).to_le_bytes();
        core::ptr::copy_nonoverlapping(n.as_ptr(), dst.add(head.len), 4);
        core::ptr::copy_nonoverlapping(table.as_ptr(), dst.add(head.len + 4), table.len());
    }
    let Some(offset) = reserved.offset() else {
        return;
    };
    send(Event::blob(EventKind::PyCode, 0, offset, len as u64), &[]);
    drop(reserved);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that keeps making code objects (`exec` in a loop) while a few hot ones stay in
    /// every sample: each hot name is sent again once per emptying of the table, never per sample.
    #[test]
    fn code_churn_resends_hot_names_once_per_emptying() {
        let hot = [0x1234_5678_9abc_def1u64, 0x0fed_cba9_8765_4321];
        let mut hot_sends = 0;
        let mut new_sends = 0;
        let churn = 200_000u64;
        for i in 0..churn {
            // Distinct ids, spread like real ones (addresses mixed with names).
            let id = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            new_sends += mark_seen(id) as u64;
            for h in hot {
                hot_sends += mark_seen(h) as u64;
            }
        }
        assert_eq!(new_sends, churn, "every new id is sent");
        // 200,000 new ids empty a 32,768-id half table about 6 times: the two hot ids go out
        // once at the start and once after each emptying.
        let emptyings = churn / (SEEN_SLOTS as u64 / 2);
        assert!(
            hot_sends <= 2 * (emptyings + 2),
            "hot names sent {hot_sends} times"
        );
        assert!(SEEN_FILLED.load(Ordering::Relaxed) < SEEN_SLOTS / 2);
    }
}
