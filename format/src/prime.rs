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
//! The history is a buffer of its own, up to 2 MiB, apart from the block: zstd reads it where
//! it is (matching across the two costs no more than within one, measured on `all`-mode
//! captures), and the writer keeps no copy of the 8 MiB blocks it compresses.

use std::collections::VecDeque;

/// Most bytes of history a block is primed with: zstd level 6's window (2 MiB), which is as
/// far back as its matches reach.
pub const PRIME_MAX: usize = 2 << 20;

#[derive(Debug, Default)]
pub(crate) struct History {
    bytes: Vec<u8>,
    /// The framed length of each chunk in `bytes`, oldest first.
    chunks: VecDeque<usize>,
}

impl History {
    /// What the next block is primed with.
    pub fn dict(&self) -> &[u8] {
        &self.bytes
    }

    /// `block` (whole framed chunks) was written, or read: it joins the history, which keeps
    /// the whole chunks that fit in [`PRIME_MAX`].
    pub fn push(&mut self, block: &[u8]) {
        let mut at = 0;
        while at < block.len() {
            let len = match block.get(at..at + 4) {
                Some(b) => u32::from_le_bytes(b.try_into().unwrap()) as usize,
                None => usize::MAX,
            };
            // A framing that does not parse (a damaged block, which its reader reports) counts
            // as one chunk to the end, on both sides alike.
            let framed = (crate::chunk::CHUNK_HEADER + len).min(block.len() - at);
            self.chunks.push_back(framed);
            at += framed;
        }
        // Drop whole chunks from the oldest until the rest fits.
        let mut total = self.bytes.len() + block.len();
        let mut drop = 0;
        while total > PRIME_MAX {
            let c = self.chunks.pop_front().expect("chunks add up to the bytes");
            total -= c;
            drop += c;
        }
        if drop >= self.bytes.len() {
            let from = drop - self.bytes.len();
            self.bytes.clear();
            self.bytes.extend_from_slice(&block[from..]);
        } else {
            self.bytes.drain(..drop);
            self.bytes.extend_from_slice(block);
        }
    }

    /// Bytes of history.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.bytes.len()
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

    #[test]
    fn keeps_the_whole_chunks_that_fit() {
        let mut h = History::default();
        let (a, b, c) = (chunk(1 << 20, 1), chunk(900 << 10, 2), chunk(300 << 10, 3));
        h.push(&[a.clone(), b.clone()].concat());
        assert_eq!(h.len(), a.len() + b.len());
        h.push(&c);
        // a + b + c is past 2 MiB: a goes, whole.
        assert_eq!(h.dict(), [b, c.clone()].concat());
        // A chunk larger than the history's bound leaves none.
        h.push(&chunk(3 << 20, 4));
        assert_eq!(h.len(), 0);
        h.push(&c);
        assert_eq!(h.dict(), c);
        // A block past the bound keeps its own last chunks.
        let d = chunk(1500 << 10, 5);
        h.push(&[c.clone(), d.clone(), c.clone()].concat());
        assert_eq!(h.dict(), [d, c].concat());
    }

    #[test]
    fn damaged_framing_counts_as_one_chunk() {
        let mut h = History::default();
        h.push(&[0xff; 20]);
        assert_eq!(h.len(), 20);
        h.push(&chunk(PRIME_MAX, 1));
        assert_eq!(h.len(), 0);
    }
}
