//! The writer: drains the ring, interns stacks (each distinct stack written once while the
//! bounded stack table remembers it, see stack_table.rs), adds the module
//! map and timeline ticks, and appends framed chunks to the capture with one `write` each, at least
//! every [`FLUSH_NS`]. It runs on its own thread, or on the exiting thread for the final flush.

use memshim_format::{
    encode_header_with, AllocKind, ChunkBuilder, Compressor, EndKind, Header, Module, PyFrame,
    Record, FLAG_ZSTD,
};
use rustc_hash::FxHashSet;

use crate::capture_file::CaptureFile;
use crate::config::{Config, Mode};
use crate::fdtable::Table;
use crate::modules;
use crate::procinfo::{self, Statm};
use crate::ring::{EventKind, Ring};
use crate::stack_table::StackTable;
use crate::{python, real, recorder, region, sampler};

/// Flush (and tick) period: the issue asks for >= 10 ticks and flushes a second.
pub const FLUSH_NS: u64 = 80_000_000;
/// In the first [`EARLY_NS`] of a run, a timeline tick every [`EARLY_TICK_NS`] between flushes
/// (RSS and the sampled totals read then; glibc's heap as read at the last flush tick, so its
/// probe stays as rare as `HeapProbe` makes it), so a short run draws as a curve rather than
/// four points.
pub const EARLY_TICK_NS: u64 = 10_000_000;
pub const EARLY_NS: u64 = 2_000_000_000;
/// A payload beyond this is framed at once, keeping chunks far below the format's limit.
const CHUNK_TARGET: usize = 1 << 20;
/// Bytes of MEMSHIM_MAX_SIZE kept for the block that says the capture stopped there.
const STOP_NOTE_ROOM: u64 = 1024;
/// Chunk bytes per compressed block (a block holds whole chunks, so up to a chunk more).
const BLOCK_TARGET: usize = 1 << 20;
// A block takes at most BLOCK_TARGET plus a chunk (CHUNK_TARGET plus one record): far below
// what readers accept of a block (4 x MAX_CHUNK).
const _: () = assert!(BLOCK_TARGET + CHUNK_TARGET < memshim_format::MAX_CHUNK);

pub struct Writer {
    file: CaptureFile,
    /// A write failed, or the next would pass `max_size`: the capture ends there (see `flush`).
    failed: bool,
    /// Bytes in the file so far.
    size: u64,
    /// `MEMSHIM_MAX_SIZE` (0: no bound).
    max_size: u64,
    ring: *mut Ring,
    chunk: ChunkBuilder,
    /// Framed chunks waiting for the next write.
    out: Vec<u8>,
    /// Where each chunk in `out` ends: blocks are cut there, so every block holds whole chunks.
    cuts: Vec<usize>,
    /// The capture's zstd stream (None: plain chunks, if zstd could not start).
    zstd: Option<Compressor>,
    stacks: StackTable,
    codes: FxHashSet<u64>,
    /// The map most recently written, and the loader's counters it was taken at
    /// (`modules::packed`).
    map: Vec<Module>,
    map_sig: u64,
    start: u64,
    last_flush: u64,
    last_tick: u64,
    /// glibc's heap in use at the last flush tick (0: not read, or given up).
    last_heap: u64,
    page: u64,
    statm: Statm,
    heap: procinfo::HeapProbe,
    arena: crate::arena::Recycler,
    sampled_allocated: u64,
    sampled_freed: u64,
    /// At the sampled rates every sampled heap block is served by the region, which glibc's
    /// `mallinfo2` cannot see: its live bytes (sampled heap bytes allocated minus freed) are
    /// added to the tick's heap in use. In `all` mode glibc serves everything (false).
    region_serves: bool,
    region_live: u64,
}

// SAFETY: the ring pointer is only dereferenced by whoever holds the Mutex<Writer>, and the ring
// itself is Sync (see ring.rs).
unsafe impl Send for Writer {}

fn alloc_kind(k: u8) -> AllocKind {
    match k {
        1 => AllocKind::Calloc,
        2 => AllocKind::Realloc,
        3 => AllocKind::Aligned,
        4 => AllocKind::Mmap,
        _ => AllocKind::Malloc,
    }
}

/// True when two modules' loaded segments share an address.
fn overlaps(a: &Module, b: &Module) -> bool {
    a.segments.iter().any(|&(va, len)| {
        let (start, end) = (
            a.base.wrapping_add(va),
            a.base.wrapping_add(va).wrapping_add(len),
        );
        b.segments.iter().any(|&(vb, lb)| {
            let s = b.base.wrapping_add(vb);
            s < end && start < s.wrapping_add(lb)
        })
    })
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
        let start = recorder::START_MONO.load(std::sync::atomic::Ordering::Relaxed);
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let fork_gen = sampler::FORK_GEN.load(std::sync::atomic::Ordering::Relaxed);
        let page = procinfo::page_size();
        let header = Header {
            // SAFETY: getpid/getppid have no preconditions.
            pid: unsafe { libc::getpid() } as u32,
            // SAFETY: as above.
            ppid: unsafe { libc::getppid() } as u32,
            exe,
            argv,
            start_unix_ns: now_unix.saturating_sub(real::now_ns().saturating_sub(start)),
            start_mono_ns: start,
            rate: match cfg.mode {
                Mode::Sampled(r) => r,
                _ => 0,
            },
            page_size: page as u32,
            stack_depth: cfg.depth as u32,
            seed: cfg.seed,
            // SAFETY: getppid has no preconditions.
            forked_from: (fork_gen > 0).then(|| unsafe { libc::getppid() } as u32),
            shim_version: env!("CARGO_PKG_VERSION").to_string(),
            extra: Vec::new(),
        };
        let zstd = Compressor::new().ok();
        let flags = if zstd.is_some() { FLAG_ZSTD } else { 0 };
        // The header first, alone and uncompressed: a process that execs right away still leaves
        // a readable file.
        let header = encode_header_with(&header, flags);
        let file = CaptureFile::create(path, table, &header)?;
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
            arena: crate::arena::Recycler::default(),
            sampled_allocated: 0,
            sampled_freed: 0,
            region_serves: matches!(cfg.mode, Mode::Sampled(_)),
            region_live: 0,
        };
        w.refresh_modules();
        if fork_gen > 0 {
            w.write_inherited(fork_gen);
        }
        // The first point of the timeline: where the run stands at its first sample.
        w.tick();
        w.flush();
        Ok(w)
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
        if now.saturating_sub(self.last_flush) >= FLUSH_NS {
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
        let t = self.rel(real::now_ns());
        self.chunk.push(&Record::End {
            t,
            how,
            dropped: recorder::drops(),
        });
        self.flush();
    }

    fn rel(&self, t: u64) -> u64 {
        t.saturating_sub(self.start)
    }

    /// Writes the map as it is now, keeping the modules of the previous map that have gone but
    /// whose range nothing new occupies: events still waiting in the ring were recorded before
    /// they went (a dlopen'd library may be closed before the writer looks; dlopen itself sends
    /// an exact map through the ring, see recorder::after_dlopen).
    fn refresh_modules(&mut self) {
        let (mods, sig) = modules::snapshot();
        self.write_map(mods, sig);
    }

    /// Writes the map `mods` taken at loader state `sig`, with the previous map's modules that
    /// nothing in it overlaps (see [`Writer::refresh_modules`]).
    fn write_map(&mut self, mut mods: Vec<Module>, sig: modules::Signature) {
        for old in &self.map {
            if !mods.iter().any(|m| overlaps(m, old)) {
                mods.push(old.clone());
            }
        }
        self.map = mods.clone();
        self.map_sig = modules::packed(sig);
        self.chunk.push(&Record::Modules(mods));
    }

    /// The id of a stack given as `native` return addresses followed by Python frame words.
    fn intern(&mut self, words: &[u64], native: usize) -> u64 {
        let (id, new) = self.stacks.intern(words);
        if !new {
            return id;
        }
        let python = words[native.min(words.len())..]
            .chunks_exact(python::WORDS_PER_FRAME)
            .map(|w| PyFrame {
                code: w[0],
                instr: w[1] as u32,
                entry: w[1] >> 32 & 1 == 1,
            })
            .collect();
        self.chunk.push(&Record::Stack {
            id,
            frames: words[..native.min(words.len())].to_vec(),
            python,
        });
        id
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

    fn on_event(&mut self, ev: &crate::ring::Event, frames: &[u64]) {
        let t = self.rel(ev.t);
        let Some(kind) = EventKind::from_u8(ev.kind) else {
            return;
        };
        if cfg!(feature = "floor-writer-discard")
            && matches!(kind, EventKind::Alloc | EventKind::Free)
        {
            return;
        }
        match kind {
            EventKind::Alloc => {
                let stack = self.intern(frames, ev.nframes as usize);
                self.sampled_allocated += ev.size;
                if self.region_serves && ev.alloc_kind & !crate::hooks::INHERITED != 4 {
                    self.region_live += ev.size;
                }
                let inherited = ev.alloc_kind & crate::hooks::INHERITED != 0;
                self.chunk.push(&Record::Alloc {
                    t: if inherited { 0 } else { t },
                    tid: ev.tid,
                    addr: ev.addr,
                    size: ev.size,
                    stack,
                    kind: alloc_kind(ev.alloc_kind & !crate::hooks::INHERITED),
                    inherited,
                });
            }
            EventKind::Free => {
                self.sampled_freed += ev.size;
                if self.region_serves {
                    self.region_live = self.region_live.saturating_sub(ev.size);
                }
                self.chunk.push(&Record::Free {
                    t,
                    tid: ev.tid,
                    addr: ev.addr,
                    size: ev.size,
                });
            }
            EventKind::Munmap => {
                self.chunk.push(&Record::Munmap {
                    t,
                    tid: ev.tid,
                    addr: ev.addr,
                    len: ev.size,
                });
            }
            // Sent once per thread (hooks::name_thread). Not de-duplicated by tid: a set of every
            // tid ever seen grew with the process's life and, once tids were reused, dropped the
            // new threads' names.
            EventKind::ThreadName => {
                let bytes: Vec<u8> = frames.iter().flat_map(|w| w.to_ne_bytes()).collect();
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                let name = String::from_utf8_lossy(&bytes[..end]).into_owned();
                self.chunk.push(&Record::Thread { tid: ev.tid, name });
            }
            EventKind::PyFinalizing => {
                self.chunk.push(&Record::Marker {
                    t,
                    marker: memshim_format::Marker::PythonFinalizing,
                });
            }
            EventKind::Mark => {
                let label = crate::marks::label(frames, ev.size as usize);
                self.chunk.push(&Record::Marker {
                    t,
                    marker: memshim_format::Marker::User {
                        label,
                        thread: ev.tid,
                    },
                });
            }
            EventKind::PyCode => {
                // SAFETY: PyCode events point at arena bytes written before the push.
                let blob = unsafe { crate::arena::get(ev.addr, ev.size) };
                if let Some(code) = python::decode_code(blob) {
                    if self.codes.insert(code.id) {
                        self.chunk.push(&Record::PyCode(code));
                    }
                }
            }
            // Taken at the same loader state as the map last written (the writer saw the
            // dlopen's counters move and wrote the map itself): nothing new. Only the last one
            // written counts: an older event map may have been written after the writer's own.
            EventKind::Modules if ev.t == self.map_sig => {}
            EventKind::Modules => {
                // SAFETY: Modules events point at arena bytes written before the push.
                let blob = unsafe { crate::arena::get(ev.addr, ev.size) };
                if let Ok(Record::Modules(map)) = postcard::from_bytes::<Record>(blob) {
                    self.chunk.push(&Record::Modules(map.clone()));
                    self.map = map;
                    self.map_sig = ev.t;
                }
            }
        }
    }

    fn write_inherited(&mut self, gen: u32) {
        let mut live = Vec::new();
        region::for_each_inherited(gen, |h| {
            live.push((h.user, h.size, h.tid, h.kind, h.frames().to_vec()));
        });
        for (addr, size, tid, kind, frames) in live {
            let stack = self.intern(&frames, frames.len());
            self.chunk.push(&Record::Alloc {
                t: 0,
                tid,
                addr,
                size,
                stack,
                kind: alloc_kind(kind),
                inherited: true,
            });
            // Many inherited deep stacks must not make one chunk past the format's limit.
            if self.chunk.len() >= CHUNK_TARGET {
                self.frame_chunk();
            }
        }
    }

    fn tick(&mut self) {
        self.last_heap = self.heap.read();
        self.tick_with_heap(self.last_heap);
    }

    /// A tick between flushes: RSS and the sampled totals read now, glibc's heap as last read
    /// (probed only on the flush ticks, so the early ticks add no probe of its cost).
    fn early_tick(&mut self) {
        self.tick_with_heap(self.last_heap);
    }

    fn tick_with_heap(&mut self, heap_in_use: u64) {
        let now = real::now_ns();
        self.last_tick = now;
        let t = self.rel(now);
        let rss = self.statm.rss(self.page);
        self.chunk.push(&Record::Tick {
            t,
            rss,
            // glibc's heap (0 once probing gave up; between flushes, as last read) plus the
            // region's live blocks.
            heap_in_use: heap_in_use + self.region_live,
            sampled_allocated: self.sampled_allocated,
            sampled_freed: self.sampled_freed,
            dropped: recorder::drops(),
        });
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
    fn flush(&mut self) {
        self.frame_chunk();
        let (out, cuts) = (
            core::mem::take(&mut self.out),
            core::mem::take(&mut self.cuts),
        );
        if !out.is_empty() && !self.failed {
            let limit = self.max_size.saturating_sub(STOP_NOTE_ROOM);
            let mut result = Ok(true);
            // Blocks of whole chunks, about BLOCK_TARGET each: a block's output stays bounded for
            // readers, and MEMSHIM_MAX_SIZE loses at most one block's worth.
            let mut start = 0;
            for (i, &cut) in cuts.iter().enumerate() {
                if cut - start < BLOCK_TARGET && i + 1 < cuts.len() {
                    continue;
                }
                result = self.write_block(&out[start..cut], limit);
                if !matches!(result, Ok(true)) {
                    break;
                }
                start = cut;
            }
            let why = match result {
                Ok(true) => None,
                Ok(false) => {
                    let why = format!(
                        "capture {} reached MEMSHIM_MAX_SIZE ({} bytes); recording stopped",
                        self.file.path(), self.max_size
                    );
                    // The last block, in the room kept for it, says why the file ends here.
                    self.chunk.push(&Record::Extension {
                        kind: memshim_format::EXTENSION_STOPPED,
                        data: why.as_bytes().to_vec(),
                    });
                    let mut note = Vec::new();
                    self.chunk.finish_into(&mut note);
                    let _ = self.write_block(&note, self.max_size);
                    Some(why)
                }
                Err(e) => Some(format!(
                    "cannot write capture {}: {e}; recording stopped (the capture reads up to here)",
                    self.file.path()
                )),
            };
            if why.is_some() {
                self.failed = true;
                recorder::stop_writing();
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
        if self.max_size > 0 && self.size + block.len() as u64 > limit {
            return Ok(false);
        }
        self.file.write_all(block)?;
        self.size += block.len() as u64;
        Ok(true)
    }

    /// Frames the pending records as a chunk at the end of `out`.
    fn frame_chunk(&mut self) {
        self.chunk.finish_into(&mut self.out);
        if self.cuts.last() != Some(&self.out.len()) && !self.out.is_empty() {
            self.cuts.push(self.out.len());
        }
    }
}
