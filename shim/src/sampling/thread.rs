//! Per-thread state (initial-exec TLS defined in tls.c) and the recursion guard.

/// Mirrors `struct memshim_thread` in tls.c. All-zero is the valid initial state: a new thread's
/// first allocation finds `countdown == 0` and takes the slow path, which initialises the rest.
#[repr(C)]
#[derive(Debug)]
pub struct ThreadState {
    /// Bytes left before the next sample; an allocation smaller than this is not sampled.
    pub countdown: u64,
    /// xorshift64* state; 0 until seeded.
    pub rng: u64,
    /// Non-zero while this thread is inside the shim (see [`Busy`]).
    pub busy: u32,
    /// Cached kernel thread id; 0 until first needed.
    pub tid: u32,
    /// Value of the global fork generation when this thread was seeded.
    pub fork_gen: u32,
    /// Bit flags, see `FLAG_*`.
    pub flags: u32,
    /// The stack of this thread's last Alloc event the writer received: its word count + 1
    /// (0: none remembered), and its words when it has at most [`LAST_STACK_WORDS`].
    pub last_len: u64,
    pub last_stack: [u64; LAST_STACK_WORDS],
}

/// Words of the last stack a thread remembers (a C stack of up to 16 frames; deeper ones, and
/// Python ones, are sent whole every time).
pub const LAST_STACK_WORDS: usize = 16;

/// The thread's name was sent to the writer.
pub const FLAG_NAMED: u32 = 1;
/// This is the writer thread: never record anything it does.
pub const FLAG_WRITER: u32 = 2;
/// `free` may forward any pointer outside the region without recording it (sampled or off mode,
/// set by the slow path). Clear on a new thread, so its first free takes the slow path.
pub const FLAG_FREE_FAST: u32 = 4;
/// The thread is in a one-time section (constructor, writer start, an exit path) where the shim
/// may allocate for itself; allocations anywhere else inside the shim are counted as bugs.
pub const FLAG_SETUP: u32 = 8;

extern "C" {
    /// The TLS block of tls.c; only its address is taken, through the initial-exec sequence below.
    static mut memshim_tls: ThreadState;
}

/// The offset of this thread's [`ThreadState`] from the thread pointer (see
/// [`crate::sys::tls::tls_offset`]).
#[inline(always)]
fn tls_offset() -> usize {
    crate::sys::tls::tls_offset!(memshim_tls)
}

/// The fast paths' view of this thread's state, addressed `%fs`-relative: one load (and one
/// store) per call instead of computing the block's address first, as [`current`] must.
pub mod fast {
    use super::{tls_offset, ThreadState};

    const COUNTDOWN: usize = core::mem::offset_of!(ThreadState, countdown);
    const FLAGS: usize = core::mem::offset_of!(ThreadState, flags);

    /// Takes `size` bytes from this thread's sampling countdown when it holds more; false when
    /// the allocation is due for a sample (or the thread's state is not set up yet: countdown 0).
    #[inline(always)]
    pub fn take(size: u64) -> bool {
        let off = tls_offset();
        let left: u64;
        // SAFETY: %fs:off is this thread's ThreadState (see tls_offset()); `countdown` is an
        // aligned u64 only this thread touches. The asm reads 8 bytes of it.
        unsafe {
            core::arch::asm!(
                "mov {left}, qword ptr fs:[{off} + {c}]",
                left = out(reg) left,
                off = in(reg) off,
                c = const COUNTDOWN,
                options(readonly, nostack, preserves_flags),
            );
        }
        if size >= left {
            return false;
        }
        // SAFETY: as above; the asm writes this thread's own countdown.
        unsafe {
            core::arch::asm!(
                "mov qword ptr fs:[{off} + {c}], {v}",
                off = in(reg) off,
                v = in(reg) left - size,
                c = const COUNTDOWN,
                options(nostack, preserves_flags),
            );
        }
        true
    }

    /// This thread's flags.
    #[inline(always)]
    pub fn flags() -> u32 {
        let off = tls_offset();
        let f: u32;
        // SAFETY: as in take(); reads the aligned u32 `flags`.
        unsafe {
            core::arch::asm!(
                "mov {f:e}, dword ptr fs:[{off} + {c}]",
                f = out(reg) f,
                off = in(reg) off,
                c = const FLAGS,
                options(readonly, nostack, preserves_flags),
            );
        }
        f
    }
}

/// This thread's [`ThreadState`], reached through a raw pointer.
///
/// **The aliasing rule, stated once:** no `&`/`&mut ThreadState` is ever made. Every access is
/// one read or write of one field through this pointer, which never spans a call. The shim
/// re-enters itself (the unwinder or the writer's start call malloc, which runs the hooks on
/// the same thread) while an outer hook still works with its `Thread`: with references, the
/// inner one would alias the outer's `&mut`; with single-field raw accesses there is nothing to
/// alias, and each thread touches only its own block (signal handlers that allocate are outside
/// what malloc supports anyway).
#[derive(Debug, Clone, Copy)]
pub struct Thread(*mut ThreadState);

/// This thread's state. Cost: two instructions (`mov %fs:0`, the GOT offset), no call.
#[inline(always)]
pub fn current() -> Thread {
    let tp = crate::sys::real::thread_pointer();
    // Thread pointer + offset is this thread's copy of the block, valid for the thread's life.
    Thread((tp + tls_offset()) as *mut ThreadState)
}

/// A field read or write through the pointer, the only way the block is touched.
macro_rules! field {
    ($get:ident, $set:ident, $f:ident, $t:ty) => {
        #[inline(always)]
        pub fn $get(self) -> $t {
            // SAFETY: the pointer is this thread's live block (current()); a single-field read,
            // no reference made (the aliasing rule above).
            unsafe { (*self.0).$f }
        }
        #[inline(always)]
        pub fn $set(self, v: $t) {
            // SAFETY: as for the read; a single-field write by the block's own thread.
            unsafe { (*self.0).$f = v }
        }
    };
}

impl Thread {
    field!(countdown, set_countdown, countdown, u64);
    field!(rng, set_rng, rng, u64);
    field!(busy, set_busy, busy, u32);
    field!(fork_gen, set_fork_gen, fork_gen, u32);
    field!(flags, set_flags, flags, u32);
    field!(cached_tid, set_cached_tid, tid, u32);
    field!(last_len, set_last_len, last_len, u64);

    /// Sets `flag`.
    #[inline(always)]
    pub fn raise(self, flag: u32) {
        self.set_flags(self.flags() | flag);
    }

    /// Clears `flag`.
    #[inline(always)]
    pub fn lower(self, flag: u32) {
        self.set_flags(self.flags() & !flag);
    }

    #[inline(always)]
    pub fn has(self, flag: u32) -> bool {
        self.flags() & flag != 0
    }

    /// True when `words` is the stack of this thread's last Alloc event the writer received.
    #[inline(always)]
    pub fn same_stack(self, words: &[u64]) -> bool {
        if self.last_len() != words.len() as u64 + 1 {
            return false;
        }
        // SAFETY: a read of the one field through the block's pointer, as a slice that lives
        // for this comparison only (it calls nothing of the shim, so nothing can write the
        // field meanwhile); last_len never exceeds LAST_STACK_WORDS + 1: in bounds.
        let last = unsafe {
            let base = core::ptr::addr_of!((*self.0).last_stack).cast::<u64>();
            core::slice::from_raw_parts(base, words.len())
        };
        // A word loop, not `==` (a call to memcmp for a handful of words).
        last.iter().zip(words).all(|(a, b)| a == b)
    }

    /// Remembers `words` as the stack the writer now has for this thread (or forgets, when it
    /// is too deep to keep).
    #[inline(always)]
    pub fn remember_stack(self, words: &[u64]) {
        if words.len() > LAST_STACK_WORDS {
            self.forget_stack();
            return;
        }
        // SAFETY: a write of the one field by the block's own thread (the aliasing rule), of at
        // most LAST_STACK_WORDS words: in bounds; `words` is not in the block.
        unsafe {
            let base = core::ptr::addr_of_mut!((*self.0).last_stack).cast::<u64>();
            core::ptr::copy_nonoverlapping(words.as_ptr(), base, words.len());
        }
        self.set_last_len(words.len() as u64 + 1);
    }

    /// Forgets the remembered stack: the next Alloc event carries its words.
    #[inline(always)]
    pub fn forget_stack(self) {
        self.set_last_len(0);
    }

    /// The kernel's id for this thread, cached.
    pub fn tid(self) -> u32 {
        if self.cached_tid() == 0 {
            // SAFETY: gettid has no preconditions.
            self.set_cached_tid(unsafe { libc::syscall(libc::SYS_gettid) } as u32);
        }
        self.cached_tid()
    }

    /// Runs `f` as a one-time section (see [`FLAG_SETUP`]).
    pub fn setup_section<R>(self, f: impl FnOnce() -> R) -> R {
        let was = self.flags() & FLAG_SETUP;
        self.raise(FLAG_SETUP);
        let r = f();
        self.set_flags((self.flags() & !FLAG_SETUP) | was);
        r
    }
}

/// Marks the thread as inside the shim for its lifetime, so that allocations the shim itself
/// causes (unwinder, writer start) are forwarded untouched instead of recursing.
pub struct Busy {
    t: Thread,
}

impl Busy {
    /// Enters the shim; `None` when this thread is already inside it (a recursive call).
    #[inline(always)]
    pub fn enter(t: Thread) -> Option<Busy> {
        if t.busy() != 0 {
            return None;
        }
        t.set_busy(1);
        Some(Busy { t })
    }
}

impl Drop for Busy {
    #[inline(always)]
    fn drop(&mut self) {
        self.t.set_busy(0);
    }
}
