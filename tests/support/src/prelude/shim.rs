//! For the shim's tests (tests/shim_*.rs, host_*.rs): programs run with and without the shim,
//! compared, and the captures they left, decoded.

use std::path::PathBuf;

pub use crate::c_build::{c_file as build_c_file, shim_fixture as build_c};
pub use crate::capture::*;
pub use crate::compare::*;
pub use crate::dirs::scratch;
pub use crate::elf::sym_range;
pub use crate::process::*;
pub use crate::program::*;
pub use crate::python::python_resolved;
pub use crate::seeds::SHIM_SEED as SEED;
pub use crate::shim_lib::shim_lib as shim_so;
pub use crate::tools::{need_lib, need_tool};

/// tests/fixtures/shim.
pub fn fixtures() -> PathBuf {
    crate::dirs::fixtures("shim")
}

/// The host-behaviour fixtures (tests/host_*.rs).
pub fn host_fixtures() -> PathBuf {
    crate::dirs::fixtures("host")
}
