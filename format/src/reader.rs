//! Streaming decoder: memory use is one chunk (and, compressed, the block holding it), whatever
//! the file size.

use std::fmt;
use std::io::{self, Read};

use crate::chunk::CHUNK_HEADER;
use crate::header::PREAMBLE_LEN;
use crate::stream::{read_full, Body};
use crate::{decode_header, Header, Record, MAX_CHUNK};

/// Why a capture cannot be read (further).
#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// The file is empty.
    Empty,
    /// The file does not start with the memshim magic.
    NotACapture,
    /// Written by a newer memshim.
    NewerVersion(u16),
    /// The file ends inside the header.
    Truncated,
    /// Checksums or encodings do not hold.
    Corrupt(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Empty => write!(f, "empty file, not a memshim capture"),
            Error::NotACapture => write!(f, "not a memshim capture (bad magic)"),
            Error::NewerVersion(v) => write!(
                f,
                "capture format version {v} is newer than this memshim understands (version {}); upgrade memshim",
                crate::FORMAT_VERSION
            ),
            Error::Truncated => write!(f, "truncated before the end of its header"),
            Error::Corrupt(why) => write!(f, "corrupt capture: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::InvalidData {
            Error::Corrupt(e.to_string()) // the decompressor's verdict on the bytes
        } else {
            Error::Io(e)
        }
    }
}

/// Reads records one at a time from any byte stream.
pub struct Reader<R> {
    inner: Body<R>,
    header: Header,
    chunk: Vec<u8>,
    pos: usize,
    header_len: u64,
    chunks: u64,
    truncated: bool,
    ended: bool,
    /// Versions 3-5: hot records are written relative to the earlier ones of their chunk.
    hot: Option<crate::fast::Context>,
    /// Version 6+: the chunk's records are grouped by thread.
    grouped: Option<crate::grouped::Reader>,
    version: u16,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R) -> Result<Self, Error> {
        let mut pre = [0u8; PREAMBLE_LEN];
        let n = read_full(&mut inner, &mut pre)?;
        if n == 0 {
            return Err(Error::Empty);
        }
        // Let decode_header judge magic/version on what we have, then read the declared body.
        if n < PREAMBLE_LEN {
            return Err(decode_header(&pre[..n]).err().unwrap_or(Error::Truncated));
        }
        let body_len = u32::from_le_bytes(pre[12..16].try_into().unwrap()) as usize;
        if pre[..8] == crate::MAGIC && body_len <= MAX_CHUNK {
            let mut all = pre.to_vec();
            all.resize(PREAMBLE_LEN + body_len + 4, 0);
            let got = read_full(&mut inner, &mut all[PREAMBLE_LEN..])?;
            all.truncate(PREAMBLE_LEN + got);
            let (header, used) = decode_header(&all)?;
            let flags = u16::from_le_bytes([pre[10], pre[11]]);
            let version = u16::from_le_bytes([pre[8], pre[9]]);
            return Ok(Reader {
                inner: Body::new(inner, flags)?,
                header,
                chunk: Vec::new(),
                pos: 0,
                header_len: used as u64,
                chunks: 0,
                truncated: false,
                ended: false,
                hot: (3..6)
                    .contains(&version)
                    .then(|| crate::fast::Context::for_version(version)),
                grouped: (version >= 6).then(crate::grouped::Reader::default),
                version,
            });
        }
        Err(decode_header(&pre).err().unwrap_or(Error::NotACapture))
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// File bytes consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.header_len + self.inner.file_bytes()
    }

    /// Complete chunks decoded so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// True once the stream ended inside a chunk (the process died mid-write).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// True once an [`Record::End`] was read: the process left through a recorded exit path.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next record, or `None` at the end of the stream (check [`Self::truncated`]).
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        loop {
            let next = match self.grouped.as_mut() {
                Some(g) => g.next(&self.chunk),
                None => self.next_in_arrival_order(),
            };
            match next {
                Ok(Some(rec)) => {
                    if matches!(rec, Record::End { .. }) {
                        self.ended = true;
                    }
                    return Ok(Some(rec));
                }
                Ok(None) => {
                    if !self.load_chunk()? {
                        return Ok(None);
                    }
                }
                Err(e) => {
                    return Err(Error::Corrupt(format!(
                        "record in chunk {}: {e}",
                        self.chunks
                    )))
                }
            }
        }
    }

    /// Versions 1-5: the chunk's next record, None after its last.
    fn next_in_arrival_order(&mut self) -> Result<Option<Record>, String> {
        let Some(rest) = self.chunk.get(self.pos..).filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let rec = match self.hot.as_mut() {
            Some(ctx) if crate::fast::is_hot(rest[0]) => {
                let (rec, used) = crate::fast::decode(rest, ctx)?;
                self.pos += used;
                rec
            }
            _ => {
                let (rec, tail) =
                    postcard::take_from_bytes::<Record>(rest).map_err(|e| e.to_string())?;
                self.pos = self.chunk.len() - tail.len();
                rec
            }
        };
        Ok(Some(rec))
    }

    fn load_chunk(&mut self) -> Result<bool, Error> {
        if self.truncated {
            return Ok(false);
        }
        let mut head = [0u8; CHUNK_HEADER];
        let n = read_full(&mut self.inner, &mut head)?;
        if n == 0 {
            self.truncated = self.inner.cut();
            return Ok(false);
        }
        if n < CHUNK_HEADER {
            self.truncated = true;
            return Ok(false);
        }
        let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().unwrap());
        if len > MAX_CHUNK {
            return Err(Error::Corrupt(format!(
                "chunk {} claims {len} bytes (limit {MAX_CHUNK})",
                self.chunks
            )));
        }
        self.chunk.resize(len, 0);
        let got = read_full(&mut self.inner, &mut self.chunk)?;
        if got < len {
            self.chunk.clear();
            self.truncated = true;
            return Ok(false);
        }
        if crc32fast::hash(&self.chunk) != crc {
            return Err(Error::Corrupt(format!(
                "checksum mismatch in chunk {}",
                self.chunks
            )));
        }
        self.chunks += 1;
        self.pos = 0;
        if let Some(g) = self.grouped.as_mut() {
            g.start(&self.chunk)
                .map_err(|e| Error::Corrupt(format!("chunk {}: {e}", self.chunks - 1)))?;
        }
        if let Some(ctx) = self.hot.as_mut() {
            *ctx = crate::fast::Context::for_version(self.version);
        }
        Ok(true)
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Record, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}
