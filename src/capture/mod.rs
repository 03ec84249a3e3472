//! Reading captures: which files a command's arguments name, streaming a file's records, and
//! the module maps its stacks are resolved against. The bottom layer: it knows the format, not
//! what the records mean for a report.

pub mod inputs;
pub mod kind;
pub mod load;
pub mod modules;
pub mod series;
