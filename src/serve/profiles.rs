//! The newest state of each capture as a pprof profile, rebuilt only when its file changed
//! (a capture being written grows at every flush: read up to its last complete chunk).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::export::pprof::{self, Profile};
use crate::present::view::View;
use crate::symbols::symbolize::Symbolizer;
use crate::units;

/// What the index page says of one capture, and its profile.
#[derive(Clone)]
pub struct Loaded {
    pub argv: String,
    pub duration_s: f64,
    /// `exit`, `signal 9`, or `truncated` for one still being written.
    pub end: String,
    pub in_use_bytes: f64,
    pub allocated_bytes: f64,
    pub profile: Profile,
}

/// A file's length and modification time: it changed when either did.
type Stamp = (u64, Option<SystemTime>);

#[derive(Default)]
pub struct Cache {
    /// By path: the file's stamp when it was read, and what was read.
    entries: HashMap<PathBuf, (Stamp, Result<Loaded, String>)>,
}

impl Cache {
    /// The capture at `path` now, or the one line saying why it cannot be read.
    pub fn get(&mut self, path: &Path, view: View) -> Result<Loaded, String> {
        let stamp = std::fs::metadata(path)
            .map(|m| (m.len(), m.modified().ok()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some((s, l)) = self.entries.get(path) {
            if *s == stamp {
                return l.clone();
            }
        }
        let loaded = load(path, view);
        self.entries
            .insert(path.to_path_buf(), (stamp, loaded.clone()));
        loaded
    }

    /// Forgets files that are gone.
    pub fn retain(&mut self, live: &[PathBuf]) {
        self.entries.retain(|p, _| live.contains(p));
    }
}

fn load(path: &Path, view: View) -> Result<Loaded, String> {
    let a = match crate::analysis::analyze_any(path) {
        Ok(Ok(a)) => a,
        Ok(Err(why)) => return Err(why),
        Err(e) => return Err(e.to_string()),
    };
    let profile = pprof::profile(&a, &mut Symbolizer::new(), view);
    // Sample values: alloc_objects, alloc_space, inuse_objects, inuse_space.
    let sum = |i: usize| -> f64 { profile.sample.iter().map(|s| s.value[i] as f64).sum() };
    Ok(Loaded {
        argv: a.header.argv.join(" "),
        duration_s: units::secs(a.last_t),
        end: a.end.clone(),
        in_use_bytes: sum(3),
        allocated_bytes: sum(1),
        profile,
    })
}
