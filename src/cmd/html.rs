//! `memshim html CAPTURE -o OUT.html`.

use std::path::PathBuf;

use crate::error::Result;
use crate::export::html;
use crate::symbolize::Symbolizer;
use crate::view::ViewArgs;
use crate::{load, output};

/// Write one self-contained HTML page: summary, timeline and flamegraphs (leaks, peak, allocations).
#[derive(clap::Args)]
pub struct Args {
    capture: PathBuf,
    /// Output HTML file.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    view: ViewArgs,
}

pub fn run(args: Args) -> Result<()> {
    let a = load::analyze(&args.capture)?;
    let page = html::page(
        &a,
        &mut Symbolizer::new(),
        &args.capture.display().to_string(),
        args.view.view(),
    )?;
    output::write_file(&args.output, page.as_bytes())
}
