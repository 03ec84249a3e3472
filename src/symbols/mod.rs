//! Frames and their names: native frames symbolized offline (blazesym, checked against the
//! recorded build-ids), Python frames named from their code objects and line tables, and the
//! merging of the two into one stack.

pub mod frames;
pub mod pyframes;
pub mod symbolize;
