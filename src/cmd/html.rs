//! `memshim html CAPTURE -o OUT.html`.

use std::path::PathBuf;

use crate::cmd::output;
use crate::error::Result;
use crate::export::html;
use crate::present::view::ViewArgs;
use crate::symbols::symbolize::Symbolizer;
use crate::units;

/// Write one self-contained HTML page: summary, timeline and flamegraphs (leaks, peak, allocations).
#[derive(clap::Args)]
pub struct Args {
    capture: PathBuf,
    /// Output HTML file.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    times: crate::cmd::time_window::TimeArgs,
}

pub fn run(args: Args) -> Result<()> {
    let a = args.times.analyze(&args.capture)?;
    let page = html::page(
        &a,
        &mut Symbolizer::new(),
        &args.capture.display().to_string(),
        args.view.view(),
    )?;
    let what = format!(
        "page of pid {}: summary, timeline and flamegraphs of leaks ({}), peak ({}) and \
         allocations ({})",
        a.header.pid,
        units::bytes(
            crate::report::sections::Sections::of(&a, &mut Symbolizer::new()).headline_total(&a)
        ),
        units::bytes(a.peak_bytes),
        units::bytes(a.allocated_bytes)
    );
    output::write_export(&args.output, page.as_bytes(), &what)
}
