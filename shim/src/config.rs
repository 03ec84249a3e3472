//! Settings, read once in the constructor with `secure_getenv` into an immutable [`Config`].
//! A bad value prints one warning and falls back to the default; nothing here can stop the host.

use std::ffi::CStr;
use std::sync::OnceLock;

use crate::sys::real::warn;

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

/// Which unwinder walks samples (`MEMSHIM_UNWIND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwindMode {
    Libgcc = 0,
    Fast = 1,
    /// Fast, and libgcc too, counting every sample where they disagree.
    Check = 2,
}

/// What the capture holds (`MEMSHIM_MODE`): every sampled event, or per-stack aggregates written
/// as snapshots (the bounded production mode). Not the recording state (`state.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureKind {
    Events,
    Snapshots,
}

/// Default `MEMSHIM_INTERVAL`: a snapshot a minute.
pub const DEFAULT_INTERVAL_NS: u64 = 60_000_000_000;
/// Default `MEMSHIM_KEEP`: files of a rolled-over series kept.
pub const DEFAULT_KEEP: u32 = 3;

#[derive(Debug)]
pub struct Config {
    pub mode: Mode,
    /// `MEMSHIM_MODE`: events (the default) or snapshots.
    pub capture: CaptureKind,
    /// `MEMSHIM_INTERVAL`: time between snapshots.
    pub interval_ns: u64,
    /// `MEMSHIM_KEEP`: the newest files of a snapshot series kept when it rolls over.
    pub keep: u32,
    /// `MEMSHIM_START=paused`: loaded with recording off until `memshim ctl PID start`.
    pub paused: bool,
    pub depth: usize,
    /// `MEMSHIM_STACK_MEMORY`: bytes the writer's table of written stacks may hold.
    pub stack_memory: usize,
    /// `MEMSHIM_MAX_SIZE`: bytes one capture file may reach (0: no bound).
    pub max_size: u64,
    pub seed: Option<u64>,
    /// Record Python frames (`MEMSHIM_PYTHON=0` turns them off).
    pub python: bool,
    /// `MEMSHIM_UNWIND`: cached compact rules (`fast`), libgcc throughout, or both (`check`).
    pub unwind: UnwindMode,
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
        capture: env("MEMSHIM_MODE").map_or(CaptureKind::Events, |v| parse_capture(&v)),
        interval_ns: env("MEMSHIM_INTERVAL").map_or(DEFAULT_INTERVAL_NS, |v| parse_interval(&v)),
        keep: env("MEMSHIM_KEEP").map_or(DEFAULT_KEEP, |v| parse_keep(&v)),
        paused: env("MEMSHIM_START").is_some_and(|v| parse_start(&v)),
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
        unwind: env("MEMSHIM_UNWIND").map_or(UnwindMode::Fast, |v| parse_unwinder(&v)),
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

/// `events` (the default) or `snapshots`.
fn parse_capture(v: &str) -> CaptureKind {
    match v.trim() {
        "events" => CaptureKind::Events,
        "snapshots" => CaptureKind::Snapshots,
        _ => {
            warn(&format!(
                "MEMSHIM_MODE={v:?} is not events or snapshots; using events"
            ));
            CaptureKind::Events
        }
    }
}

/// A duration: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit): (&str, u64) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000_000_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000_000_000)
    } else {
        (s, 1_000_000_000)
    };
    let n: f64 = num.trim().parse().ok()?;
    (n.is_finite() && n > 0.0).then_some((n * unit as f64) as u64)
}

/// At least 10 ms: a snapshot more often than that costs more than it tells.
fn parse_interval(v: &str) -> u64 {
    match parse_duration_ns(v) {
        Some(ns) if ns >= 10_000_000 => ns,
        _ => {
            warn(&format!(
                "MEMSHIM_INTERVAL={v:?} is not a duration of 10ms or more (like 60s, 5m); using 60s"
            ));
            DEFAULT_INTERVAL_NS
        }
    }
}

fn parse_keep(v: &str) -> u32 {
    match v.trim().parse::<u32>() {
        Ok(n) if n >= 1 => n,
        _ => {
            warn(&format!(
                "MEMSHIM_KEEP={v:?} is not a count of 1 or more; using 3"
            ));
            DEFAULT_KEEP
        }
    }
}

/// `paused`, or `running` (the default).
fn parse_start(v: &str) -> bool {
    match v.trim() {
        "paused" => true,
        "running" | "" => false,
        _ => {
            warn(&format!(
                "MEMSHIM_START={v:?} is not paused or running; starting now"
            ));
            false
        }
    }
}

/// `fast` (the default), `libgcc` or `check`.
fn parse_unwinder(v: &str) -> UnwindMode {
    use UnwindMode as Mode;
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

    #[test]
    fn durations_and_snapshot_settings() {
        assert_eq!(parse_duration_ns("500ms"), Some(500_000_000));
        assert_eq!(parse_duration_ns("60s"), Some(60_000_000_000));
        assert_eq!(parse_duration_ns("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration_ns("1h"), Some(3_600_000_000_000));
        assert_eq!(parse_duration_ns("1.5"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("-1s"), None);
        assert_eq!(parse_duration_ns("soon"), None);
        assert_eq!(parse_interval("1ms"), DEFAULT_INTERVAL_NS);
        assert_eq!(parse_capture("snapshots"), CaptureKind::Snapshots);
        assert_eq!(parse_capture("weird"), CaptureKind::Events);
        assert_eq!(parse_keep("0"), DEFAULT_KEEP);
        assert!(parse_start("paused") && !parse_start("running"));
    }
}
