//! Chunk framing: `len:u32 LE, crc32:u32 LE, payload`.

use crate::Record;

/// Largest payload a writer emits and a reader accepts.
pub const MAX_CHUNK: usize = 16 << 20;
/// Bytes of framing before each payload.
pub const CHUNK_HEADER: usize = 8;

/// Frames one payload.
pub fn encode_chunk(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Accumulates records into one payload; the writer flushes it as a chunk.
#[derive(Debug)]
pub struct ChunkBuilder {
    payload: Vec<u8>,
    /// What this chunk's hot records so far left for the next (see [`crate::fast`]).
    hot: crate::fast::Context,
}

impl Default for ChunkBuilder {
    fn default() -> Self {
        ChunkBuilder {
            payload: Vec::new(),
            hot: crate::fast::Context::current(),
        }
    }
}

impl ChunkBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one record to the payload. Inlined across crates: given a record built on the
    /// spot, the hot kinds compile to their encoder alone (no match, no drop glue).
    #[inline(always)]
    pub fn push(&mut self, r: &Record) {
        if !crate::fast::encode(r, &mut self.payload, &mut self.hot) {
            self.push_other(r);
        }
    }

    /// Appends an Alloc record (as `push(&Record::Alloc { .. })`, without the temporary).
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
        crate::fast::encode_alloc(
            &mut self.payload,
            &mut self.hot,
            t,
            tid,
            addr,
            size,
            stack,
            kind,
            inherited,
        );
    }

    /// Appends a Free record (as `push(&Record::Free { .. })`, without the temporary).
    #[inline(always)]
    pub fn free(&mut self, t: u64, tid: u32, addr: u64, size: u64) {
        crate::fast::encode_free(&mut self.payload, &mut self.hot, t, tid, addr, size);
    }

    /// Records other than the hot kinds (a few per flush), through postcard.
    #[inline(never)]
    fn push_other(&mut self, r: &Record) {
        let buf = std::mem::take(&mut self.payload);
        // A Record always serializes.
        self.payload = postcard::to_extend(r, buf).expect("a Record always serializes");
    }

    pub fn len(&self) -> usize {
        self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// Moves the framed chunk into `out` and empties the builder.
    pub fn finish_into(&mut self, out: &mut Vec<u8>) {
        if !self.payload.is_empty() {
            encode_chunk(&self.payload, out);
            self.payload.clear();
            self.hot = crate::fast::Context::current();
        }
    }
}
