//! Transport: how what an application thread saw reaches the writer thread without a lock. The
//! [`event`]s, the [`ring`] that carries them, and the [`arena`] for what does not fit an event
//! (module maps, Python code names).
pub mod arena;
pub mod event;
pub mod mark_label;
pub mod pycode;
pub mod ring;
