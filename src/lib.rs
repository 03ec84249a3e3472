//! memshim's CLI core: turns captures written by libmemshim.so into answers. The `memshim`
//! binary (`main.rs`) only parses the command line and calls [`cmd`]; benches and tests import
//! these modules directly.
//!
//! Layers, each importing only the ones below it (`tests/module_cycles.rs` fails on a cycle):
//!
//! | module | its one job | may import |
//! |---|---|---|
//! | [`cmd`] | one file per subcommand: clap arguments, entry point, output | everything below |
//! | [`launch`] | `memshim run`'s pieces: the shim's path, signals, the captures a run wrote | capture, error |
//! | [`export`] | flamegraph, pprof, timeline and HTML files | report, present, analysis, symbols, capture, error, units |
//! | [`report`] | the report's sections and rankings, as text or JSON | present, analysis, symbols, units |
//! | [`present`] | a site's stack as people read it: resolved, viewed, folded, named | analysis, symbols |
//! | [`analysis`] | a capture's records folded into per-site estimates, live set, ticks, growth | capture, error |
//! | [`symbols`] | native frames symbolized, Python frames named, the two merged | capture |
//! | [`capture`] | which files, streaming their records, module maps | error |
//! | [`error`], [`units`] | the one error type; sizes and durations for people | nothing |

pub mod analysis;
pub mod capture;
pub mod cmd;
pub mod error;
pub mod export;
pub mod launch;
pub mod present;
pub mod report;
pub mod serve;
pub mod symbols;
pub mod units;
