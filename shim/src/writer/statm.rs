//! The resident set size the writer reads for each tick.

use std::os::unix::fs::FileExt;

/// `/proc/self/statm`, kept open so each tick costs one `pread`; opened again by each new writer
/// thread (an earlier writer's private descriptor table went with it, see fdtable.rs).
#[derive(Debug)]
pub struct Statm {
    file: Option<std::fs::File>,
    owner: u32,
}

impl Statm {
    pub fn open() -> Self {
        Statm {
            file: std::fs::File::open("/proc/self/statm").ok(),
            owner: super::capture_file::current_writer(),
        }
    }

    /// Resident set size in bytes (0 when unknown).
    pub fn rss(&mut self, page: u64) -> u64 {
        if self.owner != super::capture_file::current_writer() {
            // The old number is not ours in this thread's table: forget it, never close it.
            if let Some(f) = self.file.take() {
                let _ = std::os::fd::IntoRawFd::into_raw_fd(f);
            }
            *self = Statm::open();
        }
        let Some(f) = &self.file else { return 0 };
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
