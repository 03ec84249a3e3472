//! One `use memshim_test_support::prelude::X::*` per kind of test: the names its tests use,
//! re-exported from the modules that define them (nothing is defined here).

pub mod cli;
pub mod py;
pub mod shim;
