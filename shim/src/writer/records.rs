//! Events into records: what the writer makes of each event the ring brings, and of the live
//! samples a forked child inherited.

use memshim_format::{AllocKind, PyFrame, Record};

use super::capture::{Writer, CHUNK_TARGET};
use crate::sys::region;
use crate::transport::event::{Event, EventKind, WORDS_PER_FRAME};

impl Writer {
    pub(super) fn on_event(&mut self, ev: &Event, frames: &[u64]) {
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
            EventKind::Alloc | EventKind::AllocRepeat => {
                let stack = if kind == EventKind::Alloc {
                    let id = self.intern(frames, ev.nframes as usize);
                    if self.snap.is_none() {
                        self.last_stack.insert(ev.tid, id);
                        self.last_repeat = (ev.tid, id);
                    }
                    id
                } else if self.last_repeat.0 == ev.tid && ev.tid != 0 {
                    // The thread of the previous repeat or full stack: no table lookup.
                    self.last_repeat.1
                } else {
                    match self.last_stack.get(&ev.tid) {
                        Some(&id) => {
                            self.last_repeat = (ev.tid, id);
                            id
                        }
                        // Cannot happen (a thread repeats only a stack this writer received);
                        // an empty stack rather than another thread's.
                        None => self.intern(&[], 0),
                    }
                };
                self.sampled_allocated += ev.size;
                if self.region_serves && ev.alloc_kind() != AllocKind::Mmap {
                    self.region_live += ev.size;
                }
                let inherited = ev.is_inherited();
                if self.snap.is_some() {
                    self.aggregate_alloc(
                        t,
                        stack,
                        frames,
                        ev.nframes as usize,
                        ev.addr,
                        ev.size,
                        inherited,
                    );
                    return;
                }
                let t = if inherited { 0 } else { t };
                let kind = ev.alloc_kind();
                self.chunk
                    .alloc(t, ev.tid, ev.addr, ev.size, stack, kind, inherited);
            }
            EventKind::Free => {
                self.sampled_freed += ev.size;
                if self.region_serves {
                    self.region_live = self.region_live.saturating_sub(ev.size);
                }
                if let Some(s) = self.snap.as_mut() {
                    s.agg.free(ev.addr);
                    return;
                }
                self.chunk.free(t, ev.tid, ev.addr, ev.size);
            }
            EventKind::Munmap => {
                if let Some(s) = self.snap.as_mut() {
                    // A mapping unmapped from its start; a partial unmap keeps it live.
                    s.agg.free(ev.addr);
                    return;
                }
                self.chunk.push(&Record::Munmap {
                    t,
                    tid: ev.tid,
                    addr: ev.addr,
                    len: ev.size,
                });
            }
            // Sent once per thread (the hooks' name_thread). Not de-duplicated by tid: a set of every
            // tid ever seen grew with the process's life and, once tids were reused, dropped the
            // new threads' names.
            EventKind::ThreadName => {
                let bytes: Vec<u8> = frames.iter().flat_map(|w| w.to_ne_bytes()).collect();
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                let name = String::from_utf8_lossy(&bytes[..end]).into_owned();
                if let Some(s) = self.snap.as_mut() {
                    s.note_thread(ev.tid, &name);
                }
                self.chunk.push(&Record::Thread { tid: ev.tid, name });
            }
            EventKind::ThreadEnd => {
                self.last_stack.remove(&ev.tid);
                if self.last_repeat.0 == ev.tid {
                    self.last_repeat = (0, 0);
                }
            }
            EventKind::PyFinalizing => {
                self.chunk.push(&Record::Marker {
                    t,
                    marker: memshim_format::Marker::PythonFinalizing,
                });
                // What is live as finalization begins is what the program left.
                self.write_snapshot(memshim_format::snapshot::Cause::Finalizing, false);
            }
            EventKind::Mark => {
                let label = crate::transport::mark_label::unpack(frames, ev.size as usize);
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
                let blob = unsafe { crate::transport::arena::get(ev.addr, ev.size) };
                if let Some(code) = crate::transport::pycode::decode(blob) {
                    if self.codes.insert(code.id) {
                        if let Some(s) = self.snap.as_mut() {
                            s.note_code(&code);
                        }
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
                let blob = unsafe { crate::transport::arena::get(ev.addr, ev.size) };
                if let Ok(Record::Modules(map)) = postcard::from_bytes::<Record>(blob) {
                    self.chunk.push(&Record::Modules(map.clone()));
                    self.map = map;
                    self.map_sig = ev.t;
                }
            }
        }
    }

    pub(super) fn write_inherited(&mut self, gen: u32) {
        let mut live = Vec::new();
        region::for_each_inherited(gen, |h| {
            live.push((h.user, h.size, h.tid, h.kind, h.frames().to_vec()));
        });
        for (addr, size, tid, kind, frames) in live {
            let stack = self.intern(&frames, frames.len());
            if self.snap.is_some() {
                self.aggregate_alloc(0, stack, &frames, frames.len(), addr, size, true);
                continue;
            }
            self.chunk.push(&Record::Alloc {
                t: 0,
                tid,
                addr,
                size,
                stack,
                kind: AllocKind::from_index(kind).unwrap_or(AllocKind::Malloc),
                inherited: true,
            });
            // Many inherited deep stacks must not make one chunk past the format's limit.
            if self.chunk.len() >= CHUNK_TARGET {
                self.frame_chunk();
            }
        }
    }

    /// Snapshot mode: an allocation goes into the aggregates instead of the capture.
    #[allow(clippy::too_many_arguments)]
    fn aggregate_alloc(
        &mut self,
        t: u64,
        stack: u64,
        words: &[u64],
        native: usize,
        addr: u64,
        size: u64,
        inherited: bool,
    ) {
        let Some(mut s) = self.snap.take() else {
            return;
        };
        s.agg.alloc(
            t,
            stack,
            words,
            native,
            addr,
            size,
            inherited,
            &mut |w, n| self.intern(w, n),
        );
        self.snap = Some(s);
    }

    /// The id of a stack given as `native` return addresses followed by Python frame words.
    pub(super) fn intern(&mut self, words: &[u64], native: usize) -> u64 {
        let (id, new) = self.stacks.intern(words);
        if !new {
            return id;
        }
        let python = words[native.min(words.len())..]
            .chunks_exact(WORDS_PER_FRAME)
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
}
