//! An [`Analysis`] of a capture file: its records streamed ([`crate::capture::load`]) into one,
//! with the later files of a rolled-over snapshot series ([`crate::capture::series`]).

use std::path::Path;

use super::time_window::TimeWindow;
use super::window::WindowArgs;
use crate::analysis::Analysis;
use crate::capture::load::Readable;
use crate::capture::series::stream_series;
use crate::error::{CliError, Result};

/// Loads one capture into an [`Analysis`].
pub fn analyze(path: &Path) -> Result<Analysis> {
    analyze_any(path)?.map_err(CliError::new)
}

/// Loads one capture, or gives the one line saying it has nothing readable (for a caller that
/// reads several and goes on without it).
pub fn analyze_any(path: &Path) -> Result<std::result::Result<Analysis, String>> {
    analyze_windows(path, &WindowArgs::default(), TimeWindow::default())
}

/// [`analyze_any`] of what happened between two marks (see [`super::window`]); a mark the
/// window names that the capture lacks is an error.
pub fn analyze_window(
    path: &Path,
    window: &WindowArgs,
) -> Result<std::result::Result<Analysis, String>> {
    analyze_windows(path, window, TimeWindow::default())
}

/// [`analyze_window`], counting only the snapshots inside `times` (`--since`, `--until`: an
/// error for an event capture, which has no snapshots to choose from).
pub fn analyze_windows(
    path: &Path,
    window: &WindowArgs,
    times: TimeWindow,
) -> Result<std::result::Result<Analysis, String>> {
    let mut filter = super::window::Filter::new(window);
    let mut not_snapshots = false;
    let read = stream_series(
        path,
        |h| {
            let mut a = Analysis::new(h.clone());
            not_snapshots = a.snap.is_none() && !times.is_open();
            a.times = times;
            a
        },
        |a, h| a.next_file(h),
        |a, r| {
            if (a.snap.is_some() || times.is_open()) && filter.pass(&r) {
                a.apply(r)
            }
        },
    )?;
    if not_snapshots {
        return Err(CliError::new(format!(
            "{}: --since and --until need a snapshot capture (MEMSHIM_MODE=snapshots); this is an event capture",
            path.display()
        )));
    }
    match read {
        Readable::Some(mut a, ending) => {
            filter.check(path)?;
            a.finish_after(&ending);
            Ok(Ok(a))
        }
        Readable::Nothing(why) => Ok(Err(why)),
    }
}
