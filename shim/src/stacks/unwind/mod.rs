//! Native stacks: raw return addresses, unwound with DWARF CFI (CPython and Debian's libc have no
//! frame pointers).
//!
//! libgcc's `_Unwind_Backtrace` re-finds and re-interprets the FDE of every frame of every sample
//! (~3 us per sample, 60-80% of a sample's cost). Like framehop and the Go and async-profiler
//! unwinders, memshim instead turns the CFI at each return address into a compact [`rule::Rule`]
//! once, keeps it in a lock-free cache keyed by address, and walks with a few loads per frame.
//! What the compact rules cannot express (CFA expressions, signal frames, exotic registers) sends
//! that sample's whole walk to libgcc ([`libgcc`]), so stacks are never worse than before.
//! `MEMSHIM_UNWIND=libgcc` forces libgcc everywhere (for comparison and as an escape hatch);
//! `MEMSHIM_UNWIND=check` walks every sample both ways and counts disagreements (for tests).

mod dwarf;
mod libgcc;
mod memo;
pub mod rule;

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use dwarf::Found;
use rule::Rule;

/// Cache words: 2-way sets of one-word entries (128 KiB of .bss, touched as used).
const SLOTS: usize = 1 << 14;
static CACHE: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// Samples whose walk went to libgcc although the fast walker was on (a test reads it).
pub static FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// Samples whose fast and libgcc stacks differed, in check mode (a test reads it).
pub static MISMATCHES: AtomicU64 = AtomicU64::new(0);

pub use crate::config::UnwindMode as Mode;

static MODE: AtomicU8 = AtomicU8::new(Mode::Fast as u8);

/// Frames a compact rule may step over: larger jumps of the stack pointer mean the CFI (or a
/// frame-pointer chain it relies on) is not what it claims, and the walk stops.
const MAX_FRAME_BYTES: u64 = 64 << 20;

/// Resolves what the unwinders need and runs each once, so their one-time setup happens in the
/// How many sampled stacks went to libgcc (`memshim_debug_unwind_fallbacks`).
pub fn fallbacks() -> u64 {
    // Relaxed: a statistic.
    FALLBACKS.load(Ordering::Relaxed)
}

/// How many samples the two unwinders walked differently (`memshim_debug_unwind_mismatches`).
pub fn mismatches() -> u64 {
    // Relaxed: a statistic.
    MISMATCHES.load(Ordering::Relaxed)
}

/// constructor and not inside some later malloc.
pub fn init(mode: Mode) {
    dwarf::resolve();
    MODE.store(mode as u8, Ordering::Relaxed);
    let mut buf = [MaybeUninit::uninit(); 4];
    libgcc::capture(&mut buf, 0);
    capture(&mut buf);
}

/// In a forked child (single-threaded): releases what the parent's other threads held.
pub fn after_fork_child() {
    dwarf::after_fork_child();
}

/// Forgets every cached rule: after dlclose, another library may be mapped where the closed one
/// was. (A sample taken inside that window by another thread could still use a stale rule; the
/// walk's bounds checks keep that from reading outside the stack's neighbourhood.)
pub fn invalidate() {
    memo::forget_all();
    for w in &CACHE {
        // Relaxed: entries are independent words; a racing insert of a fresh rule is harmless.
        w.store(0, Ordering::Relaxed);
    }
}

/// Fills `out` with return addresses, innermost first, starting with the caller of this function
/// (the first few are the shim's own frames; the CLI strips them by module). Returns how many.
#[inline(never)]
pub fn capture(out: &mut [MaybeUninit<u64>]) -> usize {
    // Relaxed: set once in the constructor.
    let mode = MODE.load(Ordering::Relaxed);
    if mode == Mode::Libgcc as u8 {
        return through_libgcc(out);
    }
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads three registers; touches no memory and no stack. The CFI row at the `lea`'s
    // successor describes this frame with exactly these %rsp and %rbp values.
    unsafe {
        core::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    if cfg!(feature = "floor-no-unwind") {
        return out.first_mut().map_or(0, |w| {
            w.write(ip);
            1
        });
    }
    match walk(ip, sp, bp, out, |_| {}) {
        Some(n) if mode == Mode::Check as u8 => {
            let mut theirs = [MaybeUninit::uninit(); crate::config::MAX_DEPTH];
            let m = through_libgcc(&mut theirs[..out.len()]);
            // SAFETY: each walker initialised the first `n` and `m` words of its buffer.
            let (a, b) = unsafe {
                (
                    core::slice::from_raw_parts(out.as_ptr().cast::<u64>(), n),
                    core::slice::from_raw_parts(theirs.as_ptr().cast::<u64>(), m),
                )
            };
            if a != b {
                // Relaxed: a statistic.
                MISMATCHES.fetch_add(1, Ordering::Relaxed);
            }
            n
        }
        Some(n) => n,
        None => {
            // Relaxed: a statistic. Only walks that need libgcc write it, never the common case.
            FALLBACKS.fetch_add(1, Ordering::Relaxed);
            through_libgcc(out)
        }
    }
}

/// Where an interposed call entered the shim: the stack pointer at its first instruction
/// (pointing at the return address into its caller) and the caller's %rbp, which the shim's
/// frames below preserve for it.
#[derive(Clone, Copy)]
pub struct Entry {
    pub sp: u64,
    pub bp: u64,
}

/// As [`capture`], but from the caller of the interposed call that entered at `entry`: the
/// shim's own frames (two or three lookups of a seven-frame walk) are neither walked nor
/// recorded. libgcc, which can only start here, has the frames before the call's return address
/// dropped, so every mode gives the same stack.
#[inline(never)]
pub fn capture_from(entry: Entry, out: &mut [MaybeUninit<u64>]) -> usize {
    if cfg!(feature = "floor-no-unwind") || out.is_empty() {
        return capture(out);
    }
    // SAFETY: per `Entry`, `sp` is the stack pointer at the first instruction of a function the
    // program called: its top word, in this thread's live stack, is the return address.
    let ret = unsafe { (entry.sp as *const u64).read() };
    // Relaxed: set once in the constructor.
    let mode = MODE.load(Ordering::Relaxed);
    if mode == Mode::Libgcc as u8 {
        let m = through_libgcc(out);
        return from_return_address(ret, out, m);
    }
    out[0].write(ret);
    if mode == Mode::Fast as u8 {
        if let Some(n) = memo::replay(entry, ret, &mut out[1..]) {
            return n + 1;
        }
    }
    // Check mode walks every time, and counts a kept walk that would have replayed wrong.
    let mut replayed = [MaybeUninit::uninit(); memo::FRAMES];
    let replay = (mode == Mode::Check as u8)
        .then(|| memo::replay(entry, ret, &mut replayed))
        .flatten();
    // The caller's frame at the call: its CFI row is the one at ret - 1, with the stack pointer
    // just above the return address.
    let mut reads = memo::Reads::new();
    let walked = walk(
        ret.wrapping_sub(1),
        entry.sp + 8,
        entry.bp,
        &mut out[1..],
        |r| reads.note(r),
    );
    let n = match walked {
        Some(n) => {
            // SAFETY: the walk initialised the n words after the first.
            let frames = unsafe { core::slice::from_raw_parts(out[1..].as_ptr().cast::<u64>(), n) };
            if let Some(r) = replay {
                // SAFETY: replay initialised the first r words.
                let kept =
                    unsafe { core::slice::from_raw_parts(replayed.as_ptr().cast::<u64>(), r) };
                if kept != frames {
                    // Relaxed: a statistic.
                    MISMATCHES.fetch_add(1, Ordering::Relaxed);
                }
            }
            memo::keep(entry, ret, frames, &reads);
            n + 1
        }
        None => {
            // Relaxed: a statistic, as in `capture`.
            FALLBACKS.fetch_add(1, Ordering::Relaxed);
            let m = through_libgcc(out);
            return from_return_address(ret, out, m);
        }
    };
    if mode == Mode::Check as u8 {
        let mut theirs = [MaybeUninit::uninit(); crate::config::MAX_DEPTH];
        let walked = through_libgcc(&mut theirs[..out.len()]);
        let m = from_return_address(ret, &mut theirs, walked);
        // SAFETY: each walker initialised the first `n` and `m` words of its buffer.
        let (a, b) = unsafe {
            (
                core::slice::from_raw_parts(out.as_ptr().cast::<u64>(), n),
                core::slice::from_raw_parts(theirs.as_ptr().cast::<u64>(), m),
            )
        };
        // Unless the depth cut libgcc's walk (it also walked the shim's frames).
        if a != b && walked < out.len() {
            // Relaxed: a statistic.
            MISMATCHES.fetch_add(1, Ordering::Relaxed);
        }
    }
    n
}

/// Drops the frames of a libgcc walk (`n` of `out`) before the return address `ret`: the
/// shim's own. Keeps the whole walk when `ret` is not in it.
fn from_return_address(ret: u64, out: &mut [MaybeUninit<u64>], n: usize) -> usize {
    // SAFETY: the walk initialised the first `n` words.
    let walked = unsafe { core::slice::from_raw_parts(out.as_ptr().cast::<u64>(), n) };
    match walked.iter().position(|&w| w == ret) {
        Some(k) => {
            out.copy_within(k..n, 0);
            n - k
        }
        None => n,
    }
}

/// libgcc's walk, starting at the same frame as the fast one: it skips its own frame and this
/// function's caller (`capture`), which therefore must not tail-call it.
#[inline(always)]
fn through_libgcc(out: &mut [MaybeUninit<u64>]) -> usize {
    let n = libgcc::capture(out, 1);
    // Code after the call keeps it from becoming a jump, which would remove `capture`'s frame.
    core::hint::black_box(());
    n
}

/// The compact-rule walk from a frame's registers; `None` when some frame needs libgcc.
#[inline(always)]
/// `at` is the first frame's instruction (the current one, or a return address - 1).
fn walk(
    mut at: u64,
    mut sp: u64,
    mut bp: u64,
    out: &mut [MaybeUninit<u64>],
    mut note: impl FnMut(memo::Read),
) -> Option<usize> {
    let mut n = 0;
    // Whether %rbp still holds the value the walk started with (no frame restored it yet).
    let mut bp_is_entrys = true;
    let mut ip;
    while n < out.len() {
        let rule = match lookup(at) {
            Found::Rule(r) => r,
            Found::NoInfo => break,
            Found::Busy => return None,
        };
        let Rule::Step {
            from_bp,
            cfa_offset,
            bp_saved_at,
        } = rule
        else {
            if rule == Rule::End {
                break;
            }
            return None;
        };
        if from_bp && bp_is_entrys {
            note(memo::Read::EntryBp);
        }
        let cfa = if from_bp { bp } else { sp }.wrapping_add(cfa_offset as u64);
        if cfa <= sp || cfa - sp > MAX_FRAME_BYTES || cfa % 8 != 0 {
            break; // the stack only grows towards the caller, and not wildly
        }
        // SAFETY: per this module's CFI, the return address is the word below the CFA and the
        // caller's %rbp (when saved) lies between the CFA and this frame's stack pointer: both in
        // this thread's live stack, which the checks above keep the walk within reach of. This
        // trusts the CFI exactly as far as libgcc does.
        unsafe {
            ip = ((cfa - 8) as *const u64).read();
            note(memo::Read::Word(cfa - 8, ip));
            if bp_saved_at != 0 {
                bp = ((cfa - bp_saved_at as u64) as *const u64).read();
                note(memo::Read::Word(cfa - bp_saved_at as u64, bp));
                bp_is_entrys = false;
            }
        }
        sp = cfa;
        if ip < 4096 {
            break; // a zeroed return address ends a stack by convention
        }
        out[n].write(ip);
        n += 1;
        at = ip - 1;
    }
    Some(n)
}

#[inline(always)]
fn set_of(ip: u64) -> usize {
    (ip.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros() + 1)) as usize * 2
}

/// The rule for the instruction at `ip`, from the cache or derived and cached.
#[inline(always)]
fn lookup(ip: u64) -> Found {
    if ip >= rule::MAX_CACHED_IP {
        return dwarf::rule_for(ip);
    }
    let set = set_of(ip);
    for w in &CACHE[set..set + 2] {
        // Relaxed: an entry is one self-validating word; there is nothing else to order with.
        if let Some(r) = rule::unpack(w.load(Ordering::Relaxed), ip) {
            return Found::Rule(r);
        }
    }
    let found = dwarf::rule_for(ip);
    if let Found::Rule(r) = found {
        let word = rule::pack(ip, r);
        // Relaxed: as above. Fill an empty way, else evict one chosen by the address.
        let way = if CACHE[set].load(Ordering::Relaxed) == 0 {
            0
        } else if CACHE[set + 1].load(Ordering::Relaxed) == 0 {
            1
        } else {
            (ip >> 4) as usize & 1
        };
        CACHE[set + way].store(word, Ordering::Relaxed);
    }
    found
}
