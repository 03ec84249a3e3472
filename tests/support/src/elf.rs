//! What the binutils say about an ELF file: a symbol's address and size (`nm -S`), its GNU
//! build-id (`readelf -n`).

use std::path::Path;
use std::process::Command;

/// File address and size (when nm knows one) of `sym` in `bin`.
fn nm_symbol(bin: &Path, sym: &str) -> Option<(u64, Option<u64>)> {
    let out = Command::new("nm")
        .arg("-S")
        .arg(bin)
        .output()
        .expect("nm runs (binutils)");
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [addr, size, _, name] if name == sym => Some((hex(addr), Some(hex(size)))),
                [addr, _, name] if name == sym => Some((hex(addr), None)),
                _ => None,
            },
        )
}

/// Address of `sym` in the ELF file (file virtual address).
pub fn symbol_addr(bin: &Path, sym: &str) -> u64 {
    nm_symbol(bin, sym)
        .unwrap_or_else(|| panic!("{sym} not found in {}", bin.display()))
        .0
}

/// Runtime address range of function `sym` of the ELF file `bin` loaded with bias `base`.
pub fn sym_range(bin: &Path, base: u64, sym: &str) -> (u64, u64) {
    match nm_symbol(bin, sym) {
        Some((a, Some(n))) => (base + a, base + a + n),
        _ => panic!("{sym} (with a size) not found by nm in {}", bin.display()),
    }
}

/// GNU build-id of an ELF file.
pub fn build_id(bin: &Path) -> Vec<u8> {
    let out = Command::new("readelf")
        .arg("-n")
        .arg(bin)
        .output()
        .expect("readelf runs (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("the fixture has a build-id");
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}
