//! `memshim flamegraph CAPTURE --kind leaks|peak|allocations -o OUT.svg`.

use std::path::PathBuf;

use crate::error::Result;
use crate::export::{flamegraph, Kind};
use crate::symbolize::Symbolizer;
use crate::view::ViewArgs;
use crate::{load, output};

/// Write an interactive flamegraph SVG (click to zoom, search) of a capture, in bytes.
///
/// `leaks`: what was live at the end (for Python, when the interpreter began finalizing). `peak`: what was live when the heap was highest.
/// `allocations`: everything allocated over the run.
#[derive(clap::Args)]
pub struct Args {
    capture: PathBuf,
    #[arg(long, value_enum, default_value = "leaks")]
    kind: Kind,
    /// Draw the root at the top (an icicle graph).
    #[arg(long)]
    icicle: bool,
    /// Output SVG file.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    view: ViewArgs,
}

pub fn run(args: Args) -> Result<()> {
    let a = load::analyze(&args.capture)?;
    let svg = flamegraph::svg(
        &a,
        &mut Symbolizer::new(),
        args.kind,
        args.icicle,
        args.view.view(),
    )?;
    output::write_file(&args.output, &svg)
}
