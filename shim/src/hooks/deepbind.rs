//! Libraries opened with `RTLD_DEEPBIND` look their symbols up in their own dependencies first,
//! so their calls to `free`, `realloc` and `malloc_usable_size` go straight to glibc, past the
//! shim. Handed a pointer the shim served from its region (a sampled allocation of the program),
//! glibc aborts the host (`free(): invalid pointer`). So after every `dlopen` with that flag,
//! the allocation-family entries in the global offset tables of the objects it loaded are
//! pointed at the shim, wherever they point at the allocator underneath (bound now) or would
//! (lazy entries: what `dlsym` of the new handle finds). An object that brings its own
//! allocator keeps it. Both directions then work: the library's allocations are the shim's (or
//! glibc's, which the shim forwards), and every pointer is freed by the allocator that made it.

use core::ffi::{c_char, c_void, CStr};

use crate::sys::elf::{
    self, Rela, Sym, DT_JMPREL, DT_PLTRELSZ, DT_RELA, DT_RELASZ, DT_STRTAB, DT_SYMTAB,
    R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT,
};
use crate::{sampling::thread, sys::modules, sys::real, sys::underlying};

/// The interposed names a deep-bound library's GOT entries are redirected to, with the shim's
/// definitions (the exports, which know their own addresses).
pub type Ours = [(&'static CStr, usize); 11];

/// Objects loaded now: call before the dlopen, to tell the new ones after it.
pub fn count_objects() -> usize {
    let mut n = 0;
    modules::for_each_object(|_| n += 1);
    n
}

/// After a successful `dlopen(.., RTLD_DEEPBIND)` that returned `handle`: redirects the new
/// objects' (those past the first `before`) allocation entries to the shim. Inside the shim
/// (what it allocates here is its own, never sampled).
///
/// # Safety
/// `handle` is the handle that dlopen returned.
pub unsafe fn after_dlopen(handle: *mut c_void, before: usize, ours: &Ours) {
    let t = thread::current();
    let Some(_busy) = thread::Busy::enter(t) else {
        return;
    };
    t.setup_section(|| redirect(handle, before, ours));
}

fn redirect(handle: *mut c_void, before: usize, names: &Ours) {
    // What each name finds underneath: a GOT entry holding this bypasses the shim.
    let under: [Option<usize>; 11] = core::array::from_fn(|i| underlying::definition(names[i].0));
    let mut objects = Vec::new();
    let mut i = 0;
    modules::for_each_object(|info| {
        if i >= before {
            objects.push(Object::of(info));
        }
        i += 1;
    });
    for obj in objects.into_iter().flatten() {
        obj.for_each_slot(|name, slot| {
            let Some(k) = names.iter().position(|(n, _)| *n == name) else {
                return;
            };
            // SAFETY: `slot` is a GOT entry of a loaded object (an aligned word).
            let now = unsafe { (slot as *const usize).read_volatile() };
            let target = if obj.contains(now) {
                // Lazy: not bound yet. It will bind to what the new handle's scope finds first.
                // SAFETY: a handle dlopen just returned, a NUL-terminated name.
                let f = unsafe { real::dlsym(handle, name.as_ptr()) };
                if f.is_null() {
                    // Not the program's error: leave dlerror() as the successful dlopen did.
                    // SAFETY: dlerror has no preconditions.
                    unsafe { libc::dlerror() };
                }
                f as usize
            } else {
                now
            };
            if target != 0 && Some(target) == under[k] {
                obj.write(slot, names[k].1);
            }
        });
    }
}

/// What is read of one loaded object.
struct Object {
    base: usize,
    /// Its loaded ranges.
    loads: Vec<(usize, usize)>,
    relro: Option<(usize, usize)>,
    dynamic: usize,
}

impl Object {
    fn of(info: &libc::dl_phdr_info) -> Option<Object> {
        let base = info.dlpi_addr as usize;
        let mut o = Object {
            base,
            loads: Vec::new(),
            relro: None,
            dynamic: 0,
        };
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: the loader's program headers, dlpi_phnum of them.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            let range = (base + ph.p_vaddr as usize, ph.p_memsz as usize);
            match ph.p_type {
                libc::PT_LOAD => o.loads.push(range),
                libc::PT_GNU_RELRO => o.relro = Some(range),
                libc::PT_DYNAMIC => o.dynamic = range.0,
                _ => {}
            }
        }
        (o.dynamic != 0).then_some(o)
    }

    fn contains(&self, a: usize) -> bool {
        self.loads.iter().any(|&(s, n)| a >= s && a < s + n)
    }

    fn dynamic(&self, tag: i64) -> Option<usize> {
        // SAFETY: the object's dynamic section, from its PT_DYNAMIC header.
        unsafe { elf::dynamic_entry(self.dynamic as *const elf::Dyn, self.base, tag) }
    }

    /// Calls `f(name, slot address)` for each GOT entry bound by symbol (GLOB_DAT, JUMP_SLOT).
    fn for_each_slot(&self, mut f: impl FnMut(&CStr, usize)) {
        let (Some(symtab), Some(strtab)) = (self.dynamic(DT_SYMTAB), self.dynamic(DT_STRTAB))
        else {
            return;
        };
        let tables = [(DT_JMPREL, DT_PLTRELSZ), (DT_RELA, DT_RELASZ)];
        for (at, size) in tables {
            let (Some(at), Some(size)) = (self.dynamic(at), self.dynamic(size)) else {
                continue;
            };
            let n = size / core::mem::size_of::<Rela>();
            for i in 0..n {
                // SAFETY: the object's relocation table, `n` entries.
                let r = unsafe { &*(at as *const Rela).add(i) };
                let kind = r.info as u32;
                if kind != R_X86_64_GLOB_DAT && kind != R_X86_64_JUMP_SLOT {
                    continue;
                }
                // SAFETY: the symbol index of a relocation is inside the symbol table, and its
                // name an offset into the string table.
                let name = unsafe {
                    let sym = &*(symtab as *const Sym).add((r.info >> 32) as usize);
                    CStr::from_ptr((strtab as *const c_char).add(sym.name as usize))
                };
                f(name, self.base + r.offset as usize);
            }
        }
    }

    /// Writes `value` into the GOT entry `slot`, making a read-only (RELRO) page writable for
    /// the store.
    fn write(&self, slot: usize, value: usize) {
        let page = slot & !4095;
        let in_relro = self.relro.is_some_and(|(s, n)| slot >= s && slot < s + n);
        // SAFETY: `slot` is an aligned word of this object's GOT; a RELRO page is made writable
        // for the one store and read-only again. Another thread calling through the entry
        // meanwhile reads either value whole (an aligned 8-byte store), and both are valid.
        unsafe {
            if in_relro {
                real::mprotect(
                    page as *mut c_void,
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                );
            }
            (slot as *mut usize).write_volatile(value);
            if in_relro {
                real::mprotect(page as *mut c_void, 4096, libc::PROT_READ);
            }
        }
    }
}
