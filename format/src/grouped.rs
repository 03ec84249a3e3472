//! Version 6 chunk payloads: the records grouped by thread, with the order they came in.
//!
//! ```text
//! payload := n:varint  (tid:varint len:varint)^n  runs_len:varint  runs  stream^n
//! runs    := (stream:varint count:varint)*
//! ```
//!
//! The records, in order, are `count` records from `stream`, then the next run's, and so on;
//! every stream's bytes are used up by the last run. Stream 0 (its `tid` 0) holds the records
//! other than allocations, frees and unmaps, in postcard. Every other stream holds one thread's
//! hot records, each relative to the stream's previous one (starting from zero in each chunk):
//!
//! ```text
//! Free   := 0                     zz(t - t') zz(addr - addr') size
//! Munmap := 1                     zz(t - t') zz(addr - addr') len
//! Alloc  := 2 + 2 kind + inherited zz(t - t') zz(addr - addr') size stack
//! ```
//!
//! (`zz` as in [`crate::fast`]; the thread id is the stream's.) Why: two `all`-mode threads
//! interleave every few records, so a stream of records in arrival order never repeats, even
//! though each thread's loop does; zstd finds each thread's repeats once its records sit
//! together. The order costs a few bytes per switch of thread. On a two-thread malloc/free loop
//! this made captures 3-6x smaller than version 5's lanes (BENCHMARKS.md, "`all` mode").

use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;

use crate::fast::{put, unzigzag, zigzag, Take};
use crate::{AllocKind, Record};

type TidMap = std::collections::HashMap<u32, u32, BuildHasherDefault<FxHasher>>;

const FREE: u8 = 0;
const MUNMAP: u8 = 1;
const ALLOC: u8 = 2;

/// Emptied thread buffers kept for the next chunk's threads.
const SPARE_STREAMS: usize = 64;

/// One thread's hot records so far in this chunk, and where the last one left off.
#[derive(Debug)]
struct Stream {
    tid: u32,
    bytes: Vec<u8>,
    t: u64,
    addr: u64,
}

impl Stream {
    #[inline(always)]
    fn hot(&mut self, tag: u8, t: u64, addr: u64, size: u64, stack: Option<u64>) -> usize {
        let before = self.bytes.len();
        let (dt, da) = (t.wrapping_sub(self.t), addr.wrapping_sub(self.addr));
        put(&mut self.bytes, |p| {
            p.byte(tag);
            p.varint(zigzag(dt));
            p.varint(zigzag(da));
            p.varint(size);
            if let Some(stack) = stack {
                p.varint(stack);
            }
        });
        (self.t, self.addr) = (t, addr);
        self.bytes.len() - before
    }
}

/// Builds one chunk's payload.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    /// Stream 0: the other records, in postcard.
    other: Vec<u8>,
    /// Streams 1.. (index - 1 here).
    threads: Vec<Stream>,
    by_tid: TidMap,
    /// The thread of the previous hot record and its stream: a loop's thread, looked up once.
    last: (u32, u32),
    runs: Vec<u8>,
    /// The directory, built when the payload is sealed.
    head: Vec<u8>,
    /// The run in progress: its stream and how many records it has.
    run: (u32, u64),
    /// Bytes of records so far (the payload, less its directory).
    len: usize,
    spare: Vec<Vec<u8>>,
}

impl Builder {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The stream of thread `tid` (1-based), opened on its first record in the chunk.
    #[inline(always)]
    fn stream_of(&mut self, tid: u32) -> u32 {
        if self.last.1 != 0 && self.last.0 == tid {
            return self.last.1;
        }
        let s = self.lookup(tid);
        self.last = (tid, s);
        s
    }

    #[inline(never)]
    fn lookup(&mut self, tid: u32) -> u32 {
        let next = self.threads.len() as u32 + 1;
        let s = *self.by_tid.entry(tid).or_insert(next);
        if s == next {
            let bytes = self.spare.pop().unwrap_or_default();
            self.threads.push(Stream {
                tid,
                bytes,
                t: 0,
                addr: 0,
            });
        }
        s
    }

    /// Counts one record of `stream` into the runs.
    #[inline(always)]
    fn ran(&mut self, stream: u32) {
        if self.run.0 == stream && self.run.1 > 0 {
            self.run.1 += 1;
        } else {
            self.end_run();
            self.run = (stream, 1);
        }
    }

    fn end_run(&mut self) {
        if self.run.1 > 0 {
            let (s, n) = self.run;
            put(&mut self.runs, |p| {
                p.varint(s as u64);
                p.varint(n);
            });
            self.run.1 = 0;
        }
    }

    #[inline(always)]
    fn hot(&mut self, tid: u32, tag: u8, t: u64, addr: u64, size: u64, stack: Option<u64>) {
        let s = self.stream_of(tid);
        self.ran(s);
        // `s` came from `stream_of`: 1..=threads.len().
        self.len += self.threads[s as usize - 1].hot(tag, t, addr, size, stack);
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn alloc(
        &mut self,
        t: u64,
        tid: u32,
        addr: u64,
        size: u64,
        stack: u64,
        kind: AllocKind,
        inherited: bool,
    ) {
        let tag = ALLOC + 2 * kind.index() + inherited as u8;
        self.hot(tid, tag, t, addr, size, Some(stack));
    }

    #[inline(always)]
    pub fn free(&mut self, t: u64, tid: u32, addr: u64, size: u64) {
        self.hot(tid, FREE, t, addr, size, None);
    }

    #[inline(always)]
    fn munmap(&mut self, t: u64, tid: u32, addr: u64, len: u64) {
        self.hot(tid, MUNMAP, t, addr, len, None);
    }

    /// Appends any record: the hot kinds to their thread's stream, the others to stream 0.
    #[inline(always)]
    pub fn push(&mut self, r: &Record) {
        match *r {
            Record::Alloc {
                t,
                tid,
                addr,
                size,
                stack,
                kind,
                inherited,
            } => self.alloc(t, tid, addr, size, stack, kind, inherited),
            Record::Free { t, tid, addr, size } => self.free(t, tid, addr, size),
            Record::Munmap { t, tid, addr, len } => self.munmap(t, tid, addr, len),
            _ => self.other(r),
        }
    }

    /// A record other than the hot kinds (a few per flush), in postcard, in stream 0.
    #[inline(never)]
    fn other(&mut self, r: &Record) {
        self.ran(0);
        let before = self.other.len();
        let buf = std::mem::take(&mut self.other);
        self.other = postcard::to_extend(r, buf).expect("a Record always serializes");
        self.len += self.other.len() - before;
    }

    /// The payload's parts, in order (None when it holds no record); then [`Self::clear`].
    pub fn seal(&mut self) -> Option<Vec<&[u8]>> {
        // Every record takes at least a byte.
        if self.len == 0 {
            return None;
        }
        self.end_run();
        let mut head = std::mem::take(&mut self.head);
        head.clear();
        put(&mut head, |p| {
            p.varint(self.threads.len() as u64 + 1);
            p.varint(0);
            p.varint(self.other.len() as u64);
        });
        for s in &self.threads {
            put(&mut head, |p| {
                p.varint(s.tid as u64);
                p.varint(s.bytes.len() as u64);
            });
        }
        put(&mut head, |p| p.varint(self.runs.len() as u64));
        self.head = head;
        let mut parts = vec![&self.head[..], &self.runs, &self.other];
        parts.extend(self.threads.iter().map(|s| &s.bytes[..]));
        Some(parts)
    }

    /// Starts the next payload.
    pub fn clear(&mut self) {
        self.other.clear();
        self.runs.clear();
        self.run = (0, 0);
        self.by_tid.clear();
        self.last = (0, 0);
        self.len = 0;
        for mut s in self.threads.drain(..) {
            if self.spare.len() < SPARE_STREAMS {
                s.bytes.clear();
                self.spare.push(s.bytes);
            }
        }
    }
}

/// Where one stream of a chunk being read stands.
#[derive(Debug)]
struct Cursor {
    tid: u32,
    pos: usize,
    end: usize,
    t: u64,
    addr: u64,
}

/// Reads a version 6 payload's records in order.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    streams: Vec<Cursor>,
    runs: (usize, usize),
    /// The run being read: its stream and records left.
    run: (usize, u64),
}

impl Reader {
    /// Reads the directory of `chunk`.
    pub fn start(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.streams.clear();
        self.run = (0, 0);
        let mut r = Take {
            bytes: chunk,
            pos: 0,
        };
        let n = r.varint()?;
        // Each stream takes at least two bytes of directory.
        if n == 0 || n > chunk.len() as u64 / 2 {
            return Err(format!("{n} streams in a chunk of {} bytes", chunk.len()));
        }
        // Grown as entries parse, not sized by `n`: a damaged count fails at its first
        // missing entry, having allocated no more than the chunk holds.
        let mut lens = Vec::new();
        for _ in 0..n {
            let tid = u32::try_from(r.varint()?).map_err(|_| "thread id out of range")?;
            lens.push((tid, r.varint()?));
        }
        let runs_len = r.varint()?;
        let mut at = r.pos as u64;
        let mut next = |len: u64| -> Result<(usize, usize), String> {
            let end = at
                .checked_add(len)
                .filter(|&e| e <= chunk.len() as u64)
                .ok_or("a stream runs past its chunk")?;
            let span = (at as usize, end as usize);
            at = end;
            Ok(span)
        };
        self.runs = next(runs_len)?;
        for (tid, len) in lens {
            let (pos, end) = next(len)?;
            self.streams.push(Cursor {
                tid,
                pos,
                end,
                t: 0,
                addr: 0,
            });
        }
        if at != chunk.len() as u64 {
            return Err("bytes after a chunk's last stream".into());
        }
        Ok(())
    }

    /// The next record of `chunk` (the one [`Self::start`] read), None after its last.
    pub fn next(&mut self, chunk: &[u8]) -> Result<Option<Record>, String> {
        while self.run.1 == 0 {
            let (pos, end) = self.runs;
            if pos == end {
                return match self.streams.iter().all(|s| s.pos == s.end) {
                    true => Ok(None),
                    false => Err("a stream holds records its chunk's order does not name".into()),
                };
            }
            let mut r = Take {
                bytes: &chunk[..end],
                pos,
            };
            let stream = r.varint()?;
            let count = r.varint()?;
            if stream >= self.streams.len() as u64 {
                return Err(format!(
                    "a run names stream {stream} of {}",
                    self.streams.len()
                ));
            }
            self.runs.0 = r.pos;
            self.run = (stream as usize, count);
        }
        self.run.1 -= 1;
        let s = &mut self.streams[self.run.0];
        let bytes = &chunk[..s.end];
        if s.pos == s.end {
            return Err("a run names more records than its stream holds".into());
        }
        if self.run.0 == 0 {
            let (rec, tail) =
                postcard::take_from_bytes::<Record>(&bytes[s.pos..]).map_err(|e| e.to_string())?;
            s.pos = s.end - tail.len();
            return Ok(Some(rec));
        }
        let mut r = Take { bytes, pos: s.pos };
        let tag = r.byte()?;
        let t = s.t.wrapping_add(unzigzag(r.varint()?));
        let addr = s.addr.wrapping_add(unzigzag(r.varint()?));
        let size = r.varint()?;
        let tid = s.tid;
        let rec = match tag {
            FREE => Record::Free { t, tid, addr, size },
            MUNMAP => Record::Munmap {
                t,
                tid,
                addr,
                len: size,
            },
            _ => {
                let kind = AllocKind::from_index((tag - ALLOC) / 2).ok_or("unknown record tag")?;
                Record::Alloc {
                    t,
                    tid,
                    addr,
                    size,
                    stack: r.varint()?,
                    kind,
                    inherited: (tag - ALLOC) % 2 == 1,
                }
            }
        };
        (s.pos, s.t, s.addr) = (r.pos, t, addr);
        Ok(Some(rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(recs: &[Record]) -> Vec<u8> {
        let mut b = Builder::default();
        recs.iter().for_each(|r| b.push(r));
        b.seal().unwrap().concat()
    }

    fn read(chunk: &[u8]) -> Result<Vec<Record>, String> {
        let mut r = Reader::default();
        r.start(chunk)?;
        let mut got = Vec::new();
        while let Some(rec) = r.next(chunk)? {
            got.push(rec);
        }
        Ok(got)
    }

    fn interleaved() -> Vec<Record> {
        let mut recs = Vec::new();
        for i in 0..300u64 {
            let tid = [7, 9, 7, 7, 11][i as usize % 5];
            recs.push(Record::Alloc {
                t: i / 7,
                tid,
                addr: 0x5000_0000 * tid as u64 + i * 16,
                size: i % 97,
                stack: i % 3,
                kind: AllocKind::from_index((i % 5) as u8).unwrap(),
                inherited: i % 11 == 0,
            });
            if i % 50 == 0 {
                recs.push(Record::Thread {
                    tid,
                    name: format!("worker-{i}"),
                });
            }
            recs.push(Record::Free {
                t: i / 7,
                tid,
                addr: 0x5000_0000 * tid as u64 + i * 16,
                size: 0,
            });
        }
        recs
    }

    #[test]
    fn interleaved_threads_come_back_in_their_order() {
        let recs = interleaved();
        let chunk = build(&recs);
        assert_eq!(read(&chunk).unwrap(), recs);
    }

    #[test]
    fn a_damaged_directory_is_an_error_not_a_panic() {
        let payload = &build(&interleaved());
        for cut in 0..payload.len() {
            let _ = read(&payload[..cut]);
        }
        for at in 0..payload.len().min(64) {
            let mut p = payload.to_vec();
            p[at] ^= 0x41;
            let _ = read(&p);
        }
        // A run naming more records than the stream holds.
        let mut b = Builder::default();
        b.free(1, 5, 0x1000, 0);
        let mut p = b.seal().unwrap().concat();
        // Directory: 2 streams, (0, 0 bytes), (tid 5, 5 bytes), 2 bytes of runs; then the run.
        assert_eq!(&p[..8], &[2, 0, 0, 5, 5, 2, 1, 1]);
        assert_eq!(read(&p).unwrap().len(), 1);
        p[7] = 2;
        assert!(read(&p).is_err());
    }

    #[test]
    fn two_interleaved_loops_compress_far_better_than_in_arrival_order() {
        // Two threads' malloc/free loops (each repeating every 500 pairs), interleaved in runs
        // of 1-4 records: version 5 wrote them in arrival order, which never repeats.
        let mut recs = Vec::new();
        let (mut next, mut x) = ([0u64; 2], 7u32);
        while recs.len() < 200_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let th = (x >> 20) as usize & 1;
            for _ in 0..1 + (x >> 16) % 4 {
                let (i, tid) = (next[th], 40 + th as u32);
                let k = i / 2 % 500;
                let addr = 0x7f00_0000_0000 * th as u64 + 0x1000 + k * 48;
                recs.push(match i % 2 {
                    0 => Record::Alloc {
                        t: i / 20_000,
                        tid,
                        addr,
                        size: 16 + k * 37 % 1000,
                        stack: 9,
                        kind: AllocKind::Malloc,
                        inherited: false,
                    },
                    _ => Record::Free {
                        t: i / 20_000,
                        tid,
                        addr,
                        size: 0,
                    },
                });
                next[th] += 1;
            }
        }
        let zstd = |b: &[u8]| zstd::bulk::compress(b, 3).unwrap().len();
        let (mut v5, mut ctx) = (Vec::new(), crate::fast::Context::for_version(5));
        let mut v6 = Vec::new();
        for chunk in recs.chunks(50_000) {
            let mut payload = Vec::new();
            chunk
                .iter()
                .for_each(|r| assert!(crate::fast::encode(r, &mut payload, &mut ctx)));
            v5.extend(payload);
            ctx = crate::fast::Context::for_version(5);
            v6.extend(build(chunk));
        }
        let (v5, v6) = (zstd(&v5), zstd(&v6));
        assert!(v6 * 2 < v5, "version 6 {v6} bytes, version 5 {v5}");
    }

    #[test]
    fn hundreds_of_threads_in_one_chunk_then_the_next() {
        let recs: Vec<Record> = (0..3 * 500u32)
            .map(|i| Record::Free {
                t: i as u64,
                tid: 1000 + i % 500,
                addr: 0x10_0000 + 16 * i as u64,
                size: i as u64 % 7,
            })
            .collect();
        let mut b = Builder::default();
        for chunk in recs.chunks(700) {
            for r in chunk {
                if let Record::Free { t, tid, addr, size } = *r {
                    b.free(t, tid, addr, size);
                }
            }
            let payload = b.seal().unwrap().concat();
            b.clear();
            assert_eq!(read(&payload).unwrap(), chunk);
        }
        assert!(b.spare.len() <= SPARE_STREAMS);
    }

    #[test]
    fn an_empty_builder_has_no_payload() {
        assert!(Builder::default().seal().is_none());
    }
}
