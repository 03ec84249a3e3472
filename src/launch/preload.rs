//! Finding libmemshim.so and building the child's LD_PRELOAD.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{CliError, Result};

pub const LIB: &str = "libmemshim.so";

/// Where libmemshim.so is: `MEMSHIM_LIB` if set, else next to the memshim executable (a cargo
/// build: target/release/), else `../lib/memshim/libmemshim.so` relative to it (an install: bin/
/// and lib/memshim/), else in the `memshim` Python package installed beside it (`pip install
/// memshim`: the executable in `PREFIX/bin`, the library in
/// `PREFIX/lib/python3.X/site-packages/memshim/`, in a virtualenv, `--user` or system install).
pub fn find() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MEMSHIM_LIB").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return match p.is_file() {
            true => Ok(p),
            false => Err(CliError::new(format!(
                "MEMSHIM_LIB={}: no such file",
                p.display()
            ))),
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(format!("cannot locate the memshim executable: {e}")))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let candidates = candidates(dir);
    for c in candidates.iter().chain(&in_python_package(dir)) {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    Err(CliError::new(format!(
        "{LIB} not found: looked at {} and {} (build it with `cargo build --release --workspace`, install it at the second path, or `pip install memshim`)",
        candidates[0].display(),
        candidates[1].display()
    )))
}

fn candidates(dir: &Path) -> [PathBuf; 2] {
    let installed = dir.join("../lib/memshim").join(LIB);
    let installed = match (dir.parent(), dir.file_name()) {
        // Show `/usr/local/lib/memshim/...` rather than `/usr/local/bin/../lib/...`.
        (Some(up), Some(_)) => up.join("lib/memshim").join(LIB),
        _ => installed,
    };
    [dir.join(LIB), installed]
}

/// The library's place in a `memshim` Python package installed under the prefix of `bin_dir`:
/// `PREFIX/lib/python3*/{site,dist}-packages/memshim/libmemshim.so` (every Python version's
/// wheel carries the same library).
fn in_python_package(bin_dir: &Path) -> Vec<PathBuf> {
    let Some(prefix) = bin_dir.parent() else {
        return vec![];
    };
    let Ok(entries) = std::fs::read_dir(prefix.join("lib")) else {
        return vec![];
    };
    let mut pythons: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    pythons.sort();
    pythons
        .iter()
        .flat_map(|p| {
            ["site-packages", "dist-packages"].map(|d| p.join(d).join("memshim").join(LIB))
        })
        .collect()
}

/// LD_PRELOAD for the child: the shim first, then whatever was already preloaded.
pub fn ld_preload(lib: &Path, existing: Option<OsString>) -> OsString {
    let mut v = OsString::from(lib);
    if let Some(old) = existing.filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_goes_first_in_ld_preload() {
        let lib = Path::new("/x/libmemshim.so");
        assert_eq!(ld_preload(lib, None), "/x/libmemshim.so");
        assert_eq!(ld_preload(lib, Some("".into())), "/x/libmemshim.so");
        assert_eq!(
            ld_preload(lib, Some("/y/libjemalloc.so".into())),
            "/x/libmemshim.so:/y/libjemalloc.so"
        );
    }

    #[test]
    fn a_pip_install_has_the_library_in_its_python_package() {
        let prefix = std::env::temp_dir().join(format!("memshim-prefix-{}", std::process::id()));
        let pkg = prefix.join("lib/python3.11/site-packages/memshim");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::create_dir_all(prefix.join("bin")).unwrap();
        assert_eq!(
            in_python_package(&prefix.join("bin"))[0],
            pkg.join(LIB),
            "the virtualenv layout"
        );
        std::fs::remove_dir_all(&prefix).unwrap();
    }

    #[test]
    fn installed_layout_is_lib_memshim_beside_bin() {
        let [a, b] = candidates(Path::new("/usr/local/bin"));
        assert_eq!(a, Path::new("/usr/local/bin/libmemshim.so"));
        assert_eq!(b, Path::new("/usr/local/lib/memshim/libmemshim.so"));
    }
}
