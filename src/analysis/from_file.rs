//! An [`Analysis`] of a capture file: its records streamed ([`crate::capture::load`]) into one,
//! with the later files of a rolled-over snapshot series ([`crate::capture::series`]).

use std::path::Path;

use crate::analysis::window::Window;
use crate::analysis::Analysis;
use crate::capture::load::Readable;
use crate::capture::series::stream_series;
use crate::error::{CliError, Result};

/// Loads one capture into an [`Analysis`].
pub fn analyze(path: &Path) -> Result<Analysis> {
    analyze_window(path, Window::default())?.map_err(CliError::new)
}

/// Loads one capture, or gives the one line saying it has nothing readable (for a caller that
/// reads several and goes on without it).
pub fn analyze_any(path: &Path) -> Result<std::result::Result<Analysis, String>> {
    analyze_window(path, Window::default())
}

/// [`analyze_any`], counting only the snapshots inside `window` (an error for an event
/// capture, which has no snapshots to choose from).
pub fn analyze_window(
    path: &Path,
    window: Window,
) -> Result<std::result::Result<Analysis, String>> {
    let mut not_snapshots = false;
    let read = stream_series(
        path,
        |h| {
            let mut a = Analysis::new(h.clone());
            not_snapshots = a.snap.is_none() && !window.is_open();
            a.window = window;
            a
        },
        |a, h| a.next_file(h),
        |a, r| {
            if a.snap.is_some() || window.is_open() {
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
            a.finish_after(&ending);
            Ok(Ok(a))
        }
        Readable::Nothing(why) => Ok(Err(why)),
    }
}
