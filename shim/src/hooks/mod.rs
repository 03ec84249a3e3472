pub mod alloc;
#[cfg(not(test))]
pub mod deepbind;
pub mod program_threads;
