//! A sampled stack, built in the caller's frame: native return addresses, then Python frames.

use core::mem::MaybeUninit;

use memshim_format::AllocKind;

use super::{python, unwind};
use crate::config;
use crate::transport::event::{Event, MAX_STACK_WORDS, WORDS_PER_FRAME};

/// Where the Python walker sends the code objects it sees first (the recorder's push).
pub type Send = fn(Event, &[u64]) -> bool;

/// Native return addresses, then Python frames ([`WORDS_PER_FRAME`] words each). Left
/// uninitialised beyond what the walkers wrote: zeroing 4 KiB per sample is measurable.
pub struct StackBuf {
    words: [MaybeUninit<u64>; MAX_STACK_WORDS],
    native: usize,
    py: usize,
}

impl StackBuf {
    /// Unwinds this thread's native stack and reads its own Python frames (see
    /// `python::capture`), sending code objects seen for the first time through `send`.
    /// Inlined so the buffer is built in the caller's frame, not copied out.
    #[inline(always)]
    pub fn capture(s: &mut MaybeUninit<StackBuf>, send: Send) -> &StackBuf {
        Self::capture_native(s, send, unwind::capture)
    }

    /// As [`StackBuf::capture`], the native stack starting at the caller of the interposed call
    /// that entered the shim at `entry` (see [`unwind::capture_from`]).
    #[inline(always)]
    pub fn capture_from(
        s: &mut MaybeUninit<StackBuf>,
        send: Send,
        entry: unwind::Entry,
    ) -> &StackBuf {
        Self::capture_native(s, send, |words| unwind::capture_from(entry, words))
    }

    #[inline(always)]
    fn capture_native(
        s: &mut MaybeUninit<StackBuf>,
        send: Send,
        native: impl FnOnce(&mut [MaybeUninit<u64>]) -> usize,
    ) -> &StackBuf {
        let depth = config::get().map_or(config::DEFAULT_DEPTH, |c| c.depth);
        // Built field by field in the caller's buffer: a struct literal mixing `uninit()` words
        // with zeroed counts let LLVM zero all 3 KiB with one memset (18% of a sample's cost),
        // and returning it by value copied it.
        let p = s.as_mut_ptr();
        // SAFETY: `words` is an array of MaybeUninit, valid in any state; the two counts are
        // written before assume_init, so every field is initialised.
        unsafe {
            let words = &mut *core::ptr::addr_of_mut!((*p).words);
            let native = native(&mut words[..depth]);
            let py = python::capture(&mut words[native..], send);
            core::ptr::addr_of_mut!((*p).native).write(native);
            core::ptr::addr_of_mut!((*p).py).write(py);
            s.assume_init_ref()
        }
    }

    /// The native return addresses.
    pub fn native(&self) -> &[u64] {
        // SAFETY: the unwinder initialised the first `native` words.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast(), self.native) }
    }

    /// Every word: native frames, then Python frames.
    pub fn all(&self) -> &[u64] {
        let n = self.native + self.py * WORDS_PER_FRAME;
        // SAFETY: the unwinder, then the Python walker, initialised the first `n` words.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast(), n) }
    }

    /// The Alloc event carrying this stack, stamped `t`.
    pub fn event(&self, kind: AllocKind, tid: u32, addr: u64, size: u64, t: u64) -> Event {
        Event::alloc(kind, self.native, tid, t, addr, size)
    }
}
