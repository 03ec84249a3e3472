//! The compressed body of version-2+ captures (header flag [`FLAG_ZSTD`]).
//!
//! ```text
//! body   := block*
//! block  := len:u32 LE  crc:u32 LE  zstd[len]
//! ```
//!
//! Decompressing blocks 0..=i yields whole chunks (the `chunk*` of version 1): the shim cuts
//! blocks at chunk boundaries, about 1 MiB of chunk bytes each, and writes each with one write,
//! so a process killed between two writes (or a capture stopped at `MEMSHIM_MAX_SIZE`) leaves a
//! file that decodes completely, and one killed during a write leaves a short last block,
//! reported as truncated; the CRC catches damage before the decompressor sees it.
//!
//! Version 3 writers make each block one complete zstd frame. Version 2 writers made the blocks
//! together one zstd stream, flushed (never ended) at the end of each block, so that content
//! repeating across blocks became back-references; but a stream keeps its history in a ring
//! buffer, and matching across the ring's wrap (zstd's "extDict" mode) took 40% of the writer's
//! time on a busy process. Independent frames cost about 2% in size and 15-20% less writer CPU.
//! The reader takes both: the decompressor continues from one frame to the next.
//!
//! Version 6 writers prime each block of an `all`-mode capture (header flag
//! [`crate::FLAG_PRIMED`]) with the chunks before it, as a raw zstd dictionary ([`crate::prime`]):
//! the block then needs those to decode, which a reader reading in order has.

use std::io::{self, Read};

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

/// Header flag: the body is zstd blocks.
pub const FLAG_ZSTD: u16 = 1;
/// Header flag (version 6+, with [`FLAG_ZSTD`]): each block is primed with the chunks before it.
pub const FLAG_PRIMED: u16 = 2;

/// How hard the writer compresses. It runs inside the profiled process, so the level follows
/// what the capture holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// zstd level 1, for sampled captures: a few KB a second, where a better ratio saves little
    /// and every instruction is the host's (level 3 cost a Python service's process 0.12% more
    /// instructions, all of it in the compressor).
    Fast,
    /// zstd level 6, for `all` mode's tens of MB a second, its blocks primed
    /// ([`crate::prime`]). Level 3's double-fast matcher had made the capture of the
    /// 16 B-128 KiB C loop 3.2x smaller than level 1 with one thread; once version 6 grouped
    /// records by thread, level 6's lazy matcher made it 281 -> 213 KB (one thread) and 875 ->
    /// 693 KB (two), where heaptrack writes 238 KB and 1.8 MB, for 2.5x the compressor's time
    /// (24 -> 62 ms for that loop's 60 MB of chunks, against 0.65 s of the process's CPU).
    Dense,
}

impl Level {
    fn zstd(self) -> i32 {
        match self {
            Level::Fast => 1,
            Level::Dense => 6,
        }
    }
}

/// Most bytes one block may decompress to (a writer flushes far less; this bounds a bad file).
pub const MAX_BLOCK_OUTPUT: usize = 4 * crate::MAX_CHUNK;

/// The writer's side: compresses framed chunks into one block to append to the file.
pub struct Compressor {
    /// One context reused for every frame (its tables are allocated once).
    enc: zstd::zstd_safe::CCtx<'static>,
    level: Level,
    /// `all` mode's blocks are primed with the chunks before them ([`crate::prime`]).
    history: Option<crate::prime::History>,
    frame: Vec<u8>,
    block: Vec<u8>,
}

impl Compressor {
    pub fn new(level: Level) -> io::Result<Self> {
        let enc = zstd::zstd_safe::CCtx::try_create()
            .ok_or_else(|| io::Error::other("zstd cannot allocate a compression context"))?;
        Ok(Compressor {
            enc,
            level,
            history: (level == Level::Dense).then(crate::prime::History::default),
            frame: Vec::new(),
            block: Vec::new(),
        })
    }

    /// The header flags of a capture this compressor writes.
    pub fn flags(&self) -> u16 {
        match self.history {
            Some(_) => FLAG_ZSTD | crate::FLAG_PRIMED,
            None => FLAG_ZSTD,
        }
    }

    /// Compresses `chunks` (framed chunks, at most [`MAX_BLOCK_OUTPUT`] bytes) into one frame;
    /// returns the block to write, valid until the next call. Call [`Self::written`] with the
    /// same chunks once it is in the file: a primed capture's next block builds on them.
    pub fn compress(&mut self, chunks: &[u8]) -> io::Result<&[u8]> {
        self.frame.clear();
        self.frame
            .reserve(zstd::zstd_safe::compress_bound(chunks.len()));
        let level = self.level.zstd();
        let done = match self.history.as_ref() {
            Some(h) => {
                self.enc
                    .compress_using_dict(&mut self.frame, chunks, h.dict(chunks.len()), level)
            }
            None => self.enc.compress(&mut self.frame, chunks, level),
        };
        done.map_err(|code| {
            io::Error::other(format!("zstd: {}", zstd::zstd_safe::get_error_name(code)))
        })?;
        self.block.clear();
        self.block
            .extend_from_slice(&(self.frame.len() as u32).to_le_bytes());
        self.block
            .extend_from_slice(&crc32fast::hash(&self.frame).to_le_bytes());
        self.block.extend_from_slice(&self.frame);
        Ok(&self.block)
    }

    /// The block [`Self::compress`] made of `chunks` is in the file.
    pub fn written(&mut self, chunks: &[u8]) {
        if let Some(h) = self.history.as_mut() {
            h.push(chunks);
        }
    }
}

/// The reader's side: the chunk bytes after the header, plain or decompressed.
pub(crate) struct Body<R> {
    inner: R,
    /// File bytes taken from `inner`.
    file_bytes: u64,
    zstd: Option<Unpacker>,
}

struct Unpacker {
    dec: Decoder<'static>,
    /// A primed capture's decompressor, and the history it is primed with.
    primed: Option<(zstd::zstd_safe::DCtx<'static>, crate::prime::History)>,
    block: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    /// The file ended inside a block.
    cut: bool,
}

impl<R: Read> Body<R> {
    /// `flags`: the header's ([`FLAG_ZSTD`], [`crate::FLAG_PRIMED`]).
    pub fn new(inner: R, flags: u16) -> io::Result<Self> {
        let zstd = if flags & FLAG_ZSTD != 0 {
            let primed = match flags & crate::FLAG_PRIMED != 0 {
                true => Some((
                    zstd::zstd_safe::DCtx::try_create().ok_or_else(|| {
                        io::Error::other("zstd cannot allocate a decompression context")
                    })?,
                    crate::prime::History::default(),
                )),
                false => None,
            };
            Some(Unpacker {
                dec: Decoder::new()?,
                primed,
                block: Vec::new(),
                out: Vec::new(),
                pos: 0,
                cut: false,
            })
        } else {
            None
        };
        Ok(Body {
            inner,
            file_bytes: 0,
            zstd,
        })
    }

    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// True when the file ended inside a compressed block (the last write was cut short).
    pub fn cut(&self) -> bool {
        self.zstd.as_ref().is_some_and(|z| z.cut)
    }

    /// Decompresses the next block into `out`; false at the end of the file.
    fn next_block(&mut self) -> io::Result<bool> {
        let z = self.zstd.as_mut().expect("compressed body");
        let mut head = [0u8; 8];
        let n = read_full(&mut self.inner, &mut head)?;
        self.file_bytes += n as u64;
        if n < head.len() {
            z.cut = n > 0;
            return Ok(false);
        }
        let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap());
        if len > MAX_BLOCK_OUTPUT {
            return Err(corrupt(format!("compressed block claims {len} bytes")));
        }
        z.block.resize(len, 0);
        let got = read_full(&mut self.inner, &mut z.block)?;
        self.file_bytes += got as u64;
        if got < len {
            z.cut = true;
            return Ok(false);
        }
        if crc32fast::hash(&z.block) != crc {
            return Err(corrupt("checksum mismatch in a compressed block".into()));
        }
        z.pos = 0;
        if let Some((dec, history)) = z.primed.as_mut() {
            // The block before joins the history this one was compressed against.
            history.push(&z.out);
            let len = match zstd::zstd_safe::get_frame_content_size(&z.block) {
                Ok(Some(n)) if n <= MAX_BLOCK_OUTPUT as u64 => n as usize,
                Ok(Some(n)) => return Err(corrupt(format!("a compressed block claims {n} bytes"))),
                _ => return Err(corrupt("a primed block without its size".into())),
            };
            z.out.clear();
            z.out.resize(len, 0);
            let got = dec
                .decompress_using_dict(&mut z.out[..], &z.block, history.dict(len))
                .map_err(|code| {
                    corrupt(format!(
                        "compressed block: {}",
                        zstd::zstd_safe::get_error_name(code)
                    ))
                })?;
            z.out.truncate(got);
            return Ok(true);
        }
        z.out.clear();
        let mut input = InBuffer::around(&z.block);
        loop {
            if z.out.len() >= MAX_BLOCK_OUTPUT {
                return Err(corrupt(
                    "a compressed block expands beyond the limit".into(),
                ));
            }
            z.out.reserve(64 << 10);
            let start = z.out.len();
            let cap = z.out.capacity();
            let room_left = {
                let mut output = OutBuffer::around_pos(&mut z.out, start);
                z.dec
                    .run(&mut input, &mut output)
                    .map_err(|e| corrupt(format!("compressed block: {e}")))?;
                output.pos() < cap
            };
            // Done when all input is in and the decoder had room to spare (nothing held back).
            if input.pos() == z.block.len() && room_left {
                return Ok(true);
            }
        }
    }
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.zstd.is_none() {
            let n = self.inner.read(buf)?;
            self.file_bytes += n as u64;
            return Ok(n);
        }
        loop {
            let z = self.zstd.as_mut().expect("compressed body");
            if z.pos < z.out.len() {
                let n = buf.len().min(z.out.len() - z.pos);
                buf[..n].copy_from_slice(&z.out[z.pos..z.pos + n]);
                z.pos += n;
                return Ok(n);
            }
            if !self.next_block()? {
                return Ok(0);
            }
        }
    }
}

fn corrupt(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
