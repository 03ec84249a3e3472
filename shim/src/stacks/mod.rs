pub mod python;
pub mod unwind;
