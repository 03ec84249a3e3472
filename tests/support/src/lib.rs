//! What memshim's integration tests and benches share, one module per job. Each kind of test
//! takes the names it uses from one [`prelude`].

pub mod c_build;
pub mod capture;
pub mod cli;
pub mod compare;
pub mod dirs;
pub mod elf;
pub mod fleet;
pub mod import_cycles;
pub mod prelude;
pub mod process;
pub mod program;
pub mod py_fixtures;
pub mod python;
pub mod report_json;
pub mod seeds;
pub mod shim_lib;
pub mod synthetic;
pub mod synthetic_snapshots;
pub mod tools;
pub mod units;

/// Where memshim's tests find the CPython interpreters of other versions, and the skip protocol.
pub use memshim_test_pythons as pythons;
