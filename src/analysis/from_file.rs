//! An [`Analysis`] of a capture file: its records streamed ([`crate::capture::load`]) into one.

use std::path::Path;

use super::window::WindowArgs;
use crate::analysis::Analysis;
use crate::capture::load::{stream_any, Readable};
use crate::error::{CliError, Result};

/// Loads one capture into an [`Analysis`].
pub fn analyze(path: &Path) -> Result<Analysis> {
    analyze_any(path)?.map_err(CliError::new)
}

/// Loads one capture, or gives the one line saying it has nothing readable (for a caller that
/// reads several and goes on without it).
pub fn analyze_any(path: &Path) -> Result<std::result::Result<Analysis, String>> {
    analyze_window(path, &WindowArgs::default())
}

/// [`analyze_any`] of what happened between two marks (see [`super::window`]); a mark the
/// window names that the capture lacks is an error.
pub fn analyze_window(
    path: &Path,
    window: &WindowArgs,
) -> Result<std::result::Result<Analysis, String>> {
    let mut filter = super::window::Filter::new(window);
    match stream_any(
        path,
        |h| Analysis::new(h.clone()),
        |a, r| {
            if filter.pass(&r) {
                a.apply(r)
            }
        },
    )? {
        Readable::Some(mut a, ending) => {
            filter.check(path)?;
            a.finish(ending.truncated());
            Ok(Ok(a))
        }
        Readable::Nothing(why) => Ok(Err(why)),
    }
}
