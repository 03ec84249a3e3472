//! What memshim's integration tests and benches share, one module per job.

pub mod dirs;
pub mod import_cycles;
