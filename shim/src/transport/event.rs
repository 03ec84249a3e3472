//! What application threads tell the writer: one fixed-size [`Event`], followed by its stack
//! words, through the ring.

use memshim_format::AllocKind;

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    Alloc = 1,
    Free = 2,
    Munmap = 3,
    /// The stack words hold the thread's name (16 bytes).
    ThreadName = 4,
    /// Python finalization began.
    PyFinalizing = 5,
    /// A code object's names: `addr`/`size` locate them in the arena (see `pycode.rs`).
    PyCode = 6,
    /// The module map right after a dlopen: `addr`/`size` locate a postcard `Record::Modules` in
    /// the arena; `t` carries the map's signature.
    Modules = 7,
    /// A user mark: the stack words hold its label, `size` the label's length (mark_label.rs).
    Mark = 8,
    /// An Alloc without stack words: its stack is that of the previous Alloc event of the same
    /// thread (events mode; see `hooks::alloc::push_alloc`).
    AllocRepeat = 9,
    /// A program thread that sent an `Alloc` ended: the writer forgets its last stack.
    ThreadEnd = 10,
}

impl EventKind {
    /// The kind an event's `kind` byte names.
    pub fn from_u8(k: u8) -> Option<EventKind> {
        use EventKind::*;
        Some(match k {
            1 => Alloc,
            2 => Free,
            3 => Munmap,
            4 => ThreadName,
            5 => PyFinalizing,
            6 => PyCode,
            7 => Modules,
            8 => Mark,
            9 => AllocRepeat,
            10 => ThreadEnd,
            _ => return None,
        })
    }
}

/// Python frames kept per sample.
pub const MAX_PY_FRAMES: usize = 64;
/// Words per Python frame in an event: code id, then instruction | entry << 32.
pub const WORDS_PER_FRAME: usize = 2;

/// Stack words of an event whose native stack is at most `depth` frames: the native return
/// addresses, then the Python frames.
pub const fn stack_words(depth: usize) -> usize {
    depth + MAX_PY_FRAMES * WORDS_PER_FRAME
}

/// The most stack words any event carries.
pub const MAX_STACK_WORDS: usize = stack_words(crate::config::MAX_DEPTH);

/// Flag in an Alloc event's `alloc_kind`: an allocation a forked child inherited.
const INHERITED: u8 = 0x80;

/// The fixed part of an event; its stack words follow it in the ring.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub kind: u8,
    /// [`AllocKind::index`], with the INHERITED flag.
    pub alloc_kind: u8,
    /// Native frames (return addresses) at the start of the event's words; Python frames,
    /// [`WORDS_PER_FRAME`] words each, follow them.
    pub nframes: u16,
    pub tid: u32,
    pub t: u64,
    pub addr: u64,
    pub size: u64,
}

impl Event {
    /// An event of `kind` with no allocation kind and no native frames.
    pub fn new(kind: EventKind, tid: u32, t: u64, addr: u64, size: u64) -> Event {
        Event {
            kind: kind as u8,
            alloc_kind: 0,
            nframes: 0,
            tid,
            t,
            addr,
            size,
        }
    }

    /// An allocation of `size` bytes at `addr` whose stack has `nframes` native frames.
    pub fn alloc(kind: AllocKind, nframes: usize, tid: u32, t: u64, addr: u64, size: u64) -> Event {
        Event {
            alloc_kind: kind.index(),
            nframes: nframes as u16,
            ..Event::new(EventKind::Alloc, tid, t, addr, size)
        }
    }

    /// This Alloc event without its stack words: the same stack as the thread's previous one.
    pub fn repeating_stack(self) -> Event {
        Event {
            kind: EventKind::AllocRepeat as u8,
            ..self
        }
    }

    /// An allocation a forked child inherited from its parent (stamped 0: before this capture).
    pub fn inherited(kind: u8, nframes: u16, tid: u32, addr: u64, size: u64) -> Event {
        Event {
            alloc_kind: kind | INHERITED,
            nframes,
            ..Event::new(EventKind::Alloc, tid, 0, addr, size)
        }
    }

    /// A free of the block at `addr` (`size` when known, else 0).
    pub fn free(tid: u32, t: u64, addr: u64, size: u64) -> Event {
        Event::new(EventKind::Free, tid, t, addr, size)
    }

    /// A blob in the arena at `offset`, `len` bytes (`PyCode`, `Modules`), with a tag word.
    pub fn blob(kind: EventKind, tag: u64, offset: u64, len: u64) -> Event {
        Event::new(kind, 0, tag, offset, len)
    }

    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_u8(self.kind)
    }

    /// The allocating call of an Alloc event.
    pub fn alloc_kind(&self) -> AllocKind {
        AllocKind::from_index(self.alloc_kind & !INHERITED).unwrap_or(AllocKind::Malloc)
    }

    /// True for an allocation a forked child inherited.
    pub fn is_inherited(&self) -> bool {
        self.alloc_kind & INHERITED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Mark,
            AllocRepeat,
            ThreadEnd,
        ] {
            assert_eq!(EventKind::from_u8(k as u8), Some(k));
        }
        assert_eq!(EventKind::from_u8(0), None);
    }

    #[test]
    fn allocation_kinds_and_inheritance_survive_the_byte() {
        for i in 0..5 {
            let k = AllocKind::from_index(i).unwrap();
            let ev = Event::alloc(k, 3, 1, 2, 3, 4);
            assert_eq!((ev.alloc_kind(), ev.is_inherited()), (k, false));
            let inh = Event::inherited(ev.alloc_kind, 3, 1, 3, 4);
            assert_eq!((inh.alloc_kind(), inh.is_inherited()), (k, true));
        }
    }
}
