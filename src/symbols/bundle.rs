//! `memshim bundle`: copies what symbolization of some captures needs into one directory, keyed
//! by build-id, so the captures read elsewhere (a laptop, after the pod is gone) with
//! `--symbols DIR`. The layout is debuginfod's cache: `DIR/HEX/executable` (the module as it
//! was loaded) and `DIR/HEX/debuginfo` (its separate debug file, when it has one), plus
//! `DIR/modules.txt` (one `HEX PATH` line per module) for people.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memshim_format::Module;

use super::{debuglink, has_build_id, hex, Locator};
use crate::error::{CliError, Result};

/// What a bundle holds, and what it could not.
#[derive(Debug, Default)]
pub struct Outcome {
    pub modules: usize,
    pub executables: usize,
    pub debug_files: usize,
    /// Bytes copied in this run (files already there with the right build-id are not).
    pub bytes: u64,
    /// (module path, why) of each module left out.
    pub missing: Vec<(String, String)>,
}

/// Copies the symbols of `modules` into `out`.
pub fn bundle(modules: &[Module], out: &Path, loc: &mut Locator) -> Result<Outcome> {
    std::fs::create_dir_all(out).map_err(|e| CliError::about(out, e))?;
    let mut o = Outcome::default();
    // One entry per build-id (a module loaded at two addresses, or by two processes, is one).
    let mut by_id: BTreeMap<Vec<u8>, &Module> = BTreeMap::new();
    for m in modules {
        if !m.path.starts_with('/') {
            continue; // the vdso (`linux-vdso.so.1`) and anonymous code: no file to copy
        }
        if m.build_id.is_empty() {
            o.missing
                .push((m.path.clone(), "no build-id recorded".into()));
            continue;
        }
        by_id.entry(m.build_id.clone()).or_insert(m);
    }
    let mut index = read_index(out);
    for (id, m) in by_id {
        let h = hex(&id);
        let own = Path::new(&m.path);
        let mut exe = has_build_id(own, &id).then(|| own.to_path_buf());
        let mut debug = debuglink::find(own, &id);
        if exe.is_none() && debug.is_none() {
            // Not on this machine any more: what --symbols or debuginfod have.
            if let Some(f) = loc.locate(&m.path, &id) {
                if is_debug_file(&f) {
                    debug = Some(f);
                } else {
                    exe = Some(f);
                }
            }
        }
        if exe.is_none() && debug.is_none() {
            o.missing.push((
                m.path.clone(),
                "file gone or rebuilt, and no debug file with its build-id".into(),
            ));
            continue;
        }
        o.modules += 1;
        if let Some(f) = exe {
            o.bytes += copy(&f, &out.join(&h).join("executable"), &id)?;
            o.executables += 1;
        }
        if let Some(f) = debug {
            o.bytes += copy(&f, &out.join(&h).join("debuginfo"), &id)?;
            o.debug_files += 1;
        }
        index.insert(h, m.path.clone());
    }
    let text: String = index.iter().map(|(h, p)| format!("{h} {p}\n")).collect();
    let path = out.join("modules.txt");
    std::fs::write(&path, text).map_err(|e| CliError::about(&path, e))?;
    Ok(o)
}

/// A debug file found by the locator: debuginfod's `debuginfo` or a `.debug` of a build-id tree.
fn is_debug_file(f: &Path) -> bool {
    f.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "debuginfo" || n.ends_with(".debug"))
}

/// The modules.txt of an earlier bundle into the same directory (kept: bundles add up).
fn read_index(out: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(out.join("modules.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .collect()
}

/// Copies `from` to `to` unless `to` already has the build-id; returns the bytes copied.
fn copy(from: &Path, to: &Path, id: &[u8]) -> Result<u64> {
    if has_build_id(to, id) {
        return Ok(0);
    }
    let dir = to.parent().expect("a file under the bundle");
    std::fs::create_dir_all(dir).map_err(|e| CliError::about(dir, e))?;
    let tmp: PathBuf = dir.join(format!(".part.{}", std::process::id()));
    let n = std::fs::copy(from, &tmp).map_err(|e| CliError::about(from, e))?;
    std::fs::rename(&tmp, to).map_err(|e| CliError::about(to, e))?;
    Ok(n)
}
