//! An [`Analysis`] of a capture file: its records streamed ([`crate::capture::load`]) into one.

use std::path::Path;

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
    match stream_any(path, |h| Analysis::new(h.clone()), |a, r| a.apply(r))? {
        Readable::Some(mut a, ending) => {
            a.finish(ending.truncated());
            Ok(Ok(a))
        }
        Readable::Nothing(why) => Ok(Err(why)),
    }
}
