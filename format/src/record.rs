//! The records a chunk carries.

use serde::{Deserialize, Serialize};

/// Which call made an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum AllocKind {
    Malloc,
    Calloc,
    Realloc,
    /// posix_memalign, aligned_alloc, memalign, valloc, pvalloc.
    Aligned,
    /// An anonymous memory mapping (pymalloc arenas, large buffers).
    Mmap,
}

impl AllocKind {
    /// The kind's number where a byte carries it (the fast record encoding, the shim's events).
    pub const fn index(self) -> u8 {
        match self {
            AllocKind::Malloc => 0,
            AllocKind::Calloc => 1,
            AllocKind::Realloc => 2,
            AllocKind::Aligned => 3,
            AllocKind::Mmap => 4,
        }
    }

    /// The kind numbered `i` by [`AllocKind::index`].
    pub const fn from_index(i: u8) -> Option<AllocKind> {
        Some(match i {
            0 => AllocKind::Malloc,
            1 => AllocKind::Calloc,
            2 => AllocKind::Realloc,
            3 => AllocKind::Aligned,
            4 => AllocKind::Mmap,
            _ => return None,
        })
    }
}

/// One loaded object (executable, shared library) as the dynamic loader mapped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Path of the file; empty when it has none (vdso).
    pub path: String,
    /// Load bias: file virtual address + base = runtime address.
    pub base: u64,
    /// Loadable segments as (file virtual address, size in memory).
    pub segments: Vec<(u64, u64)>,
    /// GNU build-id, empty when the object has none.
    pub build_id: Vec<u8>,
}

impl Module {
    /// True when the runtime address `addr` lies in one of this module's segments.
    pub fn contains(&self, addr: u64) -> bool {
        let rel = addr.wrapping_sub(self.base);
        self.segments
            .iter()
            .any(|&(va, len)| rel.wrapping_sub(va) < len)
    }
}

/// One Python frame of a sampled stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PyFrame {
    /// Identity of the code object, as named by a [`Record::PyCode`]; [`PyFrame::NO_FRAME`]
    /// (never a code object's id) for an eval-loop call with no Python frame of its own at that
    /// moment (starting, or clearing the frame it returns from), written with `entry` set, so
    /// that the frames outer to it stay with their own eval-loop calls.
    pub code: u64,
    /// Offset of the instruction being run, in code units; [`PyFrame::NOT_STARTED`] for a frame
    /// that has not begun its first instruction (before 3.11: `f_lasti` -1, e.g. while a profile
    /// hook runs for its call), which CPython places at its first line.
    pub instr: u32,
    /// The first Python frame run by its eval-loop call (where a native eval frame starts).
    pub entry: bool,
}

impl PyFrame {
    /// The `code` of an eval-loop call without a Python frame (code ids are never 0).
    pub const NO_FRAME: u64 = 0;
    /// The `instr` of a frame before its first instruction.
    pub const NOT_STARTED: u32 = u32::MAX;
}

/// What a Python code object is called, copied once per code object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PyCode {
    pub id: u64,
    pub name: String,
    pub qualname: String,
    pub filename: String,
    pub first_line: u32,
    /// The code object's raw line table (`co_linetable`) and the interpreter's `(major, minor)`
    /// that gives it meaning.
    pub linetable: Vec<u8>,
    pub py_version: (u8, u8),
}

/// Records dropped instead of blocking the program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops {
    /// The ring to the writer was full.
    pub ring_full: u64,
    /// A sampled allocation could not get a slot in the shim's region and went unrecorded.
    pub region_full: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.ring_full + self.region_full
    }
}

/// Things that happened once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Marker {
    /// The Python interpreter started finalizing (module globals are freed after this).
    PythonFinalizing,
    /// The process forked a child with this pid. Readers take it; today's shim does not write
    /// it (a child's [`Header::forked_from`](crate::Header::forked_from) names its parent).
    Forked { child: u32 },
    /// Recording was stopped (`memshim ctl PID stop`): allocations from here to the next
    /// `RecordingStarted` are not seen.
    RecordingStopped,
    /// Recording started again (`memshim ctl PID start`) after a stop or a paused start.
    RecordingStarted,
    /// The program marked this moment (`memshim_mark`, Python's `memshim.mark`): `label` as
    /// given, cut to [`MARK_LABEL_MAX`] bytes (at a character boundary), and the kernel's id of
    /// the thread that marked. In the record stream it stands after every event the shim took
    /// before the call returned and before every one it took after: a window between two marks
    /// is exact in record order, whatever the clock's resolution (version 4).
    User { label: String, thread: u32 },
}

/// The longest label a [`Marker::User`] keeps, in bytes.
pub const MARK_LABEL_MAX: usize = 56;

/// How the capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndKind {
    /// `exit` or return from `main`.
    Exit,
    /// `_exit` / `_Exit`.
    QuickExit,
    /// A fatal signal with this number. Written by earlier shims, which caught crash signals;
    /// today's shim installs no signal handler, so a signal death leaves a capture without an
    /// `End`, readable up to its last flush.
    Signal(i32),
    /// The process replaced its image with `execve`; the new program (same pid) writes its own
    /// capture if it runs under the shim.
    Exec,
}

/// One record of a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// The whole module map; replaces the previous one from here on.
    Modules(Vec<Module>),
    /// An interned stack, written before the first record that names it. Frames are return
    /// addresses, innermost (the allocation call) first; `python` lists the Python frames of the
    /// sampling thread, innermost first. Ids are never reused, but the same stack may be written
    /// again under a new id (the shim bounds its table of written stacks): readers merge stacks
    /// by content.
    Stack {
        id: u64,
        frames: Vec<u64>,
        python: Vec<PyFrame>,
    },
    /// An allocation (sampled, or every one in `all` mode). `inherited` marks allocations a forked
    /// child received live from its parent.
    Alloc {
        t: u64,
        tid: u32,
        addr: u64,
        size: u64,
        stack: u64,
        kind: AllocKind,
        inherited: bool,
    },
    /// A recorded allocation was freed (in `all` mode: any free; size 0 when unknown).
    Free {
        t: u64,
        tid: u32,
        addr: u64,
        size: u64,
    },
    /// `munmap` (or the old range of a moving `mremap`).
    Munmap {
        t: u64,
        tid: u32,
        addr: u64,
        len: u64,
    },
    /// A thread's name, written when the thread is first seen.
    Thread {
        tid: u32,
        name: String,
    },
    /// Written at every flush (every 80 ms), when the writer starts, and every 10 ms between
    /// flushes in a run's first 2 s (the shim's `FLUSH_NS`, `EARLY_TICK_NS` and `EARLY_NS`).
    Tick {
        t: u64,
        /// Resident set size.
        rss: u64,
        /// Bytes in use in the heap: glibc's (`mallinfo2`) as last read, plus, at the sampled
        /// rates, the live bytes of the sampled blocks the shim's region serves (which glibc
        /// cannot see). glibc's part is probed on flush ticks, at most 0.1% of the time (other
        /// ticks repeat the last reading), and is 0 (not read) for good once two readings in a
        /// row stalled the process 10 ms.
        heap_in_use: u64,
        /// Raw sums of sampled sizes so far (not weighted).
        sampled_allocated: u64,
        sampled_freed: u64,
        dropped: Drops,
    },
    PyCode(PyCode),
    Marker {
        t: u64,
        marker: Marker,
    },
    /// The last record of a complete capture.
    End {
        t: u64,
        how: EndKind,
        dropped: Drops,
    },
    /// Data of a kind a later writer may add; readers skip kinds they do not know.
    Extension {
        kind: u32,
        data: Vec<u8>,
    },
}

/// `Record::Extension` kind: the shim stopped recording before the process ended (the file
/// reached `MEMSHIM_MAX_SIZE`); `data` is the reason, UTF-8. The last record of such a capture,
/// which has no `End`.
pub const EXTENSION_STOPPED: u32 = 1;

/// Probability that the Poisson byte sampler with mean `rate` bytes (the header's
/// [`rate`](crate::Header::rate); 0 for `all`) samples an allocation of `size`.
pub fn sample_probability(size: u64, rate: u64) -> f64 {
    if rate == 0 {
        return 1.0;
    }
    let p = -(-(size as f64) / rate as f64).exp_m1();
    if p > 0.0 {
        p
    } else {
        1.0 / rate as f64
    }
}

/// How many allocations one sample of `size` stands for (1 in `all` mode).
pub fn sample_weight(size: u64, rate: u64) -> f64 {
    1.0 / sample_probability(size, rate)
}
