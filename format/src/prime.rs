//! The history that primes each compressed block of a version 6 `all`-mode capture (header flag
//! [`crate::FLAG_PRIMED`]).
//!
//! Each block is compressed with the last bytes of chunks before it as zstd's raw-content
//! dictionary: as many as the block holds, at most [`PRIME_MAX`] (all there are, if fewer),
//! one fewer when those would start with a zstd dictionary's magic number (which would make
//! zstd parse them as a dictionary). Writer and reader keep the same history by the same rule
//! (a reader knows a block's size from its frame header). zstd indexes the whole dictionary
//! before each block: no larger than the block, it at most doubles that work for the small
//! blocks of a program that allocates slowly, whose 80 ms flushes hold little.
//!
//! Why: a loop's records repeat with a period of tens of KB, and an independent block spent
//! its first period learning the loop again; primed, it starts with matches. Why this little:
//! zstd indexes the whole dictionary before each block, and 2 MiB of it took the writer more
//! time than compressing the 8 MiB block (level 6's row matcher, `perf`), where 128 KiB gave
//! the same captures within 1% (two-thread loop) and 0.6% (one thread).

/// Bytes of history a block is primed with.
pub const PRIME_MAX: usize = 128 << 10;

/// A zstd dictionary's first four bytes, little endian (ZSTD_MAGIC_DICTIONARY).
const DICT_MAGIC: [u8; 4] = 0xEC30_A437u32.to_le_bytes();

#[derive(Debug, Default)]
pub(crate) struct History {
    bytes: Vec<u8>,
}

impl History {
    /// What the next block, of `len` bytes of chunks, is primed with.
    pub fn dict(&self, len: usize) -> &[u8] {
        let d = &self.bytes[self.bytes.len().saturating_sub(len)..];
        match d.starts_with(&DICT_MAGIC) {
            true => &d[1..],
            false => d,
        }
    }

    /// `block` was written, or read: its end joins the history.
    pub fn push(&mut self, block: &[u8]) {
        if block.len() >= PRIME_MAX {
            self.bytes.clear();
            self.bytes
                .extend_from_slice(&block[block.len() - PRIME_MAX..]);
            return;
        }
        let over = (self.bytes.len() + block.len()).saturating_sub(PRIME_MAX);
        self.bytes.drain(..over);
        self.bytes.extend_from_slice(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes() {
        let mut h = History::default();
        h.push(&[1; 1000]);
        h.push(&[2; 500]);
        assert_eq!(
            h.dict(usize::MAX),
            [[1u8; 1000].as_slice(), &[2; 500]].concat()
        );
        h.push(&vec![3; PRIME_MAX - 100]);
        assert_eq!(h.dict(usize::MAX).len(), PRIME_MAX);
        assert_eq!(&h.dict(usize::MAX)[..100], &[2; 100]);
        h.push(&vec![4; PRIME_MAX + 7]);
        assert_eq!(h.dict(usize::MAX), vec![4; PRIME_MAX]);
        // No more than the block to prime holds.
        h.push(&[5; 10]);
        assert_eq!(h.dict(30), [[4u8; 20].as_slice(), &[5; 10]].concat());
    }

    #[test]
    fn never_starts_with_a_dictionary_magic() {
        let mut h = History::default();
        let mut block = vec![0u8; PRIME_MAX + 10];
        block[10..14].copy_from_slice(&DICT_MAGIC);
        h.push(&block);
        assert_eq!(h.dict(usize::MAX).len(), PRIME_MAX - 1);
        assert!(!h.dict(usize::MAX).starts_with(&DICT_MAGIC));
    }
}
