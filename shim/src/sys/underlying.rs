//! The allocator underneath the shim: the next definition of `malloc` after ours in the global
//! lookup order, as `dlsym(RTLD_NEXT)` would find it. That is glibc's, unless the program
//! preloads its own after the shim (`LD_PRELOAD=libmemshim.so:libjemalloc.so.2`): then every
//! allocation is forwarded to that one, aligned functions and `malloc_usable_size` included,
//! so the program runs on the allocator it chose.
//!
//! The loader calls our malloc long before any constructor, so the choice is made on the very
//! first call into any of these functions, with nothing that can allocate or lock: the loader's
//! public list of objects (`_r_debug`), each object's dynamic symbol table and GNU hash table,
//! read in place. Each function pointer starts at a resolver that makes the choice and calls
//! through. Afterwards a call costs one load and an indirect jump, as the direct call into glibc
//! it replaces did (through our GOT).
//!
//! An allocator preloaded *before* the shim is found first by everyone, the shim never sees an
//! allocation: [`warn_if_shadowed`] says so once, naming it. An allocator linked statically into
//! the program (not exported) serves the program's own calls without any symbol lookup: the shim
//! sees only what other libraries allocate through the exported `malloc`.

use core::ffi::{c_char, c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::sys::real;

type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type MemalignFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type UsableFn = unsafe extern "C" fn(*mut c_void) -> usize;

// Each starts at its resolver. Relaxed loads: the pointers are written once (by the first
// call, during the loader's single-threaded start, with the same values by any later racer)
// and each points at code that is valid whichever value a thread sees.
static MALLOC: AtomicPtr<()> = AtomicPtr::new(first_malloc as *mut ());
static FREE: AtomicPtr<()> = AtomicPtr::new(first_free as *mut ());
static CALLOC: AtomicPtr<()> = AtomicPtr::new(first_calloc as *mut ());
static REALLOC: AtomicPtr<()> = AtomicPtr::new(first_realloc as *mut ());
static MEMALIGN: AtomicPtr<()> = AtomicPtr::new(first_memalign as *mut ());
/// Null when the allocator has none (realloc then never moves a block into the region).
static USABLE: AtomicPtr<()> = AtomicPtr::new(first_usable as *mut ());

/// # Safety
/// As for malloc.
#[inline(always)]
pub unsafe fn malloc(size: usize) -> *mut c_void {
    // SAFETY: MALLOC always holds a function of this type (see the statics).
    unsafe { core::mem::transmute::<*mut (), MallocFn>(MALLOC.load(Ordering::Relaxed))(size) }
}

/// # Safety
/// As for free, with a pointer of this allocator.
#[inline(always)]
pub unsafe fn free(p: *mut c_void) {
    // SAFETY: as in malloc().
    unsafe { core::mem::transmute::<*mut (), FreeFn>(FREE.load(Ordering::Relaxed))(p) }
}

/// # Safety
/// As for calloc.
#[inline(always)]
pub unsafe fn calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: as in malloc().
    unsafe { core::mem::transmute::<*mut (), CallocFn>(CALLOC.load(Ordering::Relaxed))(n, size) }
}

/// # Safety
/// As for realloc, with a pointer of this allocator.
#[inline(always)]
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: as in malloc().
    unsafe { core::mem::transmute::<*mut (), ReallocFn>(REALLOC.load(Ordering::Relaxed))(p, size) }
}

/// # Safety
/// As for memalign; `align` is a power of two.
#[inline(always)]
pub unsafe fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: as in malloc().
    unsafe {
        core::mem::transmute::<*mut (), MemalignFn>(MEMALIGN.load(Ordering::Relaxed))(align, size)
    }
}

/// The allocator's usable size of one of its pointers; None when it has no such function.
///
/// # Safety
/// `p` is null or a live pointer of this allocator.
pub unsafe fn usable_size(p: *mut c_void) -> Option<usize> {
    let f = USABLE.load(Ordering::Relaxed);
    // SAFETY: a non-null USABLE is a function of this type.
    (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), UsableFn>(f)(p) })
}

unsafe extern "C" fn first_malloc(size: usize) -> *mut c_void {
    choose();
    // SAFETY: forwarding to the chosen allocator.
    unsafe { malloc(size) }
}
unsafe extern "C" fn first_free(p: *mut c_void) {
    choose();
    // SAFETY: as above.
    unsafe { free(p) }
}
unsafe extern "C" fn first_calloc(n: usize, size: usize) -> *mut c_void {
    choose();
    // SAFETY: as above.
    unsafe { calloc(n, size) }
}
unsafe extern "C" fn first_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    choose();
    // SAFETY: as above.
    unsafe { realloc(p, size) }
}
unsafe extern "C" fn first_memalign(align: usize, size: usize) -> *mut c_void {
    choose();
    // SAFETY: as above.
    unsafe { memalign(align, size) }
}
unsafe extern "C" fn first_usable(p: *mut c_void) -> usize {
    choose();
    // SAFETY: as above.
    unsafe { usable_size(p) }.unwrap_or(0)
}

/// glibc's `malloc_usable_size` (it has no `__libc_` alias).
unsafe extern "C" fn glibc_usable(p: *mut c_void) -> usize {
    // SAFETY: forwarding a glibc pointer.
    unsafe { real::glibc_usable_size(p) }
}

/// Makes the choice (idempotent).
fn choose() {
    let next = loader::objects_after_us()
        .and_then(|mut objs| objs.find_map(|o| o.lookup(c"malloc").map(|m| (o, m))));
    let set = |slot: &AtomicPtr<()>, f: usize| slot.store(f as *mut (), Ordering::Relaxed);
    match next {
        Some((obj, m)) if !obj.is_libc() => {
            let free = obj.lookup(c"free");
            let calloc = obj.lookup(c"calloc");
            let realloc = obj.lookup(c"realloc");
            let memalign = obj
                .lookup(c"memalign")
                .or_else(|| obj.lookup(c"aligned_alloc"));
            if let (Some(free), Some(calloc), Some(realloc), Some(memalign)) =
                (free, calloc, realloc, memalign)
            {
                set(&MALLOC, m);
                set(&FREE, free);
                set(&CALLOC, calloc);
                set(&REALLOC, realloc);
                set(&MEMALIGN, memalign);
                set(&USABLE, obj.lookup(c"malloc_usable_size").unwrap_or(0));
                return;
            }
            glibc_all(set)
        }
        _ => glibc_all(set),
    }
}

fn glibc_all(set: impl Fn(&AtomicPtr<()>, usize)) {
    set(&MALLOC, real::__libc_malloc as *const () as usize);
    set(&FREE, real::__libc_free as *const () as usize);
    set(&CALLOC, real::__libc_calloc as *const () as usize);
    set(&REALLOC, real::__libc_realloc as *const () as usize);
    set(&MEMALIGN, real::__libc_memalign as *const () as usize);
    set(&USABLE, glibc_usable as *const () as usize);
}

/// The first definition of `name` after the shim's, in the global lookup order (what the
/// allocator underneath has for it).
pub fn definition(name: &CStr) -> Option<usize> {
    loader::objects_after_us()?.find_map(|o| o.lookup(name))
}

/// True when the allocator underneath is not glibc's.
pub fn is_foreign() -> bool {
    MALLOC.load(Ordering::Relaxed) != real::__libc_malloc as *mut ()
}

/// Warns once when an object loaded before the shim (the program, or an earlier preload)
/// defines `malloc`: everyone finds that one first, and the shim sees no allocation. True then.
pub fn warn_if_shadowed() -> bool {
    let Some(mut before) = loader::objects_before_us() else {
        return false;
    };
    if let Some(o) = before.find(|o| o.lookup(c"malloc").is_some()) {
        let name = o.name();
        let who = if name.is_empty() {
            "the program itself".to_string()
        } else {
            name.to_string()
        };
        real::warn(&format!(
            "{who} defines malloc and comes before libmemshim.so, so the shim sees no \
             allocation and records nothing; put libmemshim.so first in LD_PRELOAD"
        ));
        return true;
    }
    false
}

/// The loader's list of objects, read in place (no allocation, no lock).
mod loader {
    use super::*;
    use crate::sys::elf::{
        self, Dyn, Sym, DT_GNU_HASH, DT_HASH, DT_STRTAB, DT_SYMTAB, STT_FUNC, STT_GNU_IFUNC,
    };

    #[repr(C)]
    struct RDebug {
        version: i32,
        map: *const LinkMap,
    }

    /// The public head of glibc's `struct link_map`.
    #[repr(C)]
    pub struct LinkMap {
        addr: usize,
        name: *const c_char,
        ld: *const Dyn,
        next: *const LinkMap,
        prev: *const LinkMap,
    }

    extern "C" {
        static _r_debug: RDebug;
        /// Our own dynamic section (defined by the linker in every shared object).
        static _DYNAMIC: [Dyn; 0];
    }

    pub struct Objects {
        cur: *const LinkMap,
        stop: *const LinkMap,
    }

    impl Iterator for Objects {
        type Item = &'static LinkMap;
        fn next(&mut self) -> Option<Self::Item> {
            if self.cur.is_null() || self.cur == self.stop {
                return None;
            }
            // SAFETY: a node of the loader's list; nodes live as long as their object, and no
            // object is unloaded while the loader starts (when this mostly runs) or while a
            // caller of malloc is inside it.
            let m = unsafe { &*self.cur };
            self.cur = m.next;
            Some(m)
        }
    }

    fn head() -> *const LinkMap {
        // SAFETY: _r_debug is the loader's; reading its list head is what debuggers do.
        unsafe { core::ptr::addr_of!(_r_debug).read_volatile().map }
    }

    fn ours() -> Option<*const LinkMap> {
        // Only the address of our own dynamic section is taken.
        let dynamic = core::ptr::addr_of!(_DYNAMIC) as *const Dyn;
        let mut m = head();
        while !m.is_null() {
            // SAFETY: as in Objects::next.
            let node = unsafe { &*m };
            if node.ld == dynamic {
                return Some(m);
            }
            m = node.next;
        }
        None
    }

    /// The objects after ours, in lookup order.
    pub fn objects_after_us() -> Option<Objects> {
        // SAFETY: as in Objects::next.
        let cur = unsafe { &*ours()? }.next;
        Some(Objects {
            cur,
            stop: core::ptr::null(),
        })
    }

    /// The objects before ours (the program first).
    pub fn objects_before_us() -> Option<Objects> {
        Some(Objects {
            cur: head(),
            stop: ours()?,
        })
    }

    impl LinkMap {
        pub fn name(&self) -> &str {
            if self.name.is_null() {
                return "";
            }
            // SAFETY: the loader's NUL-terminated name of the object.
            unsafe { CStr::from_ptr(self.name) }.to_str().unwrap_or("")
        }

        pub fn is_libc(&self) -> bool {
            self.name()
                .rsplit('/')
                .next()
                .is_some_and(|f| f.starts_with("libc.so"))
        }

        fn dynamic(&self, tag: i64) -> Option<usize> {
            // SAFETY: the loader's dynamic section of this object.
            unsafe { elf::dynamic_entry(self.ld, self.addr, tag) }
        }

        /// The address of the function `name` this object defines, if it does.
        pub fn lookup(&self, name: &CStr) -> Option<usize> {
            let symtab = self.dynamic(DT_SYMTAB)? as *const Sym;
            let strtab = self.dynamic(DT_STRTAB)? as *const c_char;
            let found = |i: usize| -> Option<usize> {
                // SAFETY: `i` is a symbol index the hash table gave, inside the table.
                let s = unsafe { &*symtab.add(i) };
                let kind = s.info & 0xf;
                if s.shndx == 0 || s.value == 0 || (kind != STT_FUNC && kind != STT_GNU_IFUNC) {
                    return None;
                }
                // SAFETY: st_name is an offset into the string table.
                let n = unsafe { CStr::from_ptr(strtab.add(s.name as usize)) };
                if n != name {
                    return None;
                }
                let addr = self.addr + s.value as usize;
                if kind == STT_GNU_IFUNC {
                    // SAFETY: an IFUNC symbol's value is its resolver, which returns the
                    // implementation (x86-64 resolvers take no arguments they need).
                    return Some(unsafe {
                        core::mem::transmute::<usize, extern "C" fn() -> usize>(addr)()
                    });
                }
                Some(addr)
            };
            if let Some(h) = self.dynamic(DT_GNU_HASH) {
                return gnu_lookup(h, name, found);
            }
            let h = self.dynamic(DT_HASH)? as *const u32;
            // SAFETY: DT_HASH is nbucket, nchain, then the chains; nchain is the symbol count.
            let n = unsafe { *h.add(1) } as usize;
            (1..n).find_map(found)
        }
    }

    fn gnu_lookup(
        table: usize,
        name: &CStr,
        found: impl Fn(usize) -> Option<usize>,
    ) -> Option<usize> {
        let h = name
            .to_bytes()
            .iter()
            .fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32));
        let w = table as *const u32;
        // SAFETY: the GNU hash table's header, bloom filter, buckets and chains, in the layout
        // the ELF GNU hash section defines; indices come from the table itself.
        unsafe {
            let (nbuckets, symoffset, bloom_size, shift) = (*w, *w.add(1), *w.add(2), *w.add(3));
            if nbuckets == 0 || bloom_size == 0 {
                return None;
            }
            let bloom = w.add(4) as *const u64;
            let word = *bloom.add(((h / 64) % bloom_size) as usize);
            let mask = (1u64 << (h % 64)) | (1u64 << ((h >> shift) % 64));
            if word & mask != mask {
                return None;
            }
            let buckets = bloom.add(bloom_size as usize) as *const u32;
            let chains = buckets.add(nbuckets as usize);
            let mut i = *buckets.add((h % nbuckets) as usize);
            if i < symoffset {
                return None;
            }
            loop {
                let c = *chains.add((i - symoffset) as usize);
                if (c | 1) == (h | 1) {
                    if let Some(a) = found(i as usize) {
                        return Some(a);
                    }
                }
                if c & 1 != 0 {
                    return None;
                }
                i += 1;
            }
        }
    }
}
