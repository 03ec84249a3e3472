//! `memshim run`'s pieces: finding libmemshim.so, forwarding signals to the child, and finding
//! the captures a run wrote.

pub mod captures;
pub mod preload;
pub mod signals;
