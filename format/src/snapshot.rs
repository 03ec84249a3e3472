//! Snapshot captures (`MEMSHIM_MODE=snapshots`): instead of one record per sampled event, the
//! shim keeps per-stack aggregates and appends a [`Snapshot`] of them every interval, at each new
//! heap high, on request and on every exit path. A snapshot travels as a
//! [`Record::Extension`](crate::Record::Extension) of kind [`EXTENSION_SNAPSHOT`] whose data is
//! its postcard encoding ([`Snapshot::to_record`], [`Snapshot::from_record`]), so readers that
//! predate snapshots skip it. The stacks it names are [`Record::Stack`](crate::Record::Stack)
//! records written before it, as in an event capture.
//!
//! All counts and bytes are estimates weighed as the reports weigh samples (a sample of size `s`
//! at rate `R` counts `1 / (1 - exp(-s/R))` allocations and `s` times that in bytes; in `all`
//! mode each weighs 1), rounded to integers.
//!
//! A capture's header says it is a snapshot capture ([`Header::extra`](crate::Header) has
//! [`EXTRA_CAPTURE`] = `snapshots`), which series of files it belongs to ([`EXTRA_SERIES`]) and
//! its place in it ([`EXTRA_PART`], from 1). A series rolls over to its next file when
//! `MEMSHIM_MAX_SIZE` is reached; each file's first snapshot is complete, so every file stands
//! alone.

use serde::{Deserialize, Serialize};

use crate::Record;

/// [`Record::Extension`] kind of a snapshot.
pub const EXTENSION_SNAPSHOT: u32 = 2;

/// `Header.extra` name: the capture's kind, `events` (the default, also when absent) or
/// `snapshots`.
pub const EXTRA_CAPTURE: &str = "capture";
/// `Header.extra` name: the series' id (the same in each file of a rolled-over series).
pub const EXTRA_SERIES: &str = "series";
/// `Header.extra` name: this file's place in its series, from 1.
pub const EXTRA_PART: &str = "part";
/// `Header.extra` name: the snapshot interval in nanoseconds.
pub const EXTRA_INTERVAL_NS: &str = "interval_ns";

/// Why a snapshot was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// The interval passed.
    Interval,
    /// The heap reached a new high 10% above the previous snapshot's high.
    NewHigh,
    /// `memshim ctl PID snapshot` (or `memshim.snapshot()`).
    Request,
    /// Python began finalizing: what is live now is what the program left (leaks), before
    /// finalization frees what module globals hold.
    Finalizing,
    /// The process is ending (exit, `_exit`, exec).
    End,
    /// The first snapshot of a file after a rollover, or after recording was started again.
    Start,
    /// Recording was stopped (`memshim ctl PID stop`).
    Stop,
}

/// What one stack accounts for, at the moment of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCounters {
    /// The stack's id (a `Record::Stack` earlier in this file).
    pub stack: u64,
    /// Live now.
    pub live_bytes: u64,
    pub live_count: u64,
    /// Allocated since recording began (cumulative: never decreases within a series).
    pub alloc_bytes: u64,
    pub alloc_count: u64,
    /// Live at the moment of the highest heap since the previous snapshot.
    pub high_bytes: u64,
    pub high_count: u64,
}

/// One snapshot of the aggregates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Nanoseconds since the capture's start (`Header::start_mono_ns`).
    pub t: u64,
    /// The snapshot's number in its series, from 0.
    pub seq: u64,
    pub cause: Cause,
    /// Every stack with live bytes is listed (the first snapshot of a file always is). Otherwise
    /// only stacks with live bytes or allocations since the previous snapshot are: a stack not
    /// listed has nothing live and allocated nothing new.
    pub complete: bool,
    /// The estimated live heap now, and its highest since the previous snapshot (and when).
    pub live_bytes: u64,
    pub high_bytes: u64,
    pub high_t: u64,
    /// When the counted allocations begin: 0 when recording ran from the start; after a start
    /// that followed a stop (`memshim ctl PID start`), the restart's time: allocations from
    /// before it are not counted.
    pub counted_from: u64,
    pub sites: Vec<SiteCounters>,
}

impl Snapshot {
    /// The record that carries this snapshot.
    pub fn to_record(&self) -> Record {
        Record::Extension {
            kind: EXTENSION_SNAPSHOT,
            data: postcard::to_allocvec(self).unwrap_or_default(),
        }
    }

    /// The snapshot a record carries: `None` for any other record, `Some(Err)` for a snapshot
    /// that does not decode.
    pub fn from_record(r: &Record) -> Option<Result<Snapshot, postcard::Error>> {
        match r {
            Record::Extension { kind, data } if *kind == EXTENSION_SNAPSHOT => {
                Some(postcard::from_bytes(data))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_survives_its_record() {
        let s = Snapshot {
            t: 5_000_000_000,
            seq: 7,
            cause: Cause::NewHigh,
            complete: false,
            live_bytes: 64 << 20,
            high_bytes: 70 << 20,
            high_t: 4_900_000_000,
            counted_from: 0,
            sites: vec![SiteCounters {
                stack: 3,
                live_bytes: 1 << 20,
                live_count: 2,
                alloc_bytes: 9 << 20,
                alloc_count: 18,
                high_bytes: 2 << 20,
                high_count: 4,
            }],
        };
        let r = s.to_record();
        assert_eq!(Snapshot::from_record(&r).unwrap().unwrap(), s);
        assert!(Snapshot::from_record(&Record::Thread {
            tid: 1,
            name: "x".into()
        })
        .is_none());
    }
}
