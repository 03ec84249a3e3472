//! Stacks: the native unwinder ([`unwind`]) and the Python frame reader ([`python`]), which
//! together fill a [`StackBuf`] for each sample.
pub mod python;
mod stack_buf;
pub mod unwind;

pub use stack_buf::{Send, StackBuf};
