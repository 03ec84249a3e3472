pub mod capture;
pub mod capture_file;
pub mod fdtable;
pub mod stack_table;
pub mod thread;
