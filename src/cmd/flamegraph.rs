//! `memshim flamegraph CAPTURE --kind leaks|peak|allocations -o OUT.svg`.

use std::path::PathBuf;

use crate::cmd::output;
use crate::error::Result;
use crate::export::{flamegraph, Kind};
use crate::present::view::ViewArgs;
use crate::symbols::symbolize::Symbolizer;
use crate::units;

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
    /// Draw the root at the top (an icicle graph, the default: the widest frames show first).
    #[arg(long, hide = true, conflicts_with = "flame")]
    icicle: bool,
    /// Draw the root at the bottom (a classic flame graph).
    #[arg(long)]
    flame: bool,
    /// Draw every frame: by default the allocator's internals, the interpreter's call machinery
    /// and start-up chain, and ctypes/libffi plumbing are folded away (stacks start at the
    /// outermost Python frame, `<module>`).
    #[arg(long)]
    all_frames: bool,
    /// Full Rust and C++ names (by default generic and template arguments are elided).
    #[arg(long)]
    full_names: bool,
    /// Output SVG file.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    times: crate::cmd::time_window::TimeArgs,
}

pub fn run(args: Args) -> Result<()> {
    let a = args.times.analyze(&args.capture)?;
    let style = flamegraph::Style {
        all_frames: args.all_frames,
        full_names: args.full_names,
    };
    let mut f = flamegraph::folded(
        &a,
        &mut Symbolizer::new(),
        args.kind,
        args.view.view(),
        style,
    );
    let svg = flamegraph::svg_of(&a, &mut f, args.kind, !args.flame)?;
    let lines = &f.lines;
    let what = format!(
        "flamegraph of {} of pid {}, {} {}, {}",
        args.kind.name(),
        a.header.pid,
        lines.len(),
        if lines.len() == 1 { "stack" } else { "stacks" },
        units::bytes(flamegraph::folded_total(lines))
    );
    output::write_export(&args.output, &svg, &what)
}
