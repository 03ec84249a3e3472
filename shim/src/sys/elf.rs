//! The few ELF structures the shim reads in loaded objects (x86-64): dynamic entries, symbols,
//! relocations. Read in place, in memory the loader mapped.

#[repr(C)]
pub struct Dyn {
    pub tag: i64,
    pub val: u64,
}

#[repr(C)]
pub struct Sym {
    pub name: u32,
    pub info: u8,
    pub other: u8,
    pub shndx: u16,
    pub value: u64,
    pub size: u64,
}

#[repr(C)]
pub struct Rela {
    pub offset: u64,
    pub info: u64,
    pub addend: i64,
}

pub const DT_NULL: i64 = 0;
pub const DT_PLTRELSZ: i64 = 2;
pub const DT_HASH: i64 = 4;
pub const DT_STRTAB: i64 = 5;
pub const DT_SYMTAB: i64 = 6;
pub const DT_RELA: i64 = 7;
pub const DT_RELASZ: i64 = 8;
pub const DT_JMPREL: i64 = 23;
pub const DT_GNU_HASH: i64 = 0x6fff_fef5;
pub const STT_FUNC: u8 = 2;
pub const STT_GNU_IFUNC: u8 = 10;
pub const R_X86_64_GLOB_DAT: u32 = 6;
pub const R_X86_64_JUMP_SLOT: u32 = 7;

/// The value of entry `tag` in the dynamic section at `dynamic` of an object loaded at `base`.
/// Address entries come out absolute: glibc relocates most of them in place, not all (read-only
/// sections, the vDSO), so a value below the load base is still relative.
///
/// # Safety
/// `dynamic` is null or a loaded object's dynamic section (terminated by DT_NULL).
pub unsafe fn dynamic_entry(dynamic: *const Dyn, base: usize, tag: i64) -> Option<usize> {
    let mut d = dynamic;
    if d.is_null() {
        return None;
    }
    loop {
        // SAFETY: inside the section, not past DT_NULL (the caller's promise).
        let e = unsafe { &*d };
        if e.tag == DT_NULL {
            return None;
        }
        if e.tag == tag {
            let v = e.val as usize;
            let is_size = matches!(tag, DT_RELASZ | DT_PLTRELSZ);
            return Some(if !is_size && v < base { v + base } else { v });
        }
        // SAFETY: not past DT_NULL.
        d = unsafe { d.add(1) };
    }
}
