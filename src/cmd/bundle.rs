//! `memshim bundle CAPTURE... -o DIR`.

use std::path::PathBuf;

use memshim_format::Record;

use crate::capture::{inputs, load};
use crate::cmd::output;
use crate::error::Result;
use crate::symbols::{bundle, Locator};
use crate::units;

/// Copy the captures' modules and debug files into DIR, by build-id, for `--symbols DIR`.
///
/// Each module of their module maps, and its separate debug file, so the captures read
/// elsewhere with `--symbols DIR`. Layout: debuginfod's cache, `DIR/HEX/executable` and `DIR/HEX/debuginfo`,
/// plus `DIR/modules.txt` naming each module.
#[derive(clap::Args)]
pub struct Args {
    /// Capture files, or a template such as `memshim.%p.msh`.
    #[arg(required = true)]
    captures: Vec<String>,
    /// The directory to fill (made if missing; files already there are kept).
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let mut modules = vec![];
    for p in inputs::expand(&args.captures)? {
        let (mut m, _) = load::stream(
            &p,
            |_| Vec::new(),
            |v, r| {
                if let Record::Modules(map) = r {
                    v.extend(map);
                }
            },
        )?;
        modules.append(&mut m);
    }
    let o = bundle::bundle(&modules, &args.output, &mut Locator::configured())?;
    for (path, why) in &o.missing {
        eprintln!("memshim: note: left out {path}: {why}");
    }
    let left = if o.missing.is_empty() {
        String::new()
    } else {
        format!("; {} left out (listed above)", o.missing.len())
    };
    output::print(&format!(
        "wrote {} ({} copied): symbols of {} modules by build-id, {} executables and {} debug files{left}\n",
        args.output.display(),
        units::bytes(o.bytes as f64),
        o.modules,
        o.executables,
        o.debug_files,
    ))
}
