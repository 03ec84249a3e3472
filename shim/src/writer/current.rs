//! The process's one [`Writer`]: created by the first writer thread that needs it, shared by the
//! writer threads of a process (one at a time), forgotten in a fork child.

use core::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::Mutex;

use super::capture::Writer;
use super::fdtable;
use crate::sampling::thread;
use crate::{config, state, sys::real, transport::ring};

/// The writer's state; `None` until the writer thread (or an exit path) opens the capture.
static WRITER: AtomicPtr<Mutex<Option<Writer>>> = AtomicPtr::new(core::ptr::null_mut());
/// The capture's descriptor when the writer shares the program's descriptor table (the
/// fallback of fdtable.rs), so a fork child can close its inherited copy; -1 otherwise.
static SHARED_FD: AtomicI32 = AtomicI32::new(-1);

/// Makes room for this process's writer (before its thread starts). Allocates: one-time section.
pub fn prepare() {
    // Release: a writer thread that loads it sees the initialised mutex.
    WRITER.store(Box::into_raw(Box::new(Mutex::new(None))), Ordering::Release);
}

/// Runs `f` on the open writer, opening the capture first if nobody has yet. False when the
/// capture cannot be written (recording is then disabled, with one warning). Writer threads
/// only: the file lives in their descriptor table.
pub fn with_writer(f: impl FnOnce(&mut Writer)) -> bool {
    debug_assert!(thread::current().has(thread::FLAG_WRITER));
    // Acquire: pairs with prepare().
    let w = WRITER.load(Ordering::Acquire);
    if w.is_null() {
        return false;
    }
    // SAFETY: the writer box is never freed while its process's capture runs.
    let Ok(mut guard) = (unsafe { &*w }).lock() else {
        return false;
    };
    if guard.is_none() {
        let Some(cfg) = config::get() else {
            return false;
        };
        let path = config::output_path(&cfg.output, real::getpid());
        let table = fdtable::mode().unwrap_or(fdtable::Table::Shared);
        let ring = ring::current().map_or(core::ptr::null_mut(), |r| r as *const _ as *mut _);
        match Writer::create(&path, cfg, ring, table) {
            Ok(writer) => {
                if let Some(fd) = writer.shared_fd() {
                    // Relaxed: read only by this process's fork child handler.
                    SHARED_FD.store(fd, Ordering::Relaxed);
                }
                *guard = Some(writer);
            }
            Err(e) => {
                drop(guard);
                real::warn(&format!(
                    "cannot write capture {path}: {e}; running untraced"
                ));
                state::disable();
                return false;
            }
        }
    }
    f(guard.as_mut().expect("opened above"));
    true
}

/// In a forked child (single-threaded, from the atfork handler): forget the parent's writer.
pub fn forget_in_fork_child() {
    // The parent's writer may have held its mutex at the fork: never lock it; leak it
    // (copy-on-write pages shared with the parent). Its file is in the parent writer's private
    // table, which the child does not have; only in the shared-table fallback did the child
    // inherit a copy, closed here before any code of the program's has run in the child.
    WRITER.store(core::ptr::null_mut(), Ordering::Release);
    // Relaxed: single-threaded.
    let fd = SHARED_FD.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: closing the child's own copy of the parent's capture descriptor, in the atfork
        // child handler: the program has not run since fork, so the number is still ours.
        unsafe { libc::close(fd) };
    }
}
