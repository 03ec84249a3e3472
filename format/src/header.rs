//! The file preamble and the [`Header`] that follows it.

use serde::{Deserialize, Serialize};

/// First eight bytes of every capture.
pub const MAGIC: [u8; 8] = *b"MEMSHIM\0";
/// The version this crate writes and the newest it reads.
pub const FORMAT_VERSION: u16 = 6;
/// Bytes before the header body: magic, version, flags, body length.
pub const PREAMBLE_LEN: usize = 16;

/// Who wrote the capture and how it sampled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Header {
    pub pid: u32,
    pub ppid: u32,
    /// Path of the executable (`/proc/self/exe`).
    pub exe: String,
    pub argv: Vec<String>,
    /// Wall-clock start, nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// `CLOCK_MONOTONIC` at start; record times are relative to it.
    pub start_mono_ns: u64,
    /// The sampling rate: mean bytes between samples (`MEMSHIM_RATE`); 0 means every allocation is recorded (`all`).
    pub rate: u64,
    pub page_size: u32,
    /// Most native frames kept per stack.
    pub stack_depth: u32,
    /// `MEMSHIM_SEED`, when sampling was made reproducible.
    pub seed: Option<u64>,
    /// Set when this process is a forked child: the parent's pid.
    pub forked_from: Option<u32>,
    /// Version of the shim that wrote the file.
    pub shim_version: String,
    /// Room to grow: named values a later writer may add and an older reader ignores.
    pub extra: Vec<(String, String)>,
}

impl Header {
    /// True when every allocation was recorded (no sampling).
    pub fn records_all(&self) -> bool {
        self.rate == 0
    }
}

/// Encodes the preamble, header body and header checksum, for plain chunks.
pub fn encode_header(h: &Header) -> Vec<u8> {
    encode_header_with(h, 0)
}

/// As [`encode_header`], with preamble flags (e.g. [`crate::FLAG_ZSTD`]).
pub fn encode_header_with(h: &Header, flags: u16) -> Vec<u8> {
    let body = postcard::to_allocvec(h).expect("a Header always serializes");
    let mut out = Vec::with_capacity(PREAMBLE_LEN + body.len() + 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out
}

/// Decodes a header from the start of `bytes`; returns it and the bytes it used.
pub fn decode_header(bytes: &[u8]) -> Result<(Header, usize), crate::Error> {
    use crate::Error;
    if bytes.len() < PREAMBLE_LEN {
        return Err(if MAGIC.starts_with(bytes) || bytes.starts_with(&MAGIC) {
            Error::Truncated
        } else {
            Error::NotACapture
        });
    }
    if bytes[..8] != MAGIC {
        return Err(Error::NotACapture);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version > FORMAT_VERSION {
        return Err(Error::NewerVersion(version));
    }
    if version == 0 {
        return Err(Error::Corrupt("format version 0".into()));
    }
    let flags = u16::from_le_bytes([bytes[10], bytes[11]]);
    let known = match version {
        1 => 0,
        2..=5 => crate::FLAG_ZSTD,
        _ => crate::FLAG_ZSTD | crate::FLAG_PRIMED,
    };
    if flags & !known != 0 {
        return Err(Error::Corrupt(format!("unknown header flags {flags:#x}")));
    }
    let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    if len > crate::MAX_CHUNK {
        return Err(Error::Corrupt("header length out of range".into()));
    }
    let end = PREAMBLE_LEN + len + 4;
    if bytes.len() < end {
        return Err(Error::Truncated);
    }
    let body = &bytes[PREAMBLE_LEN..PREAMBLE_LEN + len];
    let crc = u32::from_le_bytes(bytes[PREAMBLE_LEN + len..end].try_into().unwrap());
    if crc32fast::hash(body) != crc {
        return Err(Error::Corrupt("header checksum mismatch".into()));
    }
    let h: Header =
        postcard::from_bytes(body).map_err(|e| Error::Corrupt(format!("header: {e}")))?;
    Ok((h, end))
}
