//! The capture file as the writer threads hold it: a descriptor in the writer's private table
//! (see fdtable.rs), reopened by path, verified to be the same inode, when a new writer thread
//! takes over (a writer that stepped aside for a fork or an `unshare` took its table with it).
//! Only writer threads create, write or reopen it; nothing here ever closes a descriptor it did
//! not open itself.

use std::io;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::sys::real;
use crate::writer::fdtable::{self, Table};

#[derive(Debug)]
pub struct CaptureFile {
    fd: i32,
    /// The path actually created (`NAME.1.msh` when `NAME.msh` existed).
    path: String,
    /// Device and inode of the file created, to know it again.
    id: (u64, u64),
    table: Table,
    /// The writer thread whose table holds `fd` (see [`current_writer`]).
    owner: u32,
}

/// A number for the writer thread running now, bumped by each new one: a descriptor opened by
/// an earlier writer is not in this one's private table.
static WRITER_SEQ: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Called first thing by each new writer thread.
pub fn new_writer() -> u32 {
    // Relaxed: one writer thread at a time; the count only tells them apart.
    WRITER_SEQ.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1
}

pub fn current_writer() -> u32 {
    // Relaxed: as in new_writer().
    WRITER_SEQ.load(core::sync::atomic::Ordering::Relaxed)
}

/// Opens `p` for writing only if it does not exist (0600, never through a symlink).
fn create_new(p: &str) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
}

/// Candidate names for a capture: `path`, then `NAME.1.msh`, `NAME.2.msh`, ... (an exec keeps
/// the pid, a pid may be reused).
fn candidates(path: &str) -> impl Iterator<Item = String> + '_ {
    let (stem, ext) = match path.rsplit_once('.') {
        Some((s, e)) if !e.contains('/') && !s.ends_with('/') => (s, format!(".{e}")),
        _ => (path, String::new()),
    };
    core::iter::once(path.to_string()).chain((1..=100).map(move |n| format!("{stem}.{n}{ext}")))
}

impl CaptureFile {
    /// Creates the capture with `header` already in it, so that no reader ever finds it empty
    /// (a process killed right after its first sample, as `yes | head` kills `yes`): written to
    /// an unnamed file in the directory (`O_TMPFILE`), then given its name. Where the file
    /// system has no unnamed files, created by name and written at once.
    pub fn create(path: &str, table: Table, header: &[u8]) -> io::Result<CaptureFile> {
        match Self::create_unnamed(path, table, header) {
            Some(r) => r,
            None => {
                let mut f = Self::create_named(path, table)?;
                f.write_all(header)?;
                Ok(f)
            }
        }
    }

    /// None when the directory cannot hold an unnamed file.
    fn create_unnamed(path: &str, table: Table, header: &[u8]) -> Option<io::Result<CaptureFile>> {
        let dir = match path.rsplit_once('/') {
            Some(("", _)) => "/",
            Some((d, _)) => d,
            None => ".",
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(dir)
            .ok()?;
        let fd = fdtable::settle(file.into_raw_fd(), table);
        let close = |fd: i32| {
            // SAFETY: `fd` was opened above, by us.
            unsafe { libc::close(fd) };
        };
        if let Err(e) = write_quietly(fd, header) {
            close(fd);
            return Some(Err(e));
        }
        // The writer's own table: /proc/thread-self, not /proc/self (the program's).
        let Ok(me) = std::ffi::CString::new(format!("/proc/thread-self/fd/{fd}")) else {
            close(fd);
            return None;
        };
        for candidate in candidates(path) {
            let Ok(to) = std::ffi::CString::new(candidate.as_str()) else {
                break;
            };
            // SAFETY: NUL-terminated paths; linkat gives the unnamed file a name, failing
            // (EEXIST) rather than replacing anything.
            let rc = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    me.as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if rc == 0 {
                let Some(id) = fdtable::identity(fd) else {
                    close(fd);
                    return Some(Err(io::Error::last_os_error()));
                };
                return Some(Ok(CaptureFile {
                    fd,
                    path: candidate,
                    id,
                    table,
                    owner: current_writer(),
                }));
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::AlreadyExists {
                close(fd);
                return None;
            }
        }
        close(fd);
        None
    }

    /// Creates `path` exclusively (or the first free candidate name).
    fn create_named(path: &str, table: Table) -> io::Result<CaptureFile> {
        let mut names = candidates(path);
        let mut candidate = names.next().unwrap_or_default();
        let file = loop {
            match create_new(&candidate) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match names.next() {
                    Some(n) => candidate = n,
                    None => return Err(e),
                },
                other => break other?,
            }
        };
        let fd = fdtable::settle(file.into_raw_fd(), table);
        let id = fdtable::identity(fd).ok_or_else(io::Error::last_os_error)?;
        Ok(CaptureFile {
            fd,
            path: candidate,
            id,
            table,
            owner: current_writer(),
        })
    }

    /// The descriptor, when it sits in the program's table (the shared-table fallback).
    pub fn shared_fd(&self) -> Option<i32> {
        (self.table == Table::Shared).then_some(self.fd)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Which descriptor table the capture lives in.
    pub fn table(&self) -> Table {
        self.table
    }

    /// Closes the capture (a snapshot series moving on to its next file), if the descriptor is
    /// still ours in this writer's table; otherwise leaves the number alone (it may be the
    /// program's now).
    pub fn close(self) {
        let ours = match self.table {
            Table::Private => self.owner == current_writer(),
            Table::Shared => fdtable::identity(self.fd) == Some(self.id),
        };
        if ours {
            // SAFETY: our own descriptor, checked just above.
            unsafe { libc::close(self.fd) };
        }
    }

    /// Makes the descriptor usable by the writer thread running now: a private table of an
    /// earlier writer is gone with it, and in a shared table the program may have closed or
    /// replaced ours. Reopens the file by path, refusing any file but ours.
    fn attach(&mut self) -> io::Result<()> {
        let ours = match self.table {
            Table::Private => self.owner == current_writer(),
            Table::Shared => fdtable::identity(self.fd) == Some(self.id),
        };
        if ours {
            return Ok(());
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path)?;
        let fd = fdtable::settle(file.into_raw_fd(), self.table);
        if fdtable::identity(fd) != Some(self.id) {
            // SAFETY: `fd` was opened just above, by us; it is not the capture.
            unsafe { libc::close(fd) };
            return Err(io::Error::other(
                "the capture was replaced at its path; recording stopped",
            ));
        }
        // The old number is left alone: in a shared table it may be the program's now.
        self.fd = fd;
        self.owner = current_writer();
        Ok(())
    }

    /// Writes all of `bytes` at the end of the capture.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.attach()?;
        write_quietly(self.fd, bytes)
    }
}

/// Writes `bytes` with SIGXFSZ blocked. Past the process's file-size limit (RLIMIT_FSIZE) a write
/// raises SIGXFSZ, whose default action kills the process. Writer threads block every signal
/// anyway; this keeps it so if one is ever run elsewhere. A SIGXFSZ our write raised (it failed
/// with EFBIG) is taken back before the old mask returns; one already pending is left alone.
fn write_quietly(fd: i32, mut bytes: &[u8]) -> io::Result<()> {
    // SAFETY: signal-mask calls on valid, local sets; the old mask is restored before returning.
    // The writes read `bytes` only.
    unsafe {
        let mut xfsz: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut xfsz);
        libc::sigaddset(&mut xfsz, libc::SIGXFSZ);
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &xfsz, &mut old);
        let mut pending: libc::sigset_t = core::mem::zeroed();
        libc::sigpending(&mut pending);
        let was_pending = libc::sigismember(&pending, libc::SIGXFSZ) == 1;
        let mut result = Ok(());
        while !bytes.is_empty() {
            let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                result = Err(e);
                break;
            }
            if n == 0 {
                result = Err(io::Error::from(io::ErrorKind::WriteZero));
                break;
            }
            bytes = &bytes[n as usize..];
        }
        let too_big = matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EFBIG));
        if too_big && !was_pending {
            libc::sigpending(&mut pending);
            if libc::sigismember(&pending, libc::SIGXFSZ) == 1 {
                libc::sigtimedwait(&xfsz, core::ptr::null_mut(), &real::timespec_us(0));
            }
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        result
    }
}
