//! `--since` and `--until` (times, for snapshot captures), shared by the commands that read a
//! capture.

use std::path::Path;

use crate::analysis::time_window::{parse_time, TimeWindow};
use crate::analysis::window::WindowArgs;
use crate::analysis::{self, Analysis};
use crate::error::{CliError, Result};

#[derive(clap::Args, Default)]
pub struct TimeArgs {
    /// Snapshot captures: count only the snapshots taken from this time on, from the capture's
    /// start (90, 1.5s, 500ms, 10m, 2h). Allocations are then those made inside the window.
    #[arg(long, value_parser = parse_time)]
    since: Option<u64>,
    /// Snapshot captures: count only the snapshots taken up to this time from the capture's start.
    #[arg(long, value_parser = parse_time)]
    until: Option<u64>,
}

impl TimeArgs {
    pub fn window(&self) -> Result<TimeWindow> {
        if let (Some(s), Some(u)) = (self.since, self.until) {
            if s > u {
                return Err(CliError::new("--since is after --until"));
            }
        }
        Ok(TimeWindow {
            since: self.since,
            until: self.until,
        })
    }

    /// Loads `path` with this window.
    pub fn analyze(&self, path: &Path) -> Result<Analysis> {
        analysis::analyze_windows(path, &WindowArgs::default(), self.window()?)?
            .map_err(CliError::new)
    }
}
