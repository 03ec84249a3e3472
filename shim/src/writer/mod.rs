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
mod snapshots;
pub mod stack_table;
pub mod statm;
pub mod thread;
mod ticks;
