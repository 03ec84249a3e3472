//! Sizes, once.

pub const MIB: u64 = 1 << 20;
/// [`MIB`] for estimates, which are floating point.
pub const MIB_F64: f64 = MIB as f64;
