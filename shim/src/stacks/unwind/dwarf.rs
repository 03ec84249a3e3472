//! Derives the [`Rule`] for one instruction from the loaded module's `.eh_frame`: found with
//! glibc's lock-free `_dl_find_object` (what libgcc itself uses), the FDE located by the binary
//! search table of `.eh_frame_hdr`, the CFI program evaluated by gimli into fixed storage.
//! Runs once per distinct return address (the cache keeps the result), never allocates, never
//! blocks: the one scratch context is taken with a try-lock and a busy one sends the caller to
//! libgcc.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, NativeEndian, Pointer, RegisterRule,
    UnwindContext, UnwindContextStorage, UnwindSection, X86_64,
};

use super::rule::Rule;

/// glibc's `struct dl_find_object` (dlfcn.h, glibc 2.35+).
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: *mut c_void,
    map_end: *mut c_void,
    link_map: *mut c_void,
    eh_frame: *mut c_void,
    reserved: [u64; 7],
}

type DlFindObjectFn = unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> i32;

/// `_dl_find_object`, resolved in the constructor (0: this glibc predates it; libgcc walks).
static DL_FIND_OBJECT: AtomicUsize = AtomicUsize::new(0);

/// Looks up `_dl_find_object`; called from the constructor, where dlsym may allocate. Not
/// under `MEMSHIM_GLIBC_FLOOR=1`, which makes this glibc behave as one that predates it.
pub fn resolve() {
    if crate::sys::real::glibc_floor() {
        return;
    }
    // SAFETY: a NUL-terminated name; RTLD_DEFAULT searches ld.so, which defines it.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_dl_find_object".as_ptr()) };
    // Relaxed: published before any thread but the main one exists.
    DL_FIND_OBJECT.store(f as usize, Ordering::Relaxed);
}

/// Fixed-size storage for gimli's unwind context: x86_64 CFI names at most 17 registers, and
/// remember/restore state nests shallowly in compiled code. Deeper programs fail to evaluate and
/// fall back to libgcc.
struct Fixed;

impl UnwindContextStorage<usize> for Fixed {
    type Rules = [(gimli::Register, RegisterRule<usize>); 24];
    type Stack = [gimli::UnwindTableRow<usize, Self>; 4];
}

/// The one scratch context (a few KiB kept off application stacks, which may be small).
struct Scratch {
    busy: AtomicBool,
    ctx: core::cell::UnsafeCell<Option<UnwindContext<usize, Fixed>>>,
}

// SAFETY: `ctx` is only touched by the thread that set `busy` (acquire/release pair below).
unsafe impl Sync for Scratch {}

static SCRATCH: Scratch = Scratch {
    busy: AtomicBool::new(false),
    ctx: core::cell::UnsafeCell::new(None),
};

pub enum Found {
    /// What the CFI says (cacheable).
    Rule(Rule),
    /// No module covers the address or it has no FDE there: the walk ends, as libgcc's would.
    /// Not cached: such code may be JIT output that changes.
    NoInfo,
    /// Another thread holds the scratch context: this sample goes to libgcc rather than wait.
    Busy,
}

/// In a forked child: a parent thread that was deriving a rule at the fork does not exist here.
pub fn after_fork_child() {
    SCRATCH.busy.store(false, Ordering::Release);
}

/// What the CFI says about the instruction at `ip` (callers pass return address - 1).
#[cold]
pub fn rule_for(ip: u64) -> Found {
    // Relaxed: set once in the constructor.
    let f = DL_FIND_OBJECT.load(Ordering::Relaxed);
    if f == 0 {
        return Found::Rule(Rule::Unsupported);
    }
    // SAFETY: an all-zero dl_find_object is a valid out-parameter.
    let mut obj: DlFindObject = unsafe { core::mem::zeroed() };
    // SAFETY: `f` is glibc's _dl_find_object (signature from dlfcn.h); it takes no lock and does
    // not allocate (glibc documents it as async-signal-safe).
    let found = unsafe { core::mem::transmute::<usize, DlFindObjectFn>(f)(ip as _, &mut obj) };
    if found != 0 || obj.eh_frame.is_null() {
        return Found::NoInfo;
    }
    if SCRATCH.busy.swap(true, Ordering::Acquire) {
        return Found::Busy;
    }
    // SAFETY: we own the scratch context until `busy` is released below.
    let ctx = unsafe { &mut *SCRATCH.ctx.get() };
    let ctx = ctx.get_or_insert_with(UnwindContext::new_in);
    // SAFETY: `eh_frame` and `map_end` come from the loader for a module mapped now; see `derive`.
    let rule = unsafe { derive(ctx, ip, obj.eh_frame as usize, obj.map_end as usize) };
    SCRATCH.busy.store(false, Ordering::Release);
    rule.map_or(Found::NoInfo, Found::Rule)
}

/// The standard `.eh_frame_hdr` encodings (what GNU ld and lld emit): a 4-byte eh_frame pointer,
/// a 4-byte FDE count, a table of 4-byte datarel pairs.
const HDR_FIXED: usize = 12;

/// # Safety
/// `hdr` is the address of a loaded module's `.eh_frame_hdr` and `map_end` the end of that
/// module's mapping. gimli reads only the header, the table entries its binary search probes and
/// the FDE and CIE it finds, all of which the loader mapped readable; the slice lengths bound
/// those reads, they are not read in full.
unsafe fn derive(
    ctx: &mut UnwindContext<usize, Fixed>,
    ip: u64,
    hdr: usize,
    map_end: usize,
) -> Option<Rule> {
    // SAFETY: the fixed header is always present and mapped.
    let head = unsafe { core::slice::from_raw_parts(hdr as *const u8, HDR_FIXED) };
    if head[0] != 1 || head[1] != 0x1b || head[2] != 0x03 || head[3] != 0x3b {
        // Version 1, pcrel|sdata4, udata4, datarel|sdata4: anything else goes to libgcc.
        return Some(Rule::Unsupported);
    }
    let count = u32::from_ne_bytes([head[8], head[9], head[10], head[11]]) as usize;
    // SAFETY: the table of `count` 8-byte entries follows the header in the mapped section.
    let hdr_bytes = unsafe { core::slice::from_raw_parts(hdr as *const u8, HDR_FIXED + count * 8) };
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr as u64);
    let Ok(parsed) = EhFrameHdr::new(hdr_bytes, NativeEndian).parse(&bases, 8) else {
        return Some(Rule::Unsupported);
    };
    let Pointer::Direct(eh_frame) = parsed.eh_frame_ptr() else {
        return Some(Rule::Unsupported);
    };
    let eh_frame = eh_frame as usize;
    if eh_frame >= map_end {
        return Some(Rule::Unsupported);
    }
    // SAFETY: `.eh_frame` lies inside the module's mapping; see the function's contract.
    let frame_bytes =
        unsafe { core::slice::from_raw_parts(eh_frame as *const u8, map_end - eh_frame) };
    let frame = EhFrame::new(frame_bytes, NativeEndian);
    let bases = bases.set_eh_frame(eh_frame as u64);
    let Some(table) = parsed.table() else {
        return Some(Rule::Unsupported);
    };
    let fde = match table.fde_for_address(&frame, &bases, ip, EhFrame::cie_from_offset) {
        Ok(fde) => fde,
        Err(gimli::Error::NoUnwindInfoForAddress) => return None, // code without CFI: the end
        Err(_) => return Some(Rule::Unsupported),
    };
    if fde.is_signal_trampoline() {
        return Some(Rule::Unsupported);
    }
    let Ok(row) = fde.unwind_info_for_address(&frame, &bases, ctx, ip) else {
        return Some(Rule::Unsupported);
    };
    match row.register(X86_64::RA) {
        Some(RegisterRule::Undefined) => return Some(Rule::End),
        Some(RegisterRule::Offset(-8)) => {}
        _ => return Some(Rule::Unsupported),
    }
    let bp_saved_at = match row.register(X86_64::RBP) {
        None | Some(RegisterRule::SameValue) => 0,
        Some(RegisterRule::Offset(n)) => -n,
        _ => return Some(Rule::Unsupported),
    };
    Some(match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RSP => {
            Rule::step(false, offset, bp_saved_at)
        }
        CfaRule::RegisterAndOffset { register, offset } if register == X86_64::RBP => {
            Rule::step(true, offset, bp_saved_at)
        }
        _ => Rule::Unsupported,
    })
}
