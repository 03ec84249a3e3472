//! `memshim timeline CAPTURE -o OUT.svg`.

use std::path::PathBuf;

use crate::error::Result;
use crate::export::timeline;
use crate::{load, output};

/// Plot memory over time (RSS, heap in use, estimated live bytes) with the peak marked, as SVG.
#[derive(clap::Args)]
pub struct Args {
    capture: PathBuf,
    /// Output SVG file.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let a = load::analyze(&args.capture)?;
    output::write_file(&args.output, timeline::svg(&a).as_bytes())
}
