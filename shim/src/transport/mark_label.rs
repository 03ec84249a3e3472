//! A user mark's label as it travels in an event's words: at most [`MARK_LABEL_MAX`] bytes,
//! copied in at the call (no allocation), taken out by the writer.

use memshim_format::MARK_LABEL_MAX;

/// Words of an event that carry a label.
pub const LABEL_WORDS: usize = MARK_LABEL_MAX.div_ceil(8);

/// The first [`MARK_LABEL_MAX`] bytes of `label` (up to its first NUL) packed into words, and
/// how many bytes.
pub fn pack(label: &[u8]) -> ([u64; LABEL_WORDS], usize) {
    let len = label
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(label.len())
        .min(MARK_LABEL_MAX);
    let mut words = [0u64; LABEL_WORDS];
    for (i, chunk) in label[..len].chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        words[i] = u64::from_ne_bytes(w);
    }
    (words, len)
}

/// The label a mark event carries, for the writer: `len` bytes of `words`, cut back to the last
/// whole UTF-8 character (a label cut at [`MARK_LABEL_MAX`] may end inside one); other invalid
/// bytes become U+FFFD.
pub fn unpack(words: &[u64], len: usize) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let bytes = &bytes[..len.min(bytes.len())];
    let end = match core::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => bytes.len(),
    };
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[u8]) -> Vec<u64> {
        s.chunks(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                u64::from_ne_bytes(w)
            })
            .collect()
    }

    #[test]
    fn a_label_cut_inside_a_character_keeps_the_whole_ones() {
        let s = "ab\u{e9}".as_bytes(); // 'é' is two bytes
        assert_eq!(unpack(&words(s), 3), "ab");
        assert_eq!(unpack(&words(s), 4), "ab\u{e9}");
    }
}
