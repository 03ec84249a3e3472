//! User marks (`memshim_mark`, Python's `memshim.mark`): a label, the calling thread and the
//! moment, sent through the event ring like a sample.
//!
//! Through the ring, not a mailbox of their own: the writer then writes the marker in order
//! with the samples around it (every event this thread pushed before the call is read before
//! it, every one after, after), so a report window between two marks is exact whatever the
//! clocks' resolution. A full ring drops the mark and counts it with the ring's other drops, as
//! it does a sample.

use crate::recorder;
use crate::sampling::thread::{self, Busy};
use crate::sys::real;
use crate::transport::event::{Event, EventKind};
use crate::transport::mark_label;

/// Sends a mark labelled with `label` (see `mark_label::pack`); false when it was not recorded
/// (no capture running, or the ring was full).
pub fn send(label: &[u8]) -> bool {
    let t = thread::current();
    // Inside the shim: whatever starting the writer allocates (a first mark opens the capture)
    // is forwarded untouched.
    let Some(_busy) = Busy::enter(t) else {
        return false;
    };
    let (words, len) = mark_label::pack(label);
    let ev = Event::new(EventKind::Mark, t.tid(), real::now_ns(), 0, len as u64);
    recorder::push(ev, &words[..len.div_ceil(8)])
}
