//! The history that primes each compressed block of a version 6 `all`-mode capture (header flag
//! [`crate::FLAG_PRIMED`]).
//!
//! Each block is compressed with the chunk bytes before it as zstd's raw-content dictionary:
//! the longest run of whole chunks that ends where the block starts and takes at most
//! [`PRIME_MAX`] bytes (none when the last chunk alone is larger). Writer and reader keep the
//! same history by the same rule. Why: a loop's records repeat with a period of a few hundred
//! KB, and an independent block spent its first period learning the loop again; primed, it
//! starts with matches. A history that starts with a chunk's length (below 2^24, so its fourth
//! byte is 0) can never be read as a zstd dictionary's magic number (0xEC30A437).
//!
//! The history and the block being written or read sit in one buffer, the block right after
//! the history: zstd then sees one contiguous window, with none of the slower matching across
//! separate buffers that a ring buffer's wrap costs (see [`crate::stream`]).

use std::collections::VecDeque;

/// Most bytes of history a block is primed with: zstd level 6's window (2 MiB), which is as
/// far back as its matches reach.
pub const PRIME_MAX: usize = 2 << 20;

#[derive(Debug, Default)]
pub(crate) struct History {
    /// The history, then the block staged after it.
    buf: Vec<u8>,
    /// Bytes of `buf` that are history.
    kept: usize,
    /// The framed length of each chunk in the history, oldest first.
    chunks: VecDeque<usize>,
}

impl History {
    /// Makes room for a block of `len` bytes after the history; returns the room.
    pub fn stage(&mut self, len: usize) -> &mut [u8] {
        self.buf.truncate(self.kept);
        self.buf.resize(self.kept + len, 0);
        &mut self.buf[self.kept..]
    }

    /// The history and the block staged after it.
    pub fn parts(&self) -> (&[u8], &[u8]) {
        self.buf.split_at(self.kept)
    }

    /// The history, and room for a block staged after it.
    pub fn parts_mut(&mut self) -> (&[u8], &mut [u8]) {
        let (h, b) = self.buf.split_at_mut(self.kept);
        (h, b)
    }

    /// Shortens the staged block to `len` bytes.
    pub fn staged_len(&mut self, len: usize) {
        self.buf.truncate(self.kept + len);
    }

    /// The staged block was written (or read): it joins the history, which keeps the whole
    /// chunks that fit in [`PRIME_MAX`].
    pub fn commit(&mut self) {
        let mut at = self.kept;
        while at < self.buf.len() {
            let len = match self.buf.get(at..at + 4) {
                Some(b) => u32::from_le_bytes(b.try_into().unwrap()) as usize,
                None => usize::MAX,
            };
            // A framing that does not parse (a damaged block, which its reader reports) counts
            // as one chunk to the end, on both sides alike.
            let framed = (crate::chunk::CHUNK_HEADER + len).min(self.buf.len() - at);
            self.chunks.push_back(framed);
            at += framed;
        }
        let mut total = self.buf.len();
        let mut drop = 0;
        while total > PRIME_MAX {
            let c = self
                .chunks
                .pop_front()
                .expect("chunks add up to the buffer");
            total -= c;
            drop += c;
        }
        self.buf.drain(..drop);
        self.kept = self.buf.len();
    }

    /// Bytes of history.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(len: usize, fill: u8) -> Vec<u8> {
        let mut out = Vec::new();
        crate::encode_chunk(&vec![fill; len], &mut out);
        out
    }

    fn commit(h: &mut History, bytes: &[u8]) {
        h.stage(bytes.len()).copy_from_slice(bytes);
        h.commit();
    }

    #[test]
    fn keeps_the_whole_chunks_that_fit() {
        let mut h = History::default();
        let (a, b, c) = (chunk(1 << 20, 1), chunk(900 << 10, 2), chunk(300 << 10, 3));
        commit(&mut h, &[a.clone(), b.clone()].concat());
        assert_eq!(h.len(), a.len() + b.len());
        commit(&mut h, &c);
        // a + b + c is past 2 MiB: a goes, whole.
        assert_eq!(h.parts().0, [b, c.clone()].concat());
        // A chunk larger than the history's bound leaves none.
        commit(&mut h, &chunk(3 << 20, 4));
        assert_eq!(h.len(), 0);
        commit(&mut h, &c);
        assert_eq!(h.parts().0, c);
    }

    #[test]
    fn a_staged_block_not_committed_leaves_the_history() {
        let mut h = History::default();
        let a = chunk(100, 1);
        commit(&mut h, &a);
        h.stage(50).fill(9);
        assert_eq!(h.parts(), (&a[..], &[9u8; 50][..]));
        h.stage(10);
        assert_eq!(h.parts().0, a);
        assert_eq!(h.parts().1.len(), 10);
    }

    #[test]
    fn damaged_framing_counts_as_one_chunk() {
        let mut h = History::default();
        commit(&mut h, &[0xff; 20]);
        assert_eq!(h.len(), 20);
        commit(&mut h, &chunk(PRIME_MAX, 1));
        assert_eq!(h.len(), 0);
    }
}
