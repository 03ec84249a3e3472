//! Chunk framing: `len:u32 LE, crc32:u32 LE, payload`.

use crate::Record;

/// Largest payload a writer emits and a reader accepts.
pub const MAX_CHUNK: usize = 16 << 20;
/// Bytes of framing before each payload.
pub const CHUNK_HEADER: usize = 8;

/// Frames one payload.
pub fn encode_chunk(payload: &[u8], out: &mut Vec<u8>) {
    frame_parts(&[payload], out);
}

/// Frames the payload made of `parts`, in order.
pub(crate) fn frame_parts(parts: &[&[u8]], out: &mut Vec<u8>) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut crc = crc32fast::Hasher::new();
    parts.iter().for_each(|p| crc.update(p));
    out.reserve(CHUNK_HEADER + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    parts.iter().for_each(|p| out.extend_from_slice(p));
}

/// Accumulates records into one payload (version 6: grouped by thread, [`crate::grouped`]);
/// the writer flushes it as a chunk.
#[derive(Debug, Default)]
pub struct ChunkBuilder {
    payload: crate::grouped::Builder,
}

impl ChunkBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one record. Inlined across crates: given a record built on the spot, the hot
    /// kinds compile to their encoder alone (no match, no drop glue).
    #[inline(always)]
    pub fn push(&mut self, r: &Record) {
        self.payload.push(r);
    }

    /// Appends an Alloc record (as `push(&Record::Alloc { .. })`, without the temporary: its
    /// drop glue cost the writer a call per event).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn alloc(
        &mut self,
        t: u64,
        tid: u32,
        addr: u64,
        size: u64,
        stack: u64,
        kind: crate::AllocKind,
        inherited: bool,
    ) {
        self.payload
            .alloc(t, tid, addr, size, stack, kind, inherited);
    }

    /// Appends a Free record (as `push(&Record::Free { .. })`, without the temporary).
    #[inline(always)]
    pub fn free(&mut self, t: u64, tid: u32, addr: u64, size: u64) {
        self.payload.free(t, tid, addr, size);
    }

    /// Bytes of records so far.
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payload.len() == 0
    }

    /// Moves the framed chunk into `out` and empties the builder.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        if let Some(parts) = self.payload.seal() {
            frame_parts(&parts, out);
        }
        self.payload.clear();
    }
}
