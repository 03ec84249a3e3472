//! The separate debug file of an ELF module: by build-id under the system's debug directory
//! (`/usr/lib/debug/.build-id/xx/rest.debug`), or named by its `.gnu_debuglink` section and
//! looked up where gdb looks (beside the module, in its `.debug/`, and under `/usr/lib/debug`
//! with the module's directory). Only a file whose build-id is the module's is returned.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::hex;

/// Where distributions install debug files.
pub const SYSTEM_DEBUG_DIR: &str = "/usr/lib/debug";

/// The separate debug file of the module at `module` (which may be gone) with `build_id`.
pub fn find(module: &Path, build_id: &[u8]) -> Option<PathBuf> {
    let mut candidates = vec![build_id_path(
        Path::new(SYSTEM_DEBUG_DIR),
        build_id,
        ".debug",
    )];
    if let Some(name) = debuglink_name(module) {
        let dir = module.parent().unwrap_or(Path::new("/"));
        candidates.push(dir.join(&name));
        candidates.push(dir.join(".debug").join(&name));
        let rel = dir.strip_prefix("/").unwrap_or(dir);
        candidates.push(Path::new(SYSTEM_DEBUG_DIR).join(rel).join(&name));
    }
    candidates
        .into_iter()
        .find(|c| c.as_path() != module && super::has_build_id(c, build_id))
}

/// `DIR/.build-id/xx/rest{suffix}`: the build-id tree of gdb and distributions' debug packages.
pub fn build_id_path(dir: &Path, build_id: &[u8], suffix: &str) -> PathBuf {
    let h = hex(build_id);
    let (first, rest) = h.split_at(2.min(h.len()));
    dir.join(".build-id")
        .join(first)
        .join(format!("{rest}{suffix}"))
}

/// The file name in a 64-bit little-endian ELF file's `.gnu_debuglink` section.
pub fn debuglink_name(path: &Path) -> Option<String> {
    let data = Sections::open(path)?.read(b".gnu_debuglink", 4096)?;
    let end = data.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&data[..end]).ok()?;
    // A bare file name: never a path that leads elsewhere.
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

/// True when the ELF file at `path` carries DWARF line tables of its own (not stripped).
pub fn has_dwarf(path: &Path) -> bool {
    Sections::open(path).is_some_and(|s| s.find(b".debug_line").is_some_and(|(_, len)| len > 0))
}

/// The section headers of a 64-bit little-endian ELF file (every target memshim runs on),
/// read without mapping the file: a module may be a gigabyte.
struct Sections {
    file: File,
    /// (name, offset, size) of each section.
    all: Vec<(Vec<u8>, u64, u64)>,
}

impl Sections {
    fn open(path: &Path) -> Option<Sections> {
        let mut f = File::open(path).ok()?;
        let mut eh = [0u8; 64];
        f.read_exact(&mut eh).ok()?;
        if eh[..4] != *b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
            return None;
        }
        let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
        let u32_at =
            |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64;
        let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let shoff = u64_at(&eh, 0x28);
        let shentsize = u16_at(&eh, 0x3a);
        let shnum = u16_at(&eh, 0x3c);
        let shstrndx = u16_at(&eh, 0x3e);
        if shentsize < 64 || shnum == 0 || shstrndx >= shnum || shnum > 4096 {
            return None;
        }
        let mut table = vec![0u8; (shentsize * shnum) as usize];
        f.seek(SeekFrom::Start(shoff)).ok()?;
        f.read_exact(&mut table).ok()?;
        let header = |i: u64| {
            let h = &table[(i * shentsize) as usize..];
            (u32_at(h, 0), u64_at(h, 0x18), u64_at(h, 0x20))
        };
        let (_, str_off, str_len) = header(shstrndx);
        let mut s = Sections {
            file: f,
            all: vec![],
        };
        let names = s.read_at(str_off, str_len, 1 << 20)?;
        for i in 0..shnum {
            let (name_at, off, len) = header(i);
            let name = names
                .get(name_at as usize..)
                .and_then(|n| n.iter().position(|&b| b == 0).map(|e| n[..e].to_vec()))
                .unwrap_or_default();
            s.all.push((name, off, len));
        }
        Some(s)
    }

    fn find(&self, name: &[u8]) -> Option<(u64, u64)> {
        self.all
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|&(_, off, len)| (off, len))
    }

    /// Up to `max` bytes of the section `name`.
    fn read(&mut self, name: &[u8], max: u64) -> Option<Vec<u8>> {
        let (off, len) = self.find(name)?;
        self.read_at(off, len.min(max), max)
    }

    fn read_at(&mut self, off: u64, len: u64, max: u64) -> Option<Vec<u8>> {
        if len > max {
            return None;
        }
        let mut v = vec![0u8; len as usize];
        self.file.seek(SeekFrom::Start(off)).ok()?;
        self.file.read_exact(&mut v).ok()?;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_paths_split_the_first_byte_off() {
        assert_eq!(
            build_id_path(Path::new("/usr/lib/debug"), &[0xab, 0xcd, 0xef], ".debug"),
            Path::new("/usr/lib/debug/.build-id/ab/cdef.debug")
        );
    }

    #[test]
    fn a_file_that_is_not_elf_has_no_debuglink() {
        assert_eq!(debuglink_name(Path::new("/proc/self/status")), None);
        assert_eq!(debuglink_name(Path::new("/nonexistent")), None);
        assert!(!has_dwarf(Path::new("/nonexistent")));
    }

    #[test]
    fn this_test_binary_has_its_own_dwarf() {
        // Built with line tables (the workspace's profiles keep them).
        let me = std::env::current_exe().unwrap();
        assert!(has_dwarf(&me), "{}", me.display());
    }
}
