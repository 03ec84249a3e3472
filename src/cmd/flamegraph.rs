//! `memshim flamegraph CAPTURE --kind leaks|peak|allocations -o OUT.svg`.

use std::path::PathBuf;

use crate::error::Result;
use crate::export::{flamegraph, Kind};
use crate::symbolize::Symbolizer;
use crate::view::ViewArgs;
use crate::{load, output, units};

/// Write an interactive flamegraph SVG (click to zoom, search) of a capture, in bytes.
///
/// `leaks`: the report's leaks (leaked: live at the end; plus growing sites). `held`: held at exit
/// (live when Python began finalizing, freed by it). `peak`: what was live when the heap was highest.
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
    let lines = flamegraph::folded(&a, &mut Symbolizer::new(), args.kind, args.view.view());
    let svg = flamegraph::svg_of(&a, &lines, args.kind, args.icicle)?;
    let what = format!(
        "flamegraph of {} of pid {}, {} {}, {}",
        args.kind.name(),
        a.header.pid,
        lines.len(),
        if lines.len() == 1 { "stack" } else { "stacks" },
        units::bytes(flamegraph::folded_total(&lines))
    );
    output::write_export(&args.output, &svg, &what)
}
