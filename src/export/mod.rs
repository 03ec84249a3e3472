//! Exporters: one file each.

pub mod flamegraph;
pub mod html;
pub mod pprof;
pub mod timeline;

/// Which quantity a flamegraph or profile shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Live at the end of the capture.
    Leaks,
    /// Live when the heap was highest.
    Peak,
    /// Total allocated over the run.
    Allocations,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Leaks => "leaks",
            Kind::Peak => "peak",
            Kind::Allocations => "allocations",
        }
    }
}
