//! Exporters: one file each.

pub mod flamegraph;
pub mod html;
pub mod pprof;
pub mod pprof_merge;
pub mod timeline;
mod timeline_limit;

/// Which quantity a flamegraph or profile shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Leaked (live at the end: after finalization and every destructor) plus growing sites.
    Leaks,
    /// Held at exit: live when Python began finalizing and freed by it.
    Held,
    /// Live when the heap was highest.
    Peak,
    /// Total allocated over the run.
    Allocations,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Leaks => "leaks",
            Kind::Held => "held",
            Kind::Peak => "peak",
            Kind::Allocations => "allocations",
        }
    }
}
