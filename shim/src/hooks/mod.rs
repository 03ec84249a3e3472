//! Hooks: what each interposed call does. [`alloc`] has the allocation family's fast paths
//! (inlined into the exports) and their `#[cold]` slow paths; [`process`] the constructor, exit
//! and fork; [`program_threads`] the program's threads; [`loader`] dlopen and dlclose, with
//! [`deepbind`] for `RTLD_DEEPBIND` libraries.
pub mod alloc;
#[cfg(not(test))]
pub mod deepbind;
pub mod loader;
pub mod mapping;
pub mod marks;
pub mod process;
pub mod program_threads;
