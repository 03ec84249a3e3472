//! User marks (`memshim_mark`, Python's `memshim.mark`): a label, the calling thread and the
//! moment, sent through the event ring like a sample.
//!
//! Through the ring, not a mailbox of their own: the writer then writes the marker in order
//! with the samples around it (every event this thread pushed before the call is read before
//! it, every one after, after), so a report window between two marks is exact whatever the
//! clocks' resolution. The label is copied into the event's words at the call (at most
//! [`MARK_LABEL_MAX`] bytes, no allocation); a full ring drops the mark and counts it with the
//! ring's other drops, as it does a sample.

use memshim_format::MARK_LABEL_MAX;

use crate::ring::{Event, EventKind};
use crate::{real, recorder, thread};

/// Words of the event that carry the label.
const LABEL_WORDS: usize = MARK_LABEL_MAX.div_ceil(8);

/// Sends a mark labelled with the first [`MARK_LABEL_MAX`] bytes of `label` (up to its first
/// NUL); false when it was not recorded (no capture running, or the ring was full).
pub fn send(label: &[u8]) -> bool {
    let t = thread::current();
    // Inside the shim: whatever starting the writer allocates (a first mark opens the capture)
    // is forwarded untouched.
    let Some(_busy) = thread::Busy::enter(t) else {
        return false;
    };
    let tid = thread::tid(t);
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
    let ev = Event {
        kind: EventKind::Mark as u8,
        alloc_kind: 0,
        nframes: 0,
        tid,
        t: real::now_ns(),
        addr: 0,
        size: len as u64,
    };
    recorder::push(ev, &words[..len.div_ceil(8)])
}

/// The label a mark event carries, for the writer: `len` bytes of `words`, cut back to the last
/// whole UTF-8 character (a label cut at [`MARK_LABEL_MAX`] may end inside one); other invalid
/// bytes become U+FFFD.
pub fn label(words: &[u64], len: usize) -> String {
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
        assert_eq!(label(&words(s), 3), "ab");
        assert_eq!(label(&words(s), 4), "ab\u{e9}");
    }
}
