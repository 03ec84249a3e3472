//! What was live at a moment of a capture, per site: the API `diff` (and anything else that
//! compares moments) is written against.
//!
//! An event capture is streamed once; the live bytes and count of every site are copied when
//! the stream first passes each asked-for moment (before the first record stamped later), and
//! at the end. A snapshot capture (`MEMSHIM_MODE=snapshots`, its rolled-over files read with
//! it) answers from the newest snapshot at or before each moment: a snapshot record is stamped
//! with its time, and the live set it leaves is the one taken.

use std::path::Path;

use memshim_format::Record;

use crate::analysis::Analysis;
use crate::capture::{load, series};
use crate::error::{CliError, Result};
use crate::units;

/// A moment of a capture: its end, or a time since its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    End,
    /// Nanoseconds from the capture's start.
    At(u64),
}

impl std::str::FromStr for Moment {
    type Err = String;
    /// `end`, or a time from the start: `1.5`, `1.5s`, `500ms`, `2m`, `1h`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "end" {
            return Ok(Moment::End);
        }
        let bad = || {
            format!("`{s}`: a time from the capture's start (1.5, 1.5s, 500ms, 2m, 1h) or `end`")
        };
        let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
            (n, 1e6)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, 1e9)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, 60e9)
        } else if let Some(n) = s.strip_suffix('h') {
            (n, 3600e9)
        } else {
            (s, 1e9)
        };
        let v: f64 = num.trim().parse().map_err(|_| bad())?;
        if !v.is_finite() || v < 0.0 {
            return Err(bad());
        }
        Ok(Moment::At((v * scale).round() as u64))
    }
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Moment::End => f.write_str("end"),
            Moment::At(t) => write!(f, "{:.2} s", units::secs(*t)),
        }
    }
}

/// The live set of one capture at one moment.
#[derive(Debug, Clone)]
pub struct LiveSet {
    pub moment: Moment,
    /// When it was taken, ns from the start (the end's time for [`Moment::End`]).
    pub t: u64,
    /// Estimated (bytes, count) live per site index of the capture's [`Analysis`].
    pub sites: Vec<(f64, f64)>,
    pub total: f64,
}

/// The time a record is stamped with, if it has one.
fn record_t(r: &Record) -> Option<u64> {
    match r {
        Record::Alloc { t, .. }
        | Record::Free { t, .. }
        | Record::Munmap { t, .. }
        | Record::Tick { t, .. }
        | Record::Marker { t, .. }
        | Record::End { t, .. } => Some(*t),
        // A snapshot: the moment its live set is of.
        Record::Extension { .. } => memshim_format::snapshot::Snapshot::from_record(r)
            .and_then(|s| s.ok())
            .map(|s| s.t),
        _ => None,
    }
}

fn take(a: &Analysis, moment: Moment, t: u64) -> LiveSet {
    LiveSet {
        moment,
        t,
        sites: a
            .sites
            .iter()
            .map(|s| (s.live_bytes, s.live_count))
            .collect(),
        total: a.live_total.max(0.0),
    }
}

/// Loads the capture at `path` and its live set at each of `moments` (in their order). A time
/// after the capture's end is an error naming both.
pub fn live_sets(path: &Path, moments: &[Moment]) -> Result<(Analysis, Vec<LiveSet>)> {
    struct State {
        a: Analysis,
        /// Moments not reached yet, as (index into `moments`, time).
        pending: Vec<(usize, u64)>,
        taken: Vec<Option<LiveSet>>,
    }
    let mut pending: Vec<(usize, u64)> = moments
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match m {
            Moment::At(t) => Some((i, *t)),
            Moment::End => None,
        })
        .collect();
    pending.sort_by_key(|&(_, t)| std::cmp::Reverse(t));
    let read = series::stream_series(
        path,
        |h| State {
            a: Analysis::new(h.clone()),
            pending,
            taken: vec![None; moments.len()],
        },
        |s, h| s.a.next_file(h),
        |s, r| {
            if let Some(t) = record_t(&r) {
                let t = s.a.snap.as_ref().map_or(t, |run| run.t(t));
                while let Some(&(i, at)) = s.pending.last() {
                    if at >= t {
                        break;
                    }
                    s.taken[i] = Some(take(&s.a, moments[i], at));
                    s.pending.pop();
                }
            }
            s.a.apply(r);
        },
    )?;
    let (mut s, ending) = match read {
        load::Readable::Some(s, e) => (s, e),
        load::Readable::Nothing(why) => return Err(CliError::new(why)),
    };
    s.a.finish_after(&ending);
    let end = s.a.last_t;
    if let Some(&(_, at)) = s.pending.iter().find(|&&(_, at)| at > end) {
        return Err(CliError::new(format!(
            "{}: --at {:.2} s is after the capture's end ({:.2} s)",
            path.display(),
            units::secs(at),
            units::secs(end)
        )));
    }
    let sets = moments
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            s.taken[i].take().unwrap_or_else(|| {
                let t = match m {
                    Moment::At(t) => t,
                    Moment::End => end,
                };
                take(&s.a, m, t)
            })
        })
        .collect();
    Ok((s.a, sets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_parse_as_times_from_the_start_or_the_end() {
        assert_eq!("end".parse::<Moment>(), Ok(Moment::End));
        assert_eq!("1.5".parse::<Moment>(), Ok(Moment::At(1_500_000_000)));
        assert_eq!("1.5s".parse::<Moment>(), Ok(Moment::At(1_500_000_000)));
        assert_eq!("250ms".parse::<Moment>(), Ok(Moment::At(250_000_000)));
        assert_eq!("2m".parse::<Moment>(), Ok(Moment::At(120_000_000_000)));
        assert!("soon".parse::<Moment>().is_err());
        assert!("-1".parse::<Moment>().is_err());
    }
}
