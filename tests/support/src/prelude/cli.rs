//! For the CLI's tests (tests/cli_*.rs): synthetic captures and the `memshim` binary.

pub use crate::c_build::cli_fixture as build_c;
pub use crate::cli::{memshim, run, stderr, stdout};
pub use crate::dirs::scratch;
pub use crate::elf::{build_id, symbol_addr};
pub use crate::synthetic::*;
pub use crate::synthetic_snapshots::*;
pub use crate::tools::have_tool;
pub use crate::units::MIB;
