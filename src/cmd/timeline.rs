//! `memshim timeline CAPTURE -o OUT.svg`.

use std::path::PathBuf;

use crate::cmd::output;
use crate::error::Result;
use crate::export::timeline;
use crate::units;

/// Plot memory over time (RSS, heap in use, estimated live bytes) with the peak marked, as SVG.
#[derive(clap::Args)]
pub struct Args {
    capture: PathBuf,
    /// Output SVG file.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    times: crate::cmd::time_window::TimeArgs,
}

pub fn run(args: Args) -> Result<()> {
    let a = args.times.analyze(&args.capture)?;
    let what = format!(
        "timeline of pid {}, {} points over {:.2} s, peak RSS {}, peak live {}",
        a.header.pid,
        a.ticks.points.len(),
        units::secs(a.last_t),
        units::bytes(a.ticks.peak_rss as f64),
        units::bytes(a.peak_bytes)
    );
    output::write_export(&args.output, timeline::svg(&a).as_bytes(), &what)
}
