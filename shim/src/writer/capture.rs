//! The writer: drains the ring, interns stacks (each distinct stack written once while the
//! bounded stack table remembers it, see stack_table.rs), adds the module
//! map and timeline ticks, and appends framed chunks to the capture with one `write` each, at least
//! every [`FLUSH_NS`]. It runs on its own thread, or on the exiting thread for the final flush.

use memshim_format::{
    encode_header_with, ChunkBuilder, Compressor, Drops, EndKind, Header, Module, Record,
};
use rustc_hash::FxHashSet;

use super::series::SnapshotState;
use super::{EARLY_NS, EARLY_TICK_NS, FLUSH_NS};
use crate::config::{CaptureKind, Config};
use crate::state::{self, Recording};
use crate::sys::modules;
use crate::sys::procinfo;
use crate::transport::ring::Ring;
use crate::writer::capture_file::CaptureFile;
use crate::writer::fdtable::Table;
use crate::writer::stack_table::StackTable;
use crate::writer::statm::Statm;
use crate::{stacks::python, sys::real};
use memshim_format::snapshot::Cause;

/// How hard this capture is compressed: `all` mode's stream of every event densely, samples
/// fast.
fn compression() -> memshim_format::Level {
    match state::decided() {
        Recording::All => memshim_format::Level::Dense,
        _ => memshim_format::Level::Fast,
    }
}

/// A payload beyond this is framed at once, keeping chunks far below the format's limit.
pub(super) const CHUNK_TARGET: usize = 1 << 20;
/// Bytes of MEMSHIM_MAX_SIZE kept for the block that says the capture stopped there.
const STOP_NOTE_ROOM: u64 = 1024;
/// Chunk bytes per compressed block (a block holds whole chunks, so up to a chunk more). zstd
/// matches inside a block, and in `all` mode into the 128 KiB of chunks before it (the block
/// is primed with them, `memshim_format::PRIME_MAX`): 8 MiB blocks (one per flush, at `all`
/// mode's pace) had made captures of repetitive loops a quarter smaller than 1 MiB ones did, at
/// no cost in memory (a flush's chunks are held until it anyway).
const BLOCK_TARGET: usize = 8 << 20;
// A block takes at most BLOCK_TARGET plus a chunk (CHUNK_TARGET plus one record): far below
// what readers accept of a block (4 x MAX_CHUNK).
const _: () = assert!(BLOCK_TARGET + CHUNK_TARGET < memshim_format::MAX_CHUNK);

pub struct Writer {
    pub(super) file: CaptureFile,
    /// A write failed, or the next would pass `max_size`: the capture ends there (see `flush`).
    pub(super) failed: bool,
    /// Bytes in the file so far.
    pub(super) size: u64,
    /// `MEMSHIM_MAX_SIZE` (0: no bound).
    pub(super) max_size: u64,
    pub(super) ring: *mut Ring,
    pub(super) chunk: ChunkBuilder,
    /// Framed chunks waiting for the next write.
    pub(super) out: Vec<u8>,
    /// Where each chunk in `out` ends: blocks are cut there, so every block holds whole chunks.
    pub(super) cuts: Vec<usize>,
    /// The capture's zstd stream (None: plain chunks, if zstd could not start).
    pub(super) zstd: Option<Compressor>,
    pub(super) stacks: StackTable,
    /// Each live thread's last Alloc stack, which its `AllocRepeat` events name (events mode).
    pub(super) last_stack: rustc_hash::FxHashMap<u32, u64>,
    /// The (thread, stack id) `last_stack` gave last: a loop's thread, looked up once.
    pub(super) last_repeat: (u32, u64),
    pub(super) codes: FxHashSet<u64>,
    /// The map most recently written, and the loader's counters it was taken at
    /// (`modules::packed`).
    pub(super) map: Vec<Module>,
    pub(super) map_sig: u64,
    pub(super) start: u64,
    pub(super) last_flush: u64,
    pub(super) last_tick: u64,
    /// glibc's heap in use at the last flush tick (0: not read, or given up).
    pub(super) last_heap: u64,
    pub(super) page: u64,
    pub(super) statm: Statm,
    pub(super) heap: procinfo::HeapProbe,
    pub(super) arena: crate::transport::arena::Recycler,
    pub(super) sampled_allocated: u64,
    pub(super) sampled_freed: u64,
    /// At the sampled rates every sampled heap block is served by the region, which glibc's
    /// `mallinfo2` cannot see: its live bytes (sampled heap bytes allocated minus freed) are
    /// added to the tick's heap in use. In `all` mode glibc serves everything (false).
    pub(super) region_serves: bool,
    pub(super) region_live: u64,
    /// Snapshot mode's state (None: an event capture).
    pub(super) snap: Option<SnapshotState>,
    /// `MEMSHIM_STACK_MEMORY`, for a stack table started over.
    pub(super) stack_budget: usize,
    /// When the control requests were last looked at.
    pub(super) last_control_ns: u64,
}

// SAFETY: the ring pointer is only dereferenced by whoever holds the Mutex<Writer>, and the ring
// itself is Sync (see ring.rs).
unsafe impl Send for Writer {}

/// Drop counters as the capture reports them.
pub(super) fn drops() -> Drops {
    use core::sync::atomic::Ordering::Relaxed;
    // Relaxed (all three): statistics.
    let ring_dropped = crate::transport::ring::current().map_or(0, |r| r.dropped.0.load(Relaxed));
    Drops {
        ring_full: ring_dropped + state::STARTING_DROPS.load(Relaxed),
        region_full: state::REGION_FULL.load(Relaxed),
    }
}

impl Writer {
    /// Creates the capture file (exclusively, 0600, never through a symlink) and writes its
    /// header, the module map and, in a forked child, the live samples inherited from the parent.
    pub fn create(
        path: &str,
        cfg: &Config,
        ring: *mut Ring,
        table: Table,
    ) -> std::io::Result<Writer> {
        let (exe, argv) = procinfo::exe_and_argv();
        let start = state::capture_start_ns();
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let fork_gen = state::fork_generation();
        let page = procinfo::page_size();
        let mut header = Header {
            pid: real::getpid(),
            ppid: real::getppid(),
            exe,
            argv,
            start_unix_ns: now_unix.saturating_sub(real::now_ns().saturating_sub(start)),
            start_mono_ns: start,
            rate: match state::decided() {
                Recording::Sampled(r) => r,
                _ => 0,
            },
            page_size: page as u32,
            stack_depth: cfg.depth as u32,
            seed: cfg.seed,
            forked_from: (fork_gen > 0).then(real::getppid),
            shim_version: env!("CARGO_PKG_VERSION").to_string(),
            extra: crate::sys::cgroup::header_extra(),
        };
        let snap = (cfg.capture == CaptureKind::Snapshots)
            .then(|| SnapshotState::new(&mut header, cfg.interval_ns, cfg.keep, cfg.stack_memory));
        let zstd = Compressor::new(compression()).ok();
        let flags = zstd.as_ref().map_or(0, Compressor::flags);
        // The header first, alone and uncompressed: a process that execs right away still leaves
        // a readable file.
        let header = encode_header_with(&header, flags);
        let file = CaptureFile::create(path, table, &header)?;
        let snap = snap.map(|mut s| {
            s.first_file(file.path());
            s
        });
        let mut w = Writer {
            file,
            failed: false,
            size: header.len() as u64,
            max_size: cfg.max_size,
            ring,
            chunk: ChunkBuilder::new(),
            out: Vec::new(),
            cuts: Vec::new(),
            zstd,
            stacks: StackTable::new(cfg.stack_memory),
            last_stack: Default::default(),
            last_repeat: (0, 0),
            codes: FxHashSet::default(),
            map: Vec::new(),
            map_sig: u64::MAX,
            start,
            last_flush: real::now_ns(),
            last_tick: 0,
            last_heap: 0,
            page,
            statm: Statm::open(),
            heap: procinfo::HeapProbe::default(),
            arena: crate::transport::arena::Recycler::default(),
            sampled_allocated: 0,
            sampled_freed: 0,
            region_serves: matches!(state::decided(), Recording::Sampled(_)),
            region_live: 0,
            snap,
            stack_budget: cfg.stack_memory,
            last_control_ns: 0,
        };
        w.refresh_modules();
        if fork_gen > 0 {
            w.write_inherited(fork_gen);
        }
        // The first point of the timeline: where the run stands at its first sample.
        w.tick();
        if w.snap.is_some() {
            // A snapshot file is readable as such from its first write.
            w.write_snapshot(Cause::Start, true);
        }
        w.flush();
        Ok(w)
    }

    /// Writes on in a new file at `path` with `header` (a snapshot series' next part).
    pub(super) fn reopen(&mut self, path: &str, header: &Header) -> std::io::Result<()> {
        let zstd = Compressor::new(compression()).ok();
        let flags = zstd.as_ref().map_or(0, Compressor::flags);
        let bytes = encode_header_with(header, flags);
        let file = CaptureFile::create(path, self.file.table(), &bytes)?;
        let old = core::mem::replace(&mut self.file, file);
        old.close();
        self.zstd = zstd;
        self.size = bytes.len() as u64;
        self.failed = false;
        Ok(())
    }

    /// The capture's descriptor when it sits in the program's table (the fdtable fallback).
    pub fn shared_fd(&self) -> Option<i32> {
        self.file.shared_fd()
    }

    /// Microseconds until the next flush and tick are due (0: now).
    pub fn flush_due_in_us(&self) -> u64 {
        let now = real::now_ns();
        let flush = (self.last_flush + FLUSH_NS).saturating_sub(now);
        match self.early_tick_due(now) {
            Some(tick) => flush.min(tick) / 1000,
            None => flush / 1000,
        }
    }

    /// Nanoseconds until the next early tick, in the first [`EARLY_NS`] of the run.
    fn early_tick_due(&self, now: u64) -> Option<u64> {
        (now.saturating_sub(self.start) < EARLY_NS)
            .then(|| (self.last_tick + EARLY_TICK_NS).saturating_sub(now))
    }

    /// The ring's (units consumed so far, capacity in units), for the writer thread's pacing.
    pub fn ring_progress(&self) -> (u64, u64) {
        // SAFETY: as in drain(): the ring outlives its writer.
        let ring = unsafe { &*self.ring };
        (ring.consumed(), ring.capacity())
    }

    /// One round of the writer thread: drain, and tick + flush when due. Returns events moved.
    pub fn step(&mut self) -> usize {
        let n = self.drain(1 << 16);
        let now = real::now_ns();
        if now.saturating_sub(self.last_control_ns) >= FLUSH_NS {
            self.last_control_ns = now;
            self.serve_requests();
        }
        if self.snap.is_some() {
            self.snapshot_step(now);
            if now.saturating_sub(self.last_flush) >= FLUSH_NS {
                self.flush();
            }
        } else if now.saturating_sub(self.last_flush) >= FLUSH_NS {
            self.tick();
            self.flush();
        } else if self.early_tick_due(now) == Some(0) {
            self.early_tick();
        }
        n
    }

    /// Drains what the ring holds now and writes everything, without ending the capture (the
    /// writer thread stepping aside for a fork, which waits for it). At most one ring's worth:
    /// the other threads keep producing meanwhile, and in `all` mode, throttled to the writer's
    /// pace, they would keep a drain-until-empty going, and the fork waiting, forever.
    pub fn flush_now(&mut self) {
        let (_, capacity) = self.ring_progress();
        self.drain(capacity as usize);
        self.flush();
    }

    fn drain_all(&mut self) {
        while self.drain(1 << 16) > 0 {}
    }

    /// The final flush of an exit path.
    pub fn finish(&mut self, how: EndKind) {
        self.drain_all();
        // The moment Python began finalizing is marked by the first sampled free after it, in
        // order with the frees (hooks.rs): a tick's mark would land after frees it drained, and
        // what finalization freed would not count as held. With no such free, it is marked here.
        if python::finalizing_started() {
            let t = self.rel(real::now_ns());
            self.chunk.push(&Record::Marker {
                t,
                marker: memshim_format::Marker::PythonFinalizing,
            });
        }
        self.tick();
        if self.snap.is_some() {
            self.write_snapshot(Cause::End, false);
        }
        let t = self.rel(real::now_ns());
        self.chunk.push(&Record::End {
            t,
            how,
            dropped: drops(),
        });
        self.flush();
    }

    pub(super) fn rel(&self, t: u64) -> u64 {
        t.saturating_sub(self.start)
    }

    fn drain(&mut self, max: usize) -> usize {
        let mut n = 0;
        // A module loaded since the last look should be in the map before stacks that use it.
        // Compared with the map written last, whoever wrote it: a dlopen's map taken before the
        // writer's own look can be written after it, and then the next drain writes the newer.
        // Only when nothing was unloaded since that map: the events waiting in the ring may
        // predate an unload, and a library loaded since at the same addresses (ctypes dlopens
        // a library whose constructor dlopens another, which is dlclosed; an extension is then
        // imported where it was) would name their frames. Then the exact maps the dlopens sent
        // through the ring bring the loader's state in order with the events (and the next of
        // them lets this look resume); the reader resolves a frame outside the map in force
        // with the next map that has it (so do frames of a library whose constructor allocates
        // while dlopen is still loading it, whose map comes after).
        let sig = modules::packed(modules::signature());
        if sig != self.map_sig && sig & 0xffff_ffff == self.map_sig & 0xffff_ffff {
            self.refresh_modules();
        }
        // SAFETY: the ring outlives its writer (it is unmapped only in a fork child, where this
        // writer is abandoned unused); the reference is detached from `self` for the closure.
        let ring = unsafe { &*self.ring };
        while n < max && ring.pop(|ev, frames| self.on_event(ev, frames)) {
            n += 1;
            if self.chunk.len() >= CHUNK_TARGET {
                self.frame_chunk();
            }
        }
        ring.release();
        // What the events read so far named in the arena is dead: let its halves turn over.
        self.arena.step(|| ring.claimed(), ring.consumed());
        n
    }

    /// Frames what is pending, compresses it into a block (flushing the stream, so everything
    /// written so far decodes) and writes it with one write. A failed write ends what the file
    /// can tell (the stream cannot resume past a gap); the reader stops there.
    ///
    /// The first failed write (a full disk, the process's file-size limit) stops recording,
    /// silently (the program's stderr is not ours): the file reads up to there, and more writes could only waste the host's CPU
    /// and disk, or leave a gap the reader cannot cross. So does a block that would take the
    /// file past `MEMSHIM_MAX_SIZE`: it is not written, and a last small block in the room kept
    /// for it says why (an EXTENSION_STOPPED record), so readers do not take the file for cut.
    pub(super) fn flush(&mut self) {
        self.frame_chunk();
        let (out, cuts) = (
            core::mem::take(&mut self.out),
            core::mem::take(&mut self.cuts),
        );
        if !out.is_empty() && !self.failed {
            // The file's bound: MEMSHIM_MAX_SIZE, or the process's own file-size limit when
            // that is lower (a write past it fails half done and would cut a block).
            let (bound, by_rlimit) = match real::file_size_limit() {
                Some(f) if self.max_size == 0 || f < self.max_size => (f, true),
                _ => (self.max_size, false),
            };
            let limit = match bound {
                0 => 0,
                b => b.saturating_sub(STOP_NOTE_ROOM).max(1),
            };
            let mut result = Ok(true);
            // Blocks of whole chunks, about BLOCK_TARGET each: a block's output stays bounded for
            // readers. A block that would pass MEMSHIM_MAX_SIZE goes again chunk by chunk, so
            // the bound loses at most one chunk's worth.
            let (mut start, mut first) = (0, 0);
            for (i, &cut) in cuts.iter().enumerate() {
                if cut - start < BLOCK_TARGET && i + 1 < cuts.len() {
                    continue;
                }
                result = self.write_block(&out[start..cut], limit);
                if matches!(result, Ok(false)) && i > first {
                    let mut from = start;
                    for &to in &cuts[first..=i] {
                        result = self.write_block(&out[from..to], limit);
                        if !matches!(result, Ok(true)) {
                            break;
                        }
                        from = to;
                    }
                }
                if !matches!(result, Ok(true)) {
                    break;
                }
                (start, first) = (cut, i + 1);
            }
            if matches!(result, Ok(false)) && self.roll_over() {
                // The series goes on in its next file, which holds everything again.
                self.out.clear();
                self.cuts.clear();
                self.last_flush = real::now_ns();
                return;
            }
            let why = match result {
                Ok(true) => None,
                Ok(false) => {
                    let what = if by_rlimit {
                        "the process's file-size limit RLIMIT_FSIZE"
                    } else {
                        "MEMSHIM_MAX_SIZE"
                    };
                    let why = format!(
                        "capture {} reached {what} ({bound} bytes); recording stopped",
                        self.file.path()
                    );
                    // The last block, in the room kept for it, says why the file ends here.
                    self.chunk.push(&Record::Extension {
                        kind: memshim_format::EXTENSION_STOPPED,
                        data: why.as_bytes().to_vec(),
                    });
                    let mut note = Vec::new();
                    self.chunk.finish_into(&mut note);
                    let _ = self.write_block(&note, bound);
                    Some(why)
                }
                Err(e) => Some(format!(
                    "cannot write capture {}: {e}; recording stopped (the capture reads up to here)",
                    self.file.path()
                )),
            };
            if why.is_some() {
                self.failed = true;
                state::stop_writing();
            }
        }
        // Back, emptied, to keep their capacity.
        (self.out, self.cuts) = (out, cuts);
        self.out.clear();
        self.cuts.clear();
        self.last_flush = real::now_ns();
    }

    /// Compresses framed chunks into one block (or leaves them plain, without zstd) and writes
    /// it, unless that would take the file past `limit` (0: none): Ok(false), nothing written.
    fn write_block(&mut self, chunks: &[u8], limit: u64) -> std::io::Result<bool> {
        let block = match self.zstd.as_mut() {
            Some(z) => z.compress(chunks)?,
            None => chunks,
        };
        if limit > 0 && self.size + block.len() as u64 > limit {
            return Ok(false);
        }
        self.file.write_all(block)?;
        self.size += block.len() as u64;
        if let Some(z) = self.zstd.as_mut() {
            // A primed capture's next block builds on this one, now in the file.
            z.written(chunks);
        }
        Ok(true)
    }

    /// Frames the pending records as a chunk at the end of `out`.
    pub(super) fn frame_chunk(&mut self) {
        self.chunk.finish_into(&mut self.out);
        if self.cuts.last() != Some(&self.out.len()) && !self.out.is_empty() {
            self.cuts.push(self.out.len());
        }
    }
}
