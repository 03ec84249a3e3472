//! One file per subcommand: its clap arguments and its entry point.

pub mod check;
pub mod flamegraph;
pub mod html;
pub mod pprof;
pub mod report;
pub mod run;
pub mod stats;
pub mod timeline;
