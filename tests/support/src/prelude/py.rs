//! For the Python tests (tests/py_*.rs, cli_pictures): fixtures run through `memshim run`,
//! their JSON reports, and what each fixture's report must show.

pub use crate::capture::capture_paths;
pub use crate::dirs::scratch;
pub use crate::py_fixtures::*;
pub use crate::python::*;
pub use crate::report_json::*;
pub use crate::seeds::PYTHON_SEED as SEED;
pub use crate::shim_lib::shim_lib_or_skip as shim;
pub use crate::units::MIB_F64 as MIB;
