//! What the writer learns about the process: identity for the header, memory for the timeline.

use std::io::Read;
use std::os::unix::fs::FileExt;

/// `/proc/self/statm`, kept open so each tick costs one `pread`.
#[derive(Debug)]
pub struct Statm(Option<std::fs::File>);

impl Statm {
    pub fn open() -> Self {
        Statm(std::fs::File::open("/proc/self/statm").ok())
    }

    /// Resident set size in bytes (0 when unknown).
    pub fn rss(&self, page: u64) -> u64 {
        let Some(f) = &self.0 else { return 0 };
        let mut buf = [0u8; 128];
        let n = f.read_at(&mut buf, 0).unwrap_or(0);
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
        text.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * page
    }
}

/// Bytes in use in glibc's heap: small chunks plus mmapped chunks. Takes the arena locks briefly,
/// so it runs on the writer thread only, never on an allocation path.
pub fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 has no preconditions; it only reads allocator statistics.
    let mi = unsafe { libc::mallinfo2() };
    (mi.uordblks + mi.hblkhd) as u64
}

/// The executable's path and the command line.
pub fn exe_and_argv() -> (String, Vec<String>) {
    let exe = std::fs::read_link("/proc/self/exe")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut raw = Vec::new();
    if let Ok(mut f) = std::fs::File::open("/proc/self/cmdline") {
        let _ = f.read_to_end(&mut raw);
    }
    let argv = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (exe, argv)
}

/// The calling thread's name (16 bytes, NUL-padded), without allocating.
pub fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes into the buffer.
    unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
    name
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as u64 }
}
