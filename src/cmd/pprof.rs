//! `memshim pprof CAPTURE -o OUT.pb.gz`.

use std::path::PathBuf;

use crate::cmd::output;
use crate::error::Result;
use crate::export::pprof;
use crate::present::view::ViewArgs;
use crate::symbols::symbolize::Symbolizer;
use crate::units;

/// Write a gzipped pprof heap profile (alloc_objects, alloc_space, inuse_objects, inuse_space,
/// held_objects, held_space),
/// symbolized, with build-ids: `go tool pprof`, Pyroscope and Parca read it like a Go heap profile.
/// In use = the report's leaks (leaked: live at the end; plus growing sites); held = held at exit.
#[derive(clap::Args)]
pub struct Args {
    capture: PathBuf,
    /// Output file (`.pb.gz`).
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    times: crate::cmd::time_window::TimeArgs,
}

pub fn run(args: Args) -> Result<()> {
    let a = args.times.analyze(&args.capture)?;
    let p = pprof::profile(&a, &mut Symbolizer::new(), args.view.view());
    // Sample values: alloc_objects, alloc_space, inuse_objects, inuse_space.
    let sum = |i: usize| -> f64 { p.sample.iter().map(|s| s.value[i] as f64).sum() };
    let what = format!(
        "pprof heap profile of pid {}, {} stacks, {} allocated, {} in use",
        a.header.pid,
        p.sample.len(),
        units::bytes(sum(1)),
        units::bytes(sum(3))
    );
    output::write_export(&args.output, &pprof::encode(&p), &what)
}
