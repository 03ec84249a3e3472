//! `--since` and `--until`: the time window of a snapshot capture whose snapshots count (`--since-mark`/`--until-mark` are marks: [`super::window`]).

use crate::analysis::live_at::Moment;

/// Times from the capture's start, in ns; `None` is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub since: Option<u64>,
    pub until: Option<u64>,
}

impl TimeWindow {
    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// Before the window's start.
    pub fn before(&self, t: u64) -> bool {
        self.since.is_some_and(|s| t < s)
    }

    /// After the window's end.
    pub fn after(&self, t: u64) -> bool {
        self.until.is_some_and(|u| t > u)
    }
}

/// A time from the capture's start: `90` (seconds), `1.5s`, `500ms`, `10m`, `2h`.
pub fn parse_time(s: &str) -> std::result::Result<u64, String> {
    match s.parse::<Moment>() {
        Ok(Moment::At(t)) => Ok(t),
        _ => Err(format!(
            "`{s}`: a time from the capture's start (90, 1.5s, 500ms, 10m, 2h)"
        )),
    }
}
