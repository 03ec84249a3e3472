//! glibc underneath: its `__libc_*` allocation entry points (see underlying.rs), the functions
//! the shim interposes and must still call (found with dlsym), and raw system calls for the
//! mapping family (our own `mmap` symbol would otherwise catch our calls).

use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

extern "C" {
    pub fn __libc_malloc(size: usize) -> *mut c_void;
    pub fn __libc_free(p: *mut c_void);
    pub fn __libc_calloc(n: usize, size: usize) -> *mut c_void;
    pub fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    pub fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
}

/// glibc's own `malloc_usable_size`, found once with `dlvsym` (it has no `__libc_` alias).
static USABLE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Resolves what needs the dynamic linker; called from the constructor, where dlsym is safe.
pub fn resolve() {
    // SAFETY: both strings are NUL-terminated; RTLD_NEXT finds the next definition after ours.
    let f = unsafe {
        libc::dlvsym(
            libc::RTLD_NEXT,
            c"malloc_usable_size".as_ptr(),
            c"GLIBC_2.2.5".as_ptr(),
        )
    };
    // Relaxed: a plain pointer published once; a reader that misses it resolves it itself.
    USABLE_SIZE.store(f as usize, Ordering::Relaxed);
    // dlopen is resolved here, where dlsym is safe, not first inside some library's dlopen call.
    let _ = glibc(&DLOPEN, c"dlopen");
    let _ = glibc(&DLCLOSE, c"dlclose");
    let _ = glibc(&PTHREAD_CREATE, c"pthread_create");
}

/// glibc's usable size of a pointer it allocated.
///
/// # Safety
/// `p` must be null or a live allocation of glibc's malloc.
pub unsafe fn glibc_usable_size(p: *mut c_void) -> usize {
    let mut f = USABLE_SIZE.load(Ordering::Relaxed);
    if f == 0 {
        resolve();
        f = USABLE_SIZE.load(Ordering::Relaxed);
    }
    if f == 0 {
        return 0;
    }
    // SAFETY: `f` is glibc's malloc_usable_size (resolved by name and version above).
    let f: unsafe extern "C" fn(*mut c_void) -> usize = unsafe { core::mem::transmute(f) };
    // SAFETY: the caller guarantees `p` is glibc's.
    unsafe { f(p) }
}

type ExecFn = unsafe extern "C" fn(*const libc::c_char, *const *const libc::c_char) -> i32;
type ExecEnvFn = unsafe extern "C" fn(
    *const libc::c_char,
    *const *const libc::c_char,
    *const *const libc::c_char,
) -> i32;

type DlopenFn = unsafe extern "C" fn(*const libc::c_char, i32) -> *mut c_void;
static DLOPEN: AtomicUsize = AtomicUsize::new(0);
static DLCLOSE: AtomicUsize = AtomicUsize::new(0);
static EXECV: AtomicUsize = AtomicUsize::new(0);
static EXECVP: AtomicUsize = AtomicUsize::new(0);
static EXECVPE: AtomicUsize = AtomicUsize::new(0);

/// glibc's definition of `name` (the next one after ours), looked up once and cached in `cache`.
/// Only for calls that are never on an allocation path: a failing dlsym allocates.
fn glibc(cache: &AtomicUsize, name: &core::ffi::CStr) -> Option<usize> {
    // Relaxed: a pointer published once; a thread that misses it looks it up itself.
    let mut f = cache.load(Ordering::Relaxed);
    if f == 0 {
        // SAFETY: a NUL-terminated name; RTLD_NEXT skips our own definition.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        cache.store(f, Ordering::Relaxed);
    }
    (f != 0).then_some(f)
}

/// glibc's `dlopen`.
///
/// # Safety
/// As for dlopen.
pub unsafe fn dlopen(file: *const libc::c_char, flags: i32) -> *mut c_void {
    let Some(f) = glibc(&DLOPEN, c"dlopen") else {
        return core::ptr::null_mut();
    };
    // SAFETY: glibc's dlopen has this signature.
    unsafe { core::mem::transmute::<usize, DlopenFn>(f)(file, flags) }
}

/// `dlsym`, for the shim's own lookups outside any allocation path.
///
/// # Safety
/// `handle` is a valid handle; `name` NUL-terminated.
pub unsafe fn dlsym(handle: *mut c_void, name: *const libc::c_char) -> *mut c_void {
    // SAFETY: as the caller promises.
    unsafe { libc::dlsym(handle, name) }
}

/// glibc's `dlclose`.
///
/// # Safety
/// As for dlclose.
pub unsafe fn dlclose(handle: *mut c_void) -> i32 {
    let Some(f) = glibc(&DLCLOSE, c"dlclose") else {
        return -1;
    };
    // SAFETY: glibc's dlclose has this signature.
    unsafe { core::mem::transmute::<usize, unsafe extern "C" fn(*mut c_void) -> i32>(f)(handle) }
}

/// glibc's `execv`.
///
/// # Safety
/// As for execv.
pub unsafe fn execv(path: *const libc::c_char, argv: *const *const libc::c_char) -> i32 {
    let Some(f) = glibc(&EXECV, c"execv") else {
        return -1;
    };
    // SAFETY: glibc's execv has this signature.
    unsafe { core::mem::transmute::<usize, ExecFn>(f)(path, argv) }
}

/// glibc's `execvp`.
///
/// # Safety
/// As for execvp.
pub unsafe fn execvp(file: *const libc::c_char, argv: *const *const libc::c_char) -> i32 {
    let Some(f) = glibc(&EXECVP, c"execvp") else {
        return -1;
    };
    // SAFETY: glibc's execvp has this signature.
    unsafe { core::mem::transmute::<usize, ExecFn>(f)(file, argv) }
}

/// glibc's `execvpe`.
///
/// # Safety
/// As for execvpe.
pub unsafe fn execvpe(
    file: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> i32 {
    let Some(f) = glibc(&EXECVPE, c"execvpe") else {
        return -1;
    };
    // SAFETY: glibc's execvpe has this signature.
    unsafe { core::mem::transmute::<usize, ExecEnvFn>(f)(file, argv, envp) }
}

type PthreadCreateFn = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    extern "C" fn(*mut c_void) -> *mut c_void,
    *mut c_void,
) -> i32;
static PTHREAD_CREATE: AtomicUsize = AtomicUsize::new(0);

/// glibc's `pthread_create`.
///
/// # Safety
/// As for pthread_create.
pub unsafe fn pthread_create(
    out: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    f: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> i32 {
    let Some(p) = glibc(&PTHREAD_CREATE, c"pthread_create") else {
        return libc::EAGAIN;
    };
    // SAFETY: glibc's pthread_create has this signature.
    unsafe { core::mem::transmute::<usize, PthreadCreateFn>(p)(out, attr, f, arg) }
}

static QUICK_EXIT: AtomicUsize = AtomicUsize::new(0);

/// glibc's `quick_exit` (or, should it be missing, `exit_group`).
///
/// # Safety
/// As for quick_exit.
pub unsafe fn quick_exit(status: i32) -> ! {
    if let Some(p) = glibc(&QUICK_EXIT, c"quick_exit") {
        // SAFETY: glibc's quick_exit has this signature and never returns.
        unsafe { core::mem::transmute::<usize, unsafe extern "C" fn(i32) -> !>(p)(status) }
    }
    exit_group(status)
}

/// glibc's definitions of the setuid family (exports.rs interposes them).
macro_rules! glibc_setxid {
    ($name:ident, ($($arg:ident: $ty:ty),*)) => {
        /// glibc's definition.
        ///
        /// # Safety
        /// As for the C function of the same name.
        pub unsafe fn $name($($arg: $ty),*) -> i32 {
            static F: AtomicUsize = AtomicUsize::new(0);
            const NAME: &core::ffi::CStr =
                match core::ffi::CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
                    Ok(n) => n,
                    Err(_) => panic!("a symbol name"),
                };
            let Some(p) = glibc(&F, NAME) else {
                // SAFETY: errno of this thread.
                unsafe { *libc::__errno_location() = libc::ENOSYS };
                return -1;
            };
            // SAFETY: glibc's function has this signature.
            unsafe { core::mem::transmute::<usize, unsafe extern "C" fn($($ty),*) -> i32>(p)($($arg),*) }
        }
    };
}
glibc_setxid!(setuid, (uid: libc::uid_t));
glibc_setxid!(setgid, (gid: libc::gid_t));
glibc_setxid!(seteuid, (uid: libc::uid_t));
glibc_setxid!(setegid, (gid: libc::gid_t));
glibc_setxid!(setreuid, (r: libc::uid_t, e: libc::uid_t));
glibc_setxid!(setregid, (r: libc::gid_t, e: libc::gid_t));
glibc_setxid!(setresuid, (r: libc::uid_t, e: libc::uid_t, s: libc::uid_t));
glibc_setxid!(setresgid, (r: libc::gid_t, e: libc::gid_t, s: libc::gid_t));
glibc_setxid!(setgroups, (n: usize, list: *const libc::gid_t));
glibc_setxid!(initgroups, (user: *const libc::c_char, group: libc::gid_t));

/// `mmap(2)` without going through any symbol we might interpose.
///
/// # Safety
/// As for mmap.
pub unsafe fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: i32,
    flags: i32,
    fd: i32,
    off: i64,
) -> *mut c_void {
    // SAFETY: forwarded verbatim; syscall() sets errno and returns -1 (MAP_FAILED) on error.
    unsafe { libc::syscall(libc::SYS_mmap, addr, len, prot, flags, fd, off) as *mut c_void }
}

/// `munmap(2)` as a raw system call.
///
/// # Safety
/// As for munmap.
pub unsafe fn munmap(addr: *mut c_void, len: usize) -> i32 {
    // SAFETY: forwarded verbatim.
    unsafe { libc::syscall(libc::SYS_munmap, addr, len) as i32 }
}

/// `mremap(2)` as a raw system call.
///
/// # Safety
/// As for mremap.
pub unsafe fn mremap(
    old: *mut c_void,
    old_len: usize,
    new_len: usize,
    flags: i32,
    new_addr: *mut c_void,
) -> *mut c_void {
    // SAFETY: forwarded verbatim.
    unsafe {
        libc::syscall(libc::SYS_mremap, old, old_len, new_len, flags, new_addr) as *mut c_void
    }
}

/// `mprotect(2)` as a raw system call.
///
/// # Safety
/// As for mprotect.
pub unsafe fn mprotect(addr: *mut c_void, len: usize, prot: i32) -> i32 {
    // SAFETY: forwarded verbatim.
    unsafe { libc::syscall(libc::SYS_mprotect, addr, len, prot) as i32 }
}

/// `madvise(2)` as a raw system call.
///
/// # Safety
/// As for madvise.
pub unsafe fn madvise(addr: *mut c_void, len: usize, advice: i32) -> i32 {
    // SAFETY: forwarded verbatim.
    unsafe { libc::syscall(libc::SYS_madvise, addr, len, advice) as i32 }
}

/// Ends the process like `_exit` does.
pub fn exit_group(status: i32) -> ! {
    loop {
        // SAFETY: exit_group never returns.
        unsafe { libc::syscall(libc::SYS_exit_group, status) };
    }
}

/// Writes one line to stderr without allocating or touching stdio.
pub fn warn(msg: &str) {
    let mut buf = [0u8; 256];
    let prefix = b"memshim: ";
    let body = msg.as_bytes();
    let n = (prefix.len() + body.len()).min(buf.len() - 1);
    buf[..prefix.len()].copy_from_slice(prefix);
    buf[prefix.len()..n].copy_from_slice(&body[..n - prefix.len()]);
    buf[n] = b'\n';
    // SAFETY: writing a valid buffer to fd 2; a failure is ignored (nowhere else to report).
    unsafe { libc::write(2, buf.as_ptr().cast(), n + 1) };
}

/// Reads `clock` in nanoseconds (vDSO, no syscall, no allocation).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The time stamped on events: the kernel's coarse monotonic clock (vDSO, no syscall), which is
/// the fine clock as of the last timer tick (1-4 ms resolution, never ahead of [`now_ns`]): 10 ns
/// a read here against the fine clock's 30, read once for a sampled allocation and once for its
/// free. Memory timelines need milliseconds, not nanoseconds (heaptrack stamps 10 ms ticks).
pub fn stamp_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// A fresh private anonymous read-write mapping of `len` bytes, its pages reserved only as
/// touched; None when the kernel refuses.
pub fn map_anon(len: usize) -> Option<*mut u8> {
    // SAFETY: a fresh mapping chosen by the kernel cannot disturb anything; the result is checked.
    let p = unsafe {
        mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (p as isize != -1).then_some(p as *mut u8)
}

/// `us` microseconds as a relative timeout.
pub fn timespec_us(us: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (us / 1_000_000) as _,
        tv_nsec: (us % 1_000_000 * 1000) as _,
    }
}

/// Sleeps about `us` microseconds (nanosleep: a system call, no allocation, no lock).
pub fn sleep_us(us: u64) {
    let ts = timespec_us(us);
    // The system call itself, not libc's nanosleep: that one is a cancellation point, and a
    // thread cancelled here (inside a malloc hook, holding our state) would be cancelled where
    // glibc's malloc never cancels it.
    // SAFETY: ts is a valid timespec; an interrupted sleep just ends early.
    unsafe {
        libc::syscall(
            libc::SYS_nanosleep,
            &ts as *const libc::timespec,
            core::ptr::null_mut::<libc::timespec>(),
        )
    };
}

/// The process's file-size limit (RLIMIT_FSIZE) in bytes; None when unlimited.
pub fn file_size_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// The monotonic clock in nanoseconds (vDSO, no syscall, no allocation).
pub fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// This process's id.
pub fn getpid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// The parent process's id.
pub fn getppid() -> u32 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() as u32 }
}

/// This thread's errno.
pub fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's errno.
pub fn set_errno(e: libc::c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e };
}

/// This thread's thread pointer (`%fs:0`): distinct among live threads, never 0.
#[inline(always)]
pub fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: %fs:0 holds the thread pointer (the x86-64 TLS ABI); the asm only reads it.
    unsafe {
        core::arch::asm!(
            "mov {tp}, qword ptr fs:[0]",
            tp = out(reg) tp,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    tp
}

/// `MEMSHIM_GLIBC_FLOOR=1`: run as on the oldest glibc the wheel supports (2.28), using the
/// fallbacks of functions newer than it (`mallinfo2`, `_dl_find_object`).
static GLIBC_FLOOR: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Set by the constructor from the configuration.
pub fn set_glibc_floor(on: bool) {
    // Relaxed: set before any thread but the main one exists.
    GLIBC_FLOOR.store(on, Ordering::Relaxed);
}

pub fn glibc_floor() -> bool {
    // Relaxed: as above.
    GLIBC_FLOOR.load(Ordering::Relaxed)
}
