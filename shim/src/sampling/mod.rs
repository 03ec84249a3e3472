//! Sampling: per-thread state ([`thread`]), the Poisson byte [`sampler`], and the [`decide`]
//! step that turns the recording mode and a thread's countdown into what an allocation becomes.
pub mod decide;
pub mod sampler;
pub mod thread;
