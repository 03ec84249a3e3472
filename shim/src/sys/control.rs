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

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Snapshot,
    Start,
    Stop,
}

impl Request {
    pub fn name(self) -> &'static str {
        match self {
            Request::Snapshot => "snapshot",
            Request::Start => "start",
            Request::Stop => "stop",
        }
    }
}

/// `/tmp/memshim-ctl.PID.KIND`.
pub fn request_path(pid: u32, r: Request) -> String {
    format!("/tmp/memshim-ctl.{pid}.{}", r.name())
}

/// The same path, NUL-terminated, built in `buf` without allocating (this runs in malloc's
/// slow path, and in whichever process asks: a fork child has its own pid).
fn request_path_in(buf: &mut [u8; 64], pid: u32, r: Request) -> &core::ffi::CStr {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if n < buf.len() - 1 {
                buf[n] = b;
                n += 1;
            }
        }
    };
    put(b"/tmp/memshim-ctl.");
    let mut digits = [0u8; 10];
    let (mut v, mut k) = (pid, digits.len());
    loop {
        k -= 1;
        digits[k] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[k..]);
    put(b".");
    put(r.name().as_bytes());
    buf[n] = 0;
    core::ffi::CStr::from_bytes_until_nul(&buf[..=n]).unwrap_or(c"")
}

/// True when a request of kind `r` is waiting, from this process's user or root. One `stat`,
/// no allocation, no descriptor.
pub fn pending(r: Request) -> bool {
    let mut buf = [0u8; 64];
    let path = request_path_in(&mut buf, super::real::getpid(), r);
    // SAFETY: a zeroed stat is a valid out-parameter; the path is NUL-terminated.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        if libc::stat(path.as_ptr(), &mut st) != 0 {
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
    let req = request_path(super::real::getpid(), r);
    let first = std::fs::read_to_string(&req).unwrap_or_default();
    let first = first.lines().next().unwrap_or("").to_string();
    let done = format!("{req}.done");
    let tmp = format!("{req}.done.tmp");
    let _ = std::fs::remove_file(&req);
    if std::fs::write(&tmp, format!("{first}\n{answer}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, &done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_built_without_allocating_is_the_path() {
        for (pid, r) in [
            (1, Request::Start),
            (4_194_304, Request::Snapshot),
            (0, Request::Stop),
        ] {
            let mut buf = [0u8; 64];
            assert_eq!(
                request_path_in(&mut buf, pid, r).to_str().unwrap(),
                request_path(pid, r)
            );
        }
    }
}
