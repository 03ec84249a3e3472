//! Settings, read once in the constructor with `secure_getenv` into an immutable [`Config`].
//! A bad value prints one warning and falls back to the default; nothing here can stop the host.

use std::ffi::CStr;
use std::sync::OnceLock;

use crate::real::warn;

/// Default rate: 512 KiB between samples on average, as Go and jemalloc.
pub const DEFAULT_RATE: u64 = 512 << 10;
pub const DEFAULT_DEPTH: usize = 128;
/// Default bound of the writer's table of written stacks (see stack_table.rs).
pub const DEFAULT_STACK_MEMORY: usize = 64 << 20;
/// Default bound of one capture file: a busy service at the default rate writes tens of KB a
/// second (the peers benchmark's serve workload: 70 KB/s), so some 16 hours of it.
pub const DEFAULT_MAX_SIZE: u64 = 4 << 30;
/// Deepest stack kept; bounds the per-sample header and ring slot.
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Poisson byte sampling at this rate (mean bytes between samples).
    Sampled(u64),
    /// Every allocation and free.
    All,
    /// Loaded but recording nothing.
    Off,
}

#[derive(Debug)]
pub struct Config {
    pub mode: Mode,
    pub depth: usize,
    /// `MEMSHIM_STACK_MEMORY`: bytes the writer's table of written stacks may hold.
    pub stack_memory: usize,
    /// `MEMSHIM_MAX_SIZE`: bytes one capture file may reach (0: no bound).
    pub max_size: u64,
    pub seed: Option<u64>,
    /// Record Python frames (`MEMSHIM_PYTHON=0` turns them off).
    pub python: bool,
    /// `MEMSHIM_UNWIND`: cached compact rules (`fast`), libgcc throughout, or both (`check`).
    pub unwind: crate::unwind::Mode,
    /// Output template made absolute at start (`%p` is the pid), so a later chdir does not move it.
    pub output: String,
    /// `MEMSHIM_GLIBC_FLOOR=1`: use only what glibc 2.28 has (the wheel's floor), as the shim
    /// does on such a system: no `_dl_find_object` (2.35; libgcc's unwinder locates the unwind
    /// tables), no `mallinfo2` (2.33; the heap is read with `mallinfo`).
    pub glibc_floor: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// The configuration, once the constructor has read it.
pub fn get() -> Option<&'static Config> {
    CONFIG.get()
}

/// Reads the environment; called once from the constructor.
pub fn init() -> &'static Config {
    CONFIG.get_or_init(|| Config {
        mode: env("MEMSHIM_RATE").map_or(Mode::Sampled(DEFAULT_RATE), |v| parse_rate(&v)),
        depth: env("MEMSHIM_STACK_DEPTH").map_or(DEFAULT_DEPTH, |v| parse_depth(&v)),
        stack_memory: env("MEMSHIM_STACK_MEMORY")
            .map_or(DEFAULT_STACK_MEMORY, |v| parse_stack_memory(&v)),
        max_size: env("MEMSHIM_MAX_SIZE").map_or(DEFAULT_MAX_SIZE, |v| parse_max_size(&v)),
        seed: env("MEMSHIM_SEED").and_then(|v| match v.trim().parse::<u64>() {
            Ok(s) => Some(s),
            Err(_) => {
                warn(&format!(
                    "MEMSHIM_SEED={v:?} is not a whole number; sampling is random"
                ));
                None
            }
        }),
        python: switch("MEMSHIM_PYTHON"),
        unwind: env("MEMSHIM_UNWIND").map_or(crate::unwind::Mode::Fast, |v| parse_unwinder(&v)),
        output: absolute(&env("MEMSHIM_OUTPUT").unwrap_or_else(|| "memshim.%p.msh".into())),
        glibc_floor: env("MEMSHIM_GLIBC_FLOOR").is_some() && switch("MEMSHIM_GLIBC_FLOOR"),
    })
}

extern "C" {
    /// glibc's getenv that returns NULL in setuid/setgid processes (libc crate lacks it).
    fn secure_getenv(name: *const libc::c_char) -> *mut libc::c_char;
}

/// An on/off setting, on unless set to 0/off/no/false.
fn switch(name: &str) -> bool {
    env(name).is_none_or(|v| match v.trim() {
        "0" | "off" | "no" | "false" => false,
        "1" | "on" | "yes" | "true" => true,
        _ => {
            warn(&format!("{name}={v:?} is not 0 or 1; leaving it on"));
            true
        }
    })
}

fn env(name: &str) -> Option<String> {
    let key = std::ffi::CString::new(name).ok()?;
    // SAFETY: key is NUL-terminated; secure_getenv returns NULL or a pointer into environ that
    // stays valid while we copy it (nothing here modifies the environment).
    let v = unsafe { secure_getenv(key.as_ptr()) };
    if v.is_null() {
        return None;
    }
    // SAFETY: non-null results of getenv are NUL-terminated strings.
    Some(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
}

/// `512K`, `2M`, `1G`, `4096` (bytes), `all`, or `off`.
pub fn parse_rate(v: &str) -> Mode {
    let s = v.trim();
    match s.to_ascii_lowercase().as_str() {
        "all" => return Mode::All,
        "off" => return Mode::Off,
        _ => {}
    }
    match parse_size(s) {
        Some(n) if n > 0 => Mode::Sampled(n),
        _ => {
            warn(&format!(
                "MEMSHIM_RATE={v:?} is not a size (like 512K, 2M) or 'all'; using 512K"
            ));
            Mode::Sampled(DEFAULT_RATE)
        }
    }
}

/// A byte count with an optional K/M/G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn parse_depth(v: &str) -> usize {
    match v.trim().parse::<usize>() {
        Ok(d) if (1..=MAX_DEPTH).contains(&d) => d,
        _ => {
            warn(&format!(
                "MEMSHIM_STACK_DEPTH={v:?} must be 1..={MAX_DEPTH}; using {DEFAULT_DEPTH}"
            ));
            DEFAULT_DEPTH
        }
    }
}

/// A size, or `0`/`unlimited` for no bound.
fn parse_max_size(v: &str) -> u64 {
    if v.trim().eq_ignore_ascii_case("unlimited") {
        return 0;
    }
    parse_size(v).unwrap_or_else(|| {
        warn(&format!(
            "MEMSHIM_MAX_SIZE={v:?} is not a size (like 4G) or 'unlimited'; using 4G"
        ));
        DEFAULT_MAX_SIZE
    })
}

fn parse_stack_memory(v: &str) -> usize {
    match parse_size(v) {
        Some(n) if n > 0 => n as usize,
        _ => {
            warn(&format!(
                "MEMSHIM_STACK_MEMORY={v:?} is not a size (like 64M); using 64M"
            ));
            DEFAULT_STACK_MEMORY
        }
    }
}

/// `fast` (the default), `libgcc` or `check`.
fn parse_unwinder(v: &str) -> crate::unwind::Mode {
    use crate::unwind::Mode;
    match v.trim() {
        "fast" => Mode::Fast,
        "libgcc" => Mode::Libgcc,
        "check" => Mode::Check,
        _ => {
            warn(&format!(
                "MEMSHIM_UNWIND={v:?} is not fast, libgcc or check; using fast"
            ));
            Mode::Fast
        }
    }
}

fn absolute(template: &str) -> String {
    if template.starts_with('/') {
        return template.to_string();
    }
    match std::env::current_dir() {
        Ok(d) => format!("{}/{template}", d.display()),
        Err(_) => template.to_string(),
    }
}

/// The output path for process `pid`: `%p` becomes the pid, `%%` a percent sign.
pub fn output_path(template: &str, pid: u32) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('p') => out.push_str(&pid.to_string()),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("512K"), Mode::Sampled(512 << 10));
        assert_eq!(parse_rate("2m"), Mode::Sampled(2 << 20));
        assert_eq!(parse_rate("4096"), Mode::Sampled(4096));
        assert_eq!(parse_rate("ALL"), Mode::All);
        assert_eq!(parse_rate("banana"), Mode::Sampled(DEFAULT_RATE));
        assert_eq!(parse_rate("0"), Mode::Sampled(DEFAULT_RATE));
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn templates() {
        assert_eq!(output_path("/tmp/m.%p.msh", 42), "/tmp/m.42.msh");
        assert_eq!(output_path("a%%b%q%", 1), "a%b%q%");
    }
}
