//! The history that primes each compressed block of a version 6 `all`-mode capture (header flag
//! [`crate::FLAG_PRIMED`]).
//!
//! Each block is compressed with the last [`PRIME_MAX`] bytes of chunks before it (all there
//! are, if fewer) as zstd's raw-content dictionary, one byte fewer when those would start with
//! a zstd dictionary's magic number (which would make zstd parse them as a dictionary). Writer
//! and reader keep the same history by the same rule.
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
    /// What the next block is primed with.
    pub fn dict(&self) -> &[u8] {
        match self.bytes.starts_with(&DICT_MAGIC) {
            true => &self.bytes[1..],
            false => &self.bytes,
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
        assert_eq!(h.dict(), [[1u8; 1000].as_slice(), &[2; 500]].concat());
        h.push(&vec![3; PRIME_MAX - 100]);
        assert_eq!(h.dict().len(), PRIME_MAX);
        assert_eq!(&h.dict()[..100], &[2; 100]);
        h.push(&vec![4; PRIME_MAX + 7]);
        assert_eq!(h.dict(), vec![4; PRIME_MAX]);
    }

    #[test]
    fn never_starts_with_a_dictionary_magic() {
        let mut h = History::default();
        let mut block = vec![0u8; PRIME_MAX + 10];
        block[10..14].copy_from_slice(&DICT_MAGIC);
        h.push(&block);
        assert_eq!(h.dict().len(), PRIME_MAX - 1);
        assert!(!h.dict().starts_with(&DICT_MAGIC));
    }
}
