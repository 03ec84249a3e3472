//! The module map (path, load bias, segments, GNU build-id) from `dl_iterate_phdr`, so the CLI can
//! symbolize offline after the process is gone. Runs on the writer thread only.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use memshim_format::Module;

/// Load and unload counts of the dynamic linker: when they change, the map is written again.
pub type Signature = (u64, u64);

struct Walk {
    modules: Vec<Module>,
    sig: Signature,
}

extern "C" fn visit(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
    // SAFETY: the loader passes a valid info of `size` bytes; `data` is our Walk.
    let (info, walk) = unsafe { (&*info, &mut *(data as *mut Walk)) };
    if size >= core::mem::size_of::<libc::dl_phdr_info>() {
        walk.sig = (info.dlpi_adds, info.dlpi_subs);
    }
    let name = if info.dlpi_name.is_null() {
        String::new()
    } else {
        // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
        unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }
            .to_string_lossy()
            .into_owned()
    };
    let path = if name.is_empty() && walk.modules.is_empty() {
        // The first entry with no name is the executable itself.
        std::fs::read_link("/proc/self/exe")
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    } else {
        name
    };
    let mut m = Module {
        path,
        base: info.dlpi_addr,
        segments: Vec::new(),
        build_id: Vec::new(),
    };
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        match ph.p_type {
            libc::PT_LOAD => m.segments.push((ph.p_vaddr, ph.p_memsz)),
            libc::PT_NOTE if m.build_id.is_empty() => {
                let at = (info.dlpi_addr + ph.p_vaddr) as *const u8;
                // SAFETY: a PT_NOTE segment of a loaded object is mapped readable at that address.
                let notes = unsafe { core::slice::from_raw_parts(at, ph.p_memsz as usize) };
                m.build_id = build_id(notes).unwrap_or_default();
            }
            _ => {}
        }
    }
    if !m.segments.is_empty() {
        walk.modules.push(m);
    }
    0
}

/// The NT_GNU_BUILD_ID descriptor in a note segment.
fn build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8]| u32::from_ne_bytes(b.try_into().unwrap()) as usize;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (word(&notes[0..4]), word(&notes[4..8]), word(&notes[8..12]));
        let name_end = 12 + namesz.next_multiple_of(4);
        let desc_end = name_end + descsz.next_multiple_of(4);
        if desc_end > notes.len() {
            return None;
        }
        if kind == 3 && namesz == 4 && &notes[12..16] == b"GNU\0" {
            return Some(notes[name_end..name_end + descsz].to_vec());
        }
        notes = &notes[desc_end..];
    }
    None
}

/// Held around our own `dl_iterate_phdr` calls, and by the atfork prepare handler across the
/// fork. dl_iterate_phdr holds the loader's `dl_load_write_lock`, which glibc's fork does not
/// take: a fork while our writer was inside it left the child's loader lock locked for good (the
/// child's first dl_iterate_phdr, ours or the program's, then hung; seen in a multiprocessing
/// test). With this lock the fork waits for the walk to end.
///
/// It holds the holder's thread pointer (0: free), so a thread can tell its own walk.
static WALK: AtomicUsize = AtomicUsize::new(0);
/// The prepare handler got WALK (so the parent and child handlers release it).
static HELD_FOR_FORK: AtomicBool = AtomicBool::new(false);

/// This thread's mark in WALK.
fn me() -> usize {
    super::real::thread_pointer()
}

/// True when this thread holds WALK: it is inside a walk of ours, or in an atfork prepare
/// handler running after ours (which took it). A walk now would wait on itself forever.
pub fn walk_is_mine() -> bool {
    // Relaxed: only this thread stores its own mark.
    WALK.load(Ordering::Relaxed) == me()
}

/// Takes WALK if it is free.
fn try_take_walk() -> bool {
    // Acquire: pairs with the Release of the previous holder.
    WALK.compare_exchange(0, me(), Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Calls `f` with WALK held (waiting for another walk to finish: they are short).
fn walking<R>(f: impl FnOnce() -> R) -> R {
    while !try_take_walk() {
        crate::sys::real::sleep_us(20);
    }
    let r = f();
    // Release: ends the critical section.
    WALK.store(0, Ordering::Release);
    r
}

/// atfork prepare: wait (bounded, 100 ms) until no walk of ours is under way, and keep others
/// out until the fork is done. A program that forks from inside its own dl_iterate_phdr
/// callback would make us wait forever: past the bound the fork goes ahead as before.
pub fn before_fork() {
    let deadline = crate::sys::real::now_ns() + 100_000_000;
    loop {
        if try_take_walk() {
            HELD_FOR_FORK.store(true, Ordering::Relaxed);
            return;
        }
        if crate::sys::real::now_ns() >= deadline {
            return;
        }
        crate::sys::real::sleep_us(20);
    }
}

/// atfork child: the child has one thread, so no walk of ours is under way in it, whoever held
/// WALK in the parent (a walker the prepare handler timed out on would otherwise leave it held
/// for good, and the child's next dlopen or dlclose spinning on it).
pub fn after_fork_child() {
    HELD_FOR_FORK.store(false, Ordering::Relaxed);
    // Release: as a holder's end of section.
    WALK.store(0, Ordering::Release);
}

/// atfork parent: release what `before_fork` took.
pub fn after_fork() {
    // Relaxed: set and read by the forking thread (and its copy in the child).
    if HELD_FOR_FORK.swap(false, Ordering::Relaxed) {
        // Release: ends the critical section.
        WALK.store(0, Ordering::Release);
    }
}

/// Only the loader's counters (cheap enough to ask before every drain).
/// A signature in one word (each counter's low 32 bits: a collision needs 2^32 dlopens between
/// two looks), for atomics and ring events.
pub fn packed(sig: Signature) -> u64 {
    sig.0 << 32 | (sig.1 & 0xffff_ffff)
}

pub fn signature() -> Signature {
    walking(read_counters)
}

/// The loader's counters, from the first object's entry. Call with WALK held.
fn read_counters() -> Signature {
    extern "C" fn first(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
        // SAFETY: as in `visit`; `data` is a Signature.
        let (info, sig) = unsafe { (&*info, &mut *(data as *mut Signature)) };
        if size >= core::mem::size_of::<libc::dl_phdr_info>() {
            *sig = (info.dlpi_adds, info.dlpi_subs);
        }
        1 // stop after the first object: the counters are global
    }
    let mut sig = (0, 0);
    // SAFETY: `first` matches the callback type and `sig` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first), &mut sig as *mut Signature as *mut c_void) };
    sig
}

/// Every loaded object now, with the counters that identify this state of the map.
pub fn snapshot() -> (Vec<Module>, Signature) {
    let mut walk = Walk {
        modules: Vec::new(),
        sig: (0, 0),
    };
    // SAFETY: `visit` matches the callback type and `walk` outlives the call.
    walking(|| unsafe {
        libc::dl_iterate_phdr(Some(visit), &mut walk as *mut Walk as *mut c_void)
    });
    (walk.modules, walk.sig)
}

/// Calls `f` with every loaded object's `dl_phdr_info`, in the loader's order (WALK held).
pub fn for_each_object(mut f: impl FnMut(&libc::dl_phdr_info)) {
    extern "C" fn each(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
        // SAFETY: the loader passes a valid info of `size` bytes; `data` is the closure below.
        let (info, f) = unsafe {
            (
                &*info,
                &mut *(data as *mut &mut dyn FnMut(&libc::dl_phdr_info)),
            )
        };
        if size >= core::mem::size_of::<libc::dl_phdr_info>() {
            f(info);
        }
        0
    }
    let mut f: &mut dyn FnMut(&libc::dl_phdr_info) = &mut f;
    // SAFETY: `each` matches the callback type and `f` outlives the call.
    walking(|| unsafe { libc::dl_iterate_phdr(Some(each), &mut f as *mut _ as *mut c_void) });
}
