//! Control requests to a running process (`memshim ctl PID snapshot|start|stop`), through files
//! the shim only looks at: `memshim ctl` creates `/tmp/memshim-ctl.PID.KIND` (through
//! `/proc/PID/root`, so a process in a container is reached in its own `/tmp`), the shim acts
//! and answers in `/tmp/memshim-ctl.PID.KIND.done` (the request's first line, then the capture's
//! path), then removes the request. Nothing the program can observe changes: no signal, no
//! descriptor of its own (the writer thread opens files in its private table; a paused
//! process's threads only `stat` the start request, a system call with no descriptor).
//!
//! A request counts only when its file belongs to this process's user (or root): another user
//! on the machine cannot stop or start someone else's profile.

use std::sync::OnceLock;

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Snapshot,
    Start,
    Stop,
}

impl Request {
    pub const ALL: [Request; 3] = [Request::Snapshot, Request::Start, Request::Stop];

    pub fn name(self) -> &'static str {
        match self {
            Request::Snapshot => "snapshot",
            Request::Start => "start",
            Request::Stop => "stop",
        }
    }
}

/// The request files' paths, NUL-terminated, made by the constructor (this runs in malloc's
/// slow path later, which must not allocate). A fork child makes its own (another pid).
struct Paths {
    pid: u32,
    files: [std::ffi::CString; 3],
}

static PATHS: OnceLock<Paths> = OnceLock::new();
/// A fork child's paths (its pid differs); set in the child's atfork handler.
static CHILD_PATHS: OnceLock<Paths> = OnceLock::new();

/// `/tmp/memshim-ctl.PID.KIND`.
pub fn request_path(pid: u32, r: Request) -> String {
    format!("/tmp/memshim-ctl.{pid}.{}", r.name())
}

fn make(pid: u32) -> Option<Paths> {
    let f = |r| std::ffi::CString::new(request_path(pid, r)).ok();
    Some(Paths {
        pid,
        files: [f(Request::Snapshot)?, f(Request::Start)?, f(Request::Stop)?],
    })
}

/// Prepares the paths (the constructor; a one-time section, where allocating is allowed).
pub fn init() {
    if let Some(p) = make(super::real::getpid()) {
        let _ = PATHS.set(p);
    }
}

/// In a fork child: the child answers to its own pid. (Called from the atfork child handler,
/// single-threaded; the allocation is the child's own.)
pub fn after_fork_child() {
    let pid = super::real::getpid();
    if let Some(p) = make(pid) {
        let _ = CHILD_PATHS.set(p);
    }
}

fn paths() -> Option<&'static Paths> {
    let pid = super::real::getpid();
    [CHILD_PATHS.get(), PATHS.get()]
        .into_iter()
        .flatten()
        .find(|p| p.pid == pid)
}

/// True when a request of kind `r` is waiting, from this process's user or root. One `stat`,
/// no allocation, no descriptor.
pub fn pending(r: Request) -> bool {
    let Some(p) = paths() else { return false };
    let idx = Request::ALL.iter().position(|&x| x == r).unwrap_or(0);
    // SAFETY: a zeroed stat is a valid out-parameter; the path is NUL-terminated.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        if libc::stat(p.files[idx].as_ptr(), &mut st) != 0 {
            return false;
        }
        let euid = libc::geteuid();
        st.st_mode & libc::S_IFMT == libc::S_IFREG && (st.st_uid == euid || st.st_uid == 0)
    }
}

/// Answers a request: writes its `.done` file (the request's first line, then `answer`) and
/// removes the request. Writer threads only (the files are opened in their own descriptor
/// table). Best effort: an answer that cannot be written leaves `memshim ctl` to say the
/// request was not picked up.
pub fn answer(r: Request, answer: &str) {
    let Some(p) = paths() else { return };
    let req = request_path(p.pid, r);
    let first = std::fs::read_to_string(&req).unwrap_or_default();
    let first = first.lines().next().unwrap_or("").to_string();
    let done = format!("{req}.done");
    let tmp = format!("{req}.done.tmp");
    let _ = std::fs::remove_file(&req);
    if std::fs::write(&tmp, format!("{first}\n{answer}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, &done);
    }
}
