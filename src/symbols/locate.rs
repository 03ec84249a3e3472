//! Where the symbols of a module come from, by its GNU build-id: the directories of
//! `--symbols DIR` (a `memshim bundle` output, a debuginfod cache, or a tree like
//! `/usr/lib/debug`), the module's own path (when the file there has the recorded build-id),
//! its separate debug file on this machine, and debuginfod servers (`DEBUGINFOD_URLS`).
//!
//! A `--symbols` directory is read in either layout, each file keyed by build-id (hex):
//! - `DIR/HEX/debuginfo` and `DIR/HEX/executable`: debuginfod's cache, and what
//!   `memshim bundle` writes;
//! - `DIR/.build-id/xx/rest.debug` and `DIR/.build-id/xx/rest`: gdb's and the distributions'
//!   debug trees (xx the first byte of the build-id, rest the others).

use super::{debuginfod, debuglink};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The `--symbols` directories, set once from the command line.
static SYMBOL_DIRS: OnceLock<Vec<PathBuf>> = OnceLock::new();

/// Sets the `--symbols` directories of this run (the first call wins).
pub fn configure(dirs: Vec<PathBuf>) {
    let _ = SYMBOL_DIRS.set(dirs);
}

/// Lower-case hex of a build-id.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// True when `path` is an ELF file whose build-id is `id`.
pub fn has_build_id(path: &Path, id: &[u8]) -> bool {
    path.is_file()
        && matches!(blazesym::helper::read_elf_build_id(path), Ok(Some(b)) if b.as_ref() == id)
}

/// Finds the file to read a module's symbols from.
pub struct Locator {
    dirs: Vec<PathBuf>,
    /// Made on first use: most runs find every module locally.
    debuginfod: Option<Option<debuginfod::Client>>,
}

impl Locator {
    /// With the `--symbols` directories of this run.
    pub fn configured() -> Self {
        Locator {
            dirs: SYMBOL_DIRS.get().cloned().unwrap_or_default(),
            debuginfod: None,
        }
    }

    /// The file with the symbols of the module recorded at `path` with `build_id`, searched in
    /// the order of the module docs. Without a recorded build-id only the path itself can be
    /// used (nothing to compare a file with).
    pub fn locate(&mut self, path: &str, build_id: &[u8]) -> Option<PathBuf> {
        let own = Path::new(path);
        if build_id.is_empty() {
            return (!path.is_empty() && own.is_file()).then(|| own.to_path_buf());
        }
        if let Some(f) = self.in_dirs(build_id) {
            return Some(f);
        }
        let own_ok = !path.is_empty() && has_build_id(own, build_id);
        if own_ok && debuglink::has_dwarf(own) {
            return Some(own.to_path_buf());
        }
        if let Some(f) = debuglink::find(own, build_id) {
            return Some(f);
        }
        // Gone, or stripped with its debug file elsewhere: a server may have the debug file.
        // A stripped file of our own still names functions (its dynamic symbols).
        if own_ok {
            return self
                .ask_debuginfod_for(build_id, "debuginfo")
                .or(Some(own.to_path_buf()));
        }
        self.ask_debuginfod(build_id)
    }

    /// A file of the `--symbols` directories with this build-id, debug files first.
    pub fn in_dirs(&self, build_id: &[u8]) -> Option<PathBuf> {
        let h = hex(build_id);
        self.dirs
            .iter()
            .flat_map(|d| {
                [
                    d.join(&h).join("debuginfo"),
                    debuglink::build_id_path(d, build_id, ".debug"),
                    d.join(&h).join("executable"),
                    debuglink::build_id_path(d, build_id, ""),
                ]
            })
            .find(|f| has_build_id(f, build_id))
    }

    /// From a debuginfod server (`DEBUGINFOD_URLS`): its debug file, else its executable.
    pub fn ask_debuginfod(&mut self, build_id: &[u8]) -> Option<PathBuf> {
        debuginfod::KINDS
            .iter()
            .find_map(|kind| self.ask_debuginfod_for(build_id, kind))
    }

    fn ask_debuginfod_for(&mut self, build_id: &[u8], kind: &str) -> Option<PathBuf> {
        self.debuginfod
            .get_or_insert_with(debuginfod::Client::from_env)
            .as_mut()?
            .fetch(build_id, kind)
    }
}
