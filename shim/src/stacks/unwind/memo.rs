//! The thread's last native stack walk, replayed without walking when nothing it read changed.
//!
//! A walk from a call's entry is a pure function of where it starts (the return address, the
//! stack pointer and %rbp at the entry), of the cached rules (which change only when
//! [`super::invalidate`] bumps the generation), and of the stack words it reads: each frame's
//! return address and, where the CFI says so, the caller's saved %rbp. So when a thread enters
//! again from the same place, at the same stack depth, and every word the last walk read still
//! holds what it held, the walk would find the same frames: they are copied instead. A loop
//! allocating from one place (most of `all` mode's events) then pays a few loads per frame,
//! not a rule lookup and its checks. Anything else walks, and the walk is kept for next time.

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, Ordering};

use super::Entry;

/// Frames, and stack words read, a kept walk may have (deeper walks are not kept).
pub const FRAMES: usize = 16;
pub const SLOTS: usize = 2 * FRAMES;

/// Mirrors `struct memshim_walk_memo` in sys/tls.c.
#[repr(C)]
struct Memo {
    sp: u64,
    bp: u64,
    ret: u64,
    generation: u64,
    frames: u64,
    slots: u64,
    /// 1 when the walk used the entry's %rbp (then `bp` must match too).
    uses_bp: u64,
    frame: [u64; FRAMES],
    slot_addr: [u64; SLOTS],
    slot_value: [u64; SLOTS],
}

extern "C" {
    /// tls.c's block; only its address is taken, through the initial-exec sequence below.
    static mut memshim_walk_memo: Memo;
}

/// Bumped when cached rules are forgotten: no kept walk of an earlier generation replays.
/// Starts at 1, so a thread's zeroed memo never matches.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Every kept walk is stale (the rules it used may be gone).
pub fn forget_all() {
    // Relaxed: a thread that reads the old value replays a walk its own rules still back;
    // the generation only keeps later walks from trusting rules of an unloaded library.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// This thread's memo (an initial-exec TLS block, as `sampling::thread`'s).
#[inline(always)]
fn memo() -> *mut Memo {
    let off = crate::sys::tls::tls_offset!(memshim_walk_memo);
    (crate::sys::real::thread_pointer() + off) as *mut Memo
}

/// What a walk's result depends on, besides where it starts and the rules.
pub enum Read {
    /// It read `value` at this address of the stack.
    Word(u64, u64),
    /// A frame's CFA came from %rbp as the walk was entered (else %rbp does not matter: the
    /// program keeps anything in it between calls when it does not use frame pointers).
    EntryBp,
}

/// The stack words a walk read, in order, and whether it used the entry's %rbp.
pub struct Reads {
    addr: [MaybeUninit<u64>; SLOTS],
    value: [MaybeUninit<u64>; SLOTS],
    n: usize,
    entry_bp: bool,
}

impl Reads {
    pub fn new() -> Reads {
        Reads {
            addr: [MaybeUninit::uninit(); SLOTS],
            value: [MaybeUninit::uninit(); SLOTS],
            n: 0,
            entry_bp: false,
        }
    }

    /// Notes what the walk depends on (past SLOTS words the walk is simply not kept).
    #[inline(always)]
    pub fn note(&mut self, r: Read) {
        match r {
            Read::Word(addr, value) => {
                if self.n < SLOTS {
                    self.addr[self.n].write(addr);
                    self.value[self.n].write(value);
                }
                self.n += 1;
            }
            Read::EntryBp => self.entry_bp = true,
        }
    }

    /// The words noted so far (call only with n <= SLOTS).
    fn written(w: &[MaybeUninit<u64>; SLOTS], n: usize) -> &[u64] {
        // SAFETY: note() wrote the first n (<= SLOTS) words.
        unsafe { core::slice::from_raw_parts(w.as_ptr().cast(), n) }
    }
}

/// The frames of this thread's last walk into `out`, when it started at `entry` and `ret` and
/// every word it read is unchanged; None otherwise.
#[inline(always)]
pub fn replay(entry: Entry, ret: u64, out: &mut [MaybeUninit<u64>]) -> Option<usize> {
    let m = memo();
    // SAFETY: `m` is this thread's own block, touched only by this thread, and only here and
    // in keep(), which never run at once (the shim's recursion guard holds around both). The
    // fields are read through the pointer, no reference to the block is made.
    unsafe {
        // Relaxed: see forget_all().
        if (*m).ret != ret
            || (*m).sp != entry.sp
            || ((*m).uses_bp != 0 && (*m).bp != entry.bp)
            || (*m).generation != GENERATION.load(Ordering::Relaxed)
        {
            return None;
        }
        let (frames, slots) = ((*m).frames as usize, (*m).slots as usize);
        if frames > out.len() || frames > FRAMES || slots > SLOTS {
            return None;
        }
        let addrs = core::ptr::addr_of!((*m).slot_addr).cast::<u64>();
        let values = core::ptr::addr_of!((*m).slot_value).cast::<u64>();
        for i in 0..slots {
            // Why this read is as safe as the walk's own: the words are checked in the order the
            // walk read them, and the first that differs ends the check. The walk computes each
            // address it reads from where it started (the same here), the rules (the same
            // generation) and the words it read before; so while those all match, this is the
            // very address a walk from here would read next, with its bounds checks passed. (A
            // thread that switched stacks, as greenlets do, reads nothing a walk would not.)
            let addr = addrs.add(i).read() as *const u64;
            if addr.read() != values.add(i).read() {
                return None;
            }
        }
        let kept = core::ptr::addr_of!((*m).frame).cast::<u64>();
        for (i, o) in out[..frames].iter_mut().enumerate() {
            o.write(kept.add(i).read());
        }
        Some(frames)
    }
}

/// Keeps a walk from `entry` and `ret` that found `frames` after reading `reads`.
#[inline(always)]
pub fn keep(entry: Entry, ret: u64, frames: &[u64], reads: &Reads) {
    let m = memo();
    // SAFETY: as in replay(): this thread's block, field by field.
    unsafe {
        if frames.len() > FRAMES || reads.n > SLOTS {
            (*m).ret = 0; // nothing kept: the next walk walks
            return;
        }
        (*m).sp = entry.sp;
        (*m).bp = entry.bp;
        (*m).ret = ret;
        // Relaxed: see forget_all().
        (*m).generation = GENERATION.load(Ordering::Relaxed);
        (*m).frames = frames.len() as u64;
        (*m).slots = reads.n as u64;
        (*m).uses_bp = reads.entry_bp as u64;
        let copy = |to: *mut u64, from: &[u64]| {
            core::ptr::copy_nonoverlapping(from.as_ptr(), to, from.len())
        };
        copy(core::ptr::addr_of_mut!((*m).frame).cast(), frames);
        copy(
            core::ptr::addr_of_mut!((*m).slot_addr).cast(),
            Reads::written(&reads.addr, reads.n),
        );
        copy(
            core::ptr::addr_of_mut!((*m).slot_value).cast(),
            Reads::written(&reads.value, reads.n),
        );
    }
}
