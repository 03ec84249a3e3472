pub mod sampler;
pub mod thread;
