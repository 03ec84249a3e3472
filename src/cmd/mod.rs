//! One file per subcommand: its clap arguments and its entry point.

pub mod report;
pub mod stats;
