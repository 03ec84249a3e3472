//! # libmemshim.so: the capture engine
//!
//! Loaded with `LD_PRELOAD`, it interposes the allocation family (malloc, free, calloc, realloc,
//! reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size),
//! anonymous mmap/munmap/mremap, and `_exit`, in the executable and every library.
//!
//! ## Design
//! - **Sampling** ([`sampling::sampler`]): a per-thread Poisson byte countdown (mean `MEMSHIM_RATE`, default
//!   512 KiB). The fast path of an allocation is the countdown in initial-exec TLS ([`sampling::thread`]);
//!   crossing it takes the cold slow path ([`hooks`]).
//! - **The region** ([`sys::region`]): sampled allocations are served from address space the shim
//!   reserves at a fixed address, so `free` knows a sampled pointer by a range check on
//!   constants and an unsampled free touches no shared memory. The slot header keeps the sample's
//!   size and stack, which also makes the region the table of live samples for a forked child.
//! - **Stacks** ([`stacks::unwind`]): DWARF CFI turned into compact per-address rules, cached lock-free
//!   (libgcc for what they cannot express), raw return addresses; symbolized offline by the CLI with the module map ([`sys::modules`]) the writer records.
//! - **Recording** ([`transport::ring`], [`recorder`], [`writer`]): application threads push events (a fixed head, then the stack words they need, in 64-byte units)
//!   into a lock-free ring and never wait; a full ring drops and counts. One writer thread, started
//!   on the first event (never in the constructor), interns stacks and appends checksummed chunks
//!   to the capture (format: the `memshim-format` crate) at least every 80 ms and on every exit.
//! - **Processes**: a forked child gets its own file, ring, writer and reseeded sampler, and
//!   reports the live samples it inherited. `_exit` and normal exit flush the capture; a signal
//!   death leaves it readable up to the last flush (the shim installs no signal handler: the
//!   program's dispositions are its own).
//! - **Safety**: the hooks never allocate, lock or block on their fast paths, every recursive call
//!   from inside the shim is forwarded untouched ([`sampling::thread::Busy`]), and a bad setting or an
//!   unwritable output prints one `memshim:` line and leaves the host running untraced.

//! ## Layers
//! Each layer imports only the layers below it (a test over the sources checks it,
//! `tests/module_cycles.rs`):
//!
//! ```text
//! exports     the interposed C symbols and memshim_* entry points: one forwarding line each
//! hooks       what each interposed call does: allocation fast and slow paths, mappings,
//!             process life (constructor, fork, exit, exec, threads), the loader
//! recorder    the capture's life: start the writer, push events, finish on every exit path
//! writer      the writer thread, the capture it writes, its file and descriptor table
//! sampling    thread state, the Poisson sampler, the decision for each allocation
//! stacks      the native unwinder and the Python frame reader
//! transport   events, the lock-free ring, the arena for what does not fit an event
//! state       the recording state: mode, the recorder's phase, fork generation, counters
//! config      the settings (MEMSHIM_*), parsed once
//! sys         the system: real libc/syscalls, the region, ELF, the allocator underneath,
//!             /proc, the loader's module list, glibc's setxid signal, TLS (tls.c)
//! ```

pub mod config;
// Unit-test builds of this crate are ordinary executables: they must not replace their own malloc.
#[cfg(not(test))]
pub(crate) mod exports;
pub mod hooks;
pub mod recorder;
pub mod sampling;
pub mod stacks;
pub mod state;
pub mod sys;
pub mod transport;
pub mod writer;

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = hooks::process::init;

#[cfg(not(test))]
#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = hooks::process::fini;
