//! Frames and their names: native frames symbolized offline (blazesym, checked against the
//! recorded build-ids), Python frames named from their code objects and line tables, and the
//! merging of the two into one stack. Where a module's symbols come from (`--symbols`, the
//! module's own path, debug files, debuginfod) is `locate`'s; `bundle` gathers them.

pub mod bundle;
pub mod debuginfod;
pub mod debuglink;
pub mod frames;
mod locate;
pub mod pyframes;
pub mod symbolize;

pub use locate::{configure, has_build_id, hex, Locator};
