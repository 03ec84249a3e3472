//! The writer: the thread that drains the ring ([`thread`]), the capture it writes
//! ([`capture`], into a [`capture_file`] kept in the writer's own descriptor table,
//! [`fdtable`]), the stack table that writes each stack once ([`stack_table`]), and the
//! process's one writer shared by its writer threads ([`current`]). In snapshot mode the writer
//! keeps per-stack aggregates and writes snapshots of them (`snapshots.rs`, `aggregates.rs`);
//! in either mode it serves `memshim ctl` requests (`requests.rs`).
mod aggregates;
pub mod capture;
pub mod capture_file;
pub mod current;
pub mod fdtable;
mod module_map;
mod records;
mod requests;
mod series;
mod snapshots;
pub mod stack_table;
pub mod statm;
pub mod thread;
mod ticks;

/// Flush (and tick) period: at least ten ticks and flushes a second.
pub const FLUSH_NS: u64 = 80_000_000;
/// In the first [`EARLY_NS`] of a run, a timeline tick every [`EARLY_TICK_NS`] between flushes
/// (RSS and the sampled totals read then; glibc's heap as read at the last flush tick, so its
/// probe stays as rare as `HeapProbe` makes it), so a short run draws as a curve rather than
/// four points.
pub const EARLY_TICK_NS: u64 = 10_000_000;
pub const EARLY_NS: u64 = 2_000_000_000;
