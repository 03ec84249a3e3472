//! One file per subcommand: its clap arguments and its entry point; [`output`] is how they
//! print and write what they made.

pub mod bundle;
pub mod check;
pub mod ctl;
pub mod diff;
pub mod flamegraph;
pub mod html;
pub mod output;
pub mod pprof;
pub mod report;
pub mod run;
pub mod serve;
pub mod stats;
pub mod time_window;
pub mod timeline;
