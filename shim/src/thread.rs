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
}

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

/// Runs `f` as a one-time section (see [`FLAG_SETUP`]).
pub fn setup_section<R>(f: impl FnOnce() -> R) -> R {
    let was = current().flags & FLAG_SETUP;
    current().flags |= FLAG_SETUP;
    let r = f();
    current().flags = (current().flags & !FLAG_SETUP) | was;
    r
}

extern "C" {
    /// The TLS block of tls.c; only its address is taken, through the initial-exec sequence below.
    static mut memshim_tls: ThreadState;
}

/// This thread's state. Cost: two instructions (`mov %fs:0`, `add GOTTPOFF`), no call.
#[inline(always)]
pub fn current() -> &'static mut ThreadState {
    let p: *mut ThreadState;
    // SAFETY: `memshim_tls` is an initial-exec TLS symbol (tls.c is compiled with
    // -ftls-model=initial-exec and the shim is loaded at startup by LD_PRELOAD, so its block is in
    // the static TLS area). The thread pointer at %fs:0 plus the GOT-held offset is the address of
    // this thread's copy, valid for the thread's whole life. The asm only reads memory.
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr fs:[0]",
            "add {p}, qword ptr [rip + {tls}@GOTTPOFF]",
            p = out(reg) p,
            tls = sym memshim_tls,
            options(pure, readonly, nostack),
        );
        // SAFETY: each thread only ever touches its own block (signal handlers that allocate are
        // outside what malloc supports anyway), so no other reference to it exists concurrently.
        &mut *p
    }
}

/// Marks the thread as inside the shim for its lifetime, so that allocations the shim itself
/// causes (unwinder, writer start) are forwarded untouched instead of recursing.
pub struct Busy {
    _private: (),
}

impl Busy {
    /// Enters the shim; `None` when this thread is already inside it (a recursive call).
    #[inline(always)]
    pub fn enter(t: &mut ThreadState) -> Option<Busy> {
        if t.busy != 0 {
            return None;
        }
        t.busy = 1;
        Some(Busy { _private: () })
    }
}

impl Drop for Busy {
    #[inline(always)]
    fn drop(&mut self) {
        current().busy = 0;
    }
}

/// The kernel's id for this thread, cached.
pub fn tid(t: &mut ThreadState) -> u32 {
    if t.tid == 0 {
        // SAFETY: gettid has no preconditions.
        t.tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    }
    t.tid
}
