//! The writer thread's own file-descriptor table, so that no descriptor the program juggles can
//! ever be ours, and none of ours can ever be the program's.
//!
//! Programs close and reuse descriptor numbers freely: shells close everything from 3 up,
//! `subprocess` and `posix_spawn` close what they do not pass, daemons reopen 0-2. A descriptor
//! of ours in the program's table can be closed and its number reopened as the program's own
//! between any check and any write, so no check on a shared number is race-free. Instead the
//! writer thread leaves the table it shares with the program (`close_range(CLOSE_RANGE_UNSHARE)`,
//! which seccomp profiles that forbid `unshare` still allow; `unshare(CLONE_FILES)` otherwise)
//! and drops its copies of the program's descriptors at once (a copy of a pipe's write end would
//! keep the reader from seeing end-of-file). Every file the shim opens afterwards (the capture,
//! /proc files) lives in that private table: the program cannot name, close or inherit it, and
//! our writes cannot land anywhere else. Only writer threads open, write or close descriptors.
//!
//! When neither call is allowed, the table stays shared ([`Table::Shared`]) and the capture's
//! descriptor is moved above the numbers programs juggle and checked (device and inode) before
//! every write; a write may then still race a close-and-reopen by another thread. That fallback
//! is the only mode with a window, and the README says so.

use core::sync::atomic::{AtomicU8, Ordering};

/// Where this process's writer threads keep their descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The writer's own table: nothing the program does can reach its descriptors.
    Private,
    /// Shared with the program (isolation refused): descriptors checked before each use.
    Shared,
}

const UNKNOWN: u8 = 0;
const PRIVATE: u8 = 1;
const SHARED: u8 = 2;
/// What the last writer thread got (all of a process's writers get the same, in practice).
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The lowest number the shared-table fallback gives its descriptors: above what shells
/// redirect (0-9) and what most programs open, so a reused number is unlikely to be ours.
pub const SHARED_FLOOR: i32 = 800;

/// Gives the calling (writer) thread a private descriptor table holding only 0-2 (copies of the
/// program's, dropped by [`seal`] once the capture is open). Call first thing on a writer
/// thread.
pub fn isolate() -> Table {
    // SAFETY: close_range with CLOSE_RANGE_UNSHARE gives this thread its own copy of the table,
    // then closes 3.. in that copy only; it touches no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        )
    };
    let table = if rc == 0 || unshare_and_close() {
        Table::Private
    } else {
        Table::Shared
    };
    let m = if table == Table::Private {
        PRIVATE
    } else {
        SHARED
    };
    // Relaxed: read by the fork child handler of this process, which runs after the spawn.
    MODE.store(m, Ordering::Relaxed);
    table
}

/// Older kernels (before 5.9) without close_range: unshare, then close 3.. one by one, listing
/// this thread's table (now private) in /proc/thread-self/fd.
fn unshare_and_close() -> bool {
    // SAFETY: unshare(CLONE_FILES) copies this thread's descriptor table; no memory is touched.
    if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
        return false;
    }
    let Ok(dir) = std::fs::read_dir("/proc/thread-self/fd") else {
        return true;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: closing a descriptor of this thread's private table (the program's table is
        // no longer ours); the directory's own descriptor is closed already.
        unsafe { libc::close(fd) };
    }
    true
}

/// After the capture is open: replaces the writer's copies of the program's 0-2 with an
/// eventfd that swallows any write, so nothing of ours (a warning, a panic message) can reach
/// the program's terminal or pipes from a writer thread, and the copies do not hold the
/// program's pipes open. Private tables only.
pub fn seal(table: Table) {
    if table != Table::Private {
        return;
    }
    // SAFETY: eventfd and dup2 on this thread's private table; a failure leaves the copies
    // closed instead (close below), which is as good.
    unsafe {
        let sink = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
        for fd in 0..3 {
            if sink < 0 || libc::dup2(sink, fd) < 0 {
                libc::close(fd);
            }
        }
        if sink > 2 {
            libc::close(sink);
        }
    }
}

/// The table the writer threads of this process use (`None` before the first one started).
pub fn mode() -> Option<Table> {
    // Relaxed: see isolate().
    match MODE.load(Ordering::Relaxed) {
        PRIVATE => Some(Table::Private),
        SHARED => Some(Table::Shared),
        _ => None,
    }
}

/// Moves a descriptor of the shared table above [`SHARED_FLOOR`] (close-on-exec), closing the
/// low one we just opened. Private tables keep their numbers.
pub fn settle(fd: i32, table: Table) -> i32 {
    if table == Table::Private || fd >= SHARED_FLOOR {
        return fd;
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor of ours; the old number was opened by us a
    // moment ago (a race with a program closing numbers it does not own is the fallback's
    // documented window).
    unsafe {
        let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, SHARED_FLOOR);
        if high < 0 {
            return fd;
        }
        libc::close(fd);
        high
    }
}

/// Device and inode of an open descriptor (None when it is not open).
pub fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: fstat writes into a local struct; a closed descriptor just fails.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}
