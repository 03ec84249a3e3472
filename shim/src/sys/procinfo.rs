//! What the writer learns about the process: identity for the header, memory for the timeline.

use std::io::Read;

fn task_state(path: &str) -> Option<u8> {
    let stat = std::fs::read(path).ok()?;
    // The state follows the command name's closing parenthesis: "pid (comm) S ...".
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 2).copied()
}

/// How many threads of this process other than the calling one and `except` (a kernel thread
/// id; 0 for none) are alive (not gone, not zombies); None when /proc cannot tell.
pub fn other_live_threads(except: u32) -> Option<usize> {
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .flatten()
            .filter(|t| {
                let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    return false;
                };
                tid != me
                    && tid != except
                    && !matches!(
                        task_state(&format!("/proc/self/task/{tid}/stat")),
                        Some(b'Z' | b'X') | None
                    )
            })
            .count(),
    )
}

/// True when the program has no thread left but the calling one: its main thread has exited
/// (`pthread_exit`; the leader then stays a zombie while other threads live) and no other
/// thread is alive. Reads more of /proc only when the leader is a zombie.
pub fn only_thread_left() -> bool {
    matches!(task_state("/proc/self/stat"), Some(b'Z' | b'X')) && other_live_threads(0) == Some(0)
}

/// glibc's heap in use for the timeline, read at most [`HEAP_PROBE_DUTY`] of the time.
///
/// `mallinfo2` walks every free chunk of every arena while holding that arena's lock, so its
/// cost grows with fragmentation: 0.2 ms with 4,500 free chunks, 20 ms with 100,000, 166 ms with
/// a million (`malloc(32..2 KiB)` x N, every other one freed). Called on every 80 ms tick, such a
/// heap kept the process's threads waiting on their arena lock (and the writer busy) a quarter
/// of the time or all of it. So each probe waits in proportion to what the last one took: a
/// cheap heap is read every tick; a fragmented one now and then, ticks in between repeating
/// the last reading (RSS and the sampled totals are still read on every tick). Two probes in a
/// row that held the locks [`HEAP_PROBE_GIVE_UP_NS`] or more are the last (one alone may be the
/// writer preempted mid-walk): from then on the heap reads 0 ("not read"), as even rare stalls
/// that long show in a service's latency.
#[derive(Debug, Default)]
pub struct HeapProbe {
    last: u64,
    next_ns: u64,
    slow: u8,
    given_up: bool,
}

/// A probe this slow ends probing (10 ms: a heap of some 50,000 free chunks).
pub const HEAP_PROBE_GIVE_UP_NS: u64 = 10_000_000;

/// A probe that took `d` is followed by a pause of `d * HEAP_PROBE_DUTY`: the arena locks are
/// held at most 0.1% of the time.
pub const HEAP_PROBE_DUTY: u64 = 1000;

impl HeapProbe {
    /// The heap in use now, or as last read when the next probe is not due yet.
    pub fn read(&mut self) -> u64 {
        self.read_with(crate::sys::real::now_ns, heap_in_use)
    }

    fn read_with(&mut self, now: impl Fn() -> u64, probe: impl FnOnce() -> u64) -> u64 {
        if self.given_up {
            return 0;
        }
        let start = now();
        if start >= self.next_ns {
            self.last = probe();
            let took = now().saturating_sub(start);
            self.slow = if took >= HEAP_PROBE_GIVE_UP_NS {
                self.slow + 1
            } else {
                0
            };
            if self.slow >= 2 {
                self.given_up = true;
                return 0;
            }
            self.next_ns = start.saturating_add(took.saturating_mul(HEAP_PROBE_DUTY));
        }
        self.last
    }
}

/// Bytes in use in glibc's heap: small chunks plus mmapped chunks. Takes the arena locks (see
/// [`HeapProbe`]), so it runs on the writer thread only, never on an allocation path.
///
/// `mallinfo2` (glibc 2.33) is looked up at run time: the wheel's shim is linked against glibc
/// 2.28's symbols, and a direct reference would keep it from loading there. Without it (or
/// under `MEMSHIM_GLIBC_FLOOR=1`), `mallinfo`, whose `int` fields wrap past 4 GiB.
fn heap_in_use() -> u64 {
    type Mallinfo2 = unsafe extern "C" fn() -> libc::mallinfo2;
    static MALLINFO2: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let f = *MALLINFO2.get_or_init(|| {
        if crate::sys::real::glibc_floor() {
            return 0;
        }
        // SAFETY: a NUL-terminated name; dlsym may allocate, which the writer thread may.
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"mallinfo2".as_ptr()) as usize }
    });
    if f != 0 {
        // SAFETY: `f` is glibc's mallinfo2 (signature from malloc.h), which has no
        // preconditions; it only reads allocator statistics.
        let mi = unsafe { core::mem::transmute::<usize, Mallinfo2>(f)() };
        return (mi.uordblks + mi.hblkhd) as u64;
    }
    // SAFETY: as mallinfo2; glibc has had mallinfo since long before the floor.
    #[allow(deprecated)]
    let mi = unsafe { libc::mallinfo() };
    (mi.uordblks as u32 as u64) + (mi.hblkhd as u32 as u64)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Reads the probe at `at`, where a probe takes `cost` ns and returns `value`; says whether
    /// it probed.
    fn read_at(p: &mut HeapProbe, at: u64, cost: u64, value: u64) -> (u64, bool) {
        let clock = Cell::new(at);
        let probed = Cell::new(false);
        let v = p.read_with(
            || clock.get(),
            || {
                probed.set(true);
                clock.set(at + cost);
                value
            },
        );
        (v, probed.get())
    }

    #[test]
    fn a_cheap_heap_is_read_every_tick() {
        let mut p = HeapProbe::default();
        for (i, t) in (0..10u64).map(|i| (i, i * 80_000_000)) {
            // 30 us each: due again 30 ms later, before the next tick.
            assert_eq!(read_at(&mut p, t, 30_000, i), (i, true));
        }
    }

    #[test]
    fn a_slow_heap_is_read_in_proportion_to_its_cost() {
        let mut p = HeapProbe::default();
        // 2 ms: the next probe waits 2 s; ticks in between repeat the reading.
        assert_eq!(read_at(&mut p, 0, 2_000_000, 7), (7, true));
        for t in (1..25u64).map(|i| i * 80_000_000) {
            assert_eq!(read_at(&mut p, t, 2_000_000, 9), (7, false), "at {t} ns");
        }
        assert_eq!(read_at(&mut p, 2_000_000_000, 50_000, 9), (9, true));
        // Cheap again: back to every tick.
        assert_eq!(read_at(&mut p, 2_080_000_000, 50_000, 11), (11, true));
    }

    #[test]
    fn two_probes_in_a_row_that_stall_10_ms_are_the_last() {
        let mut p = HeapProbe::default();
        assert_eq!(read_at(&mut p, 0, 30_000, 5), (5, true));
        // One slow probe (a preemption, say): kept, and probed again 20 s later.
        assert_eq!(read_at(&mut p, 80_000_000, 20_000_000, 6), (6, true));
        assert_eq!(read_at(&mut p, 160_000_000, 30_000, 7), (6, false));
        // Fast again: the count of slow ones restarts.
        assert_eq!(read_at(&mut p, 20_080_000_000, 30_000, 7), (7, true));
        assert_eq!(read_at(&mut p, 20_160_000_000, 20_000_000, 8), (8, true));
        // Two in a row: reported as not read, and never probed again.
        assert_eq!(read_at(&mut p, 40_160_000_000, 20_000_000, 9), (0, true));
        for t in (0..1000u64).map(|i| 40_240_000_000 + i * 80_000_000) {
            assert_eq!(read_at(&mut p, t, 30_000, 9), (0, false), "at {t} ns");
        }
    }
}
