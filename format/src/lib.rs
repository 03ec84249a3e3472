//! The memshim capture format (`.msh`), shared by the shim that writes it and the CLI that reads it.
//!
//! # Layout
//!
//! ```text
//! file   := preamble header_body header_crc chunk*
//! preamble (16 bytes, little endian):
//!   0..8   magic   b"MEMSHIM\0"
//!   8..10  u16     format version (FORMAT_VERSION)
//!   10..12 u16     flags: bit 0 (FLAG_ZSTD, version 2+) the chunks are compressed; others 0
//!   12..16 u32     header_body length in bytes
//! header_body      postcard encoding of [`Header`]
//! header_crc       u32 LE, CRC-32 (IEEE) of header_body
//!
//! chunk  := len:u32 LE  crc:u32 LE  payload[len]
//! payload          concatenated encodings of [`Record`], nothing else: postcard, except that
//!                  from version 3 allocations, frees and unmaps (the "hot" records) are written
//!                  relative to the previous hot record of the same chunk (module `fast`)
//! ```
//!
//! With `FLAG_ZSTD` the bytes after the header are one zstd stream whose content is `chunk*`,
//! flushed at every write and never ended ([`stream`]): the checksums and the truncation rule
//! below apply to the decompressed chunks. Version 1 files (never compressed) and version 2
//! files (hot records in plain postcard) and version 3 files (no user
//! marks, [`Marker::User`]) still decode.
//!
//! The writer (one thread per process) appends a whole chunk with one `write(2)` at least every
//! 100 ms and on every exit path, so a process killed with SIGKILL leaves a file whose complete
//! chunks all decode: a reader stops at the first short or failing chunk and reports the file as
//! truncated. A chunk never exceeds [`MAX_CHUNK`] bytes.
//!
//! # Compatibility
//!
//! The version is bumped on any change a reader of the previous version could not decode. A reader
//! refuses a newer version with [`Error::NewerVersion`]. Within a version, new kinds of data are
//! carried by [`Record::Extension`], which every reader skips: this is the room to grow (aggregated
//! snapshot records of a bounded production mode will use extension kind [`EXT_SNAPSHOT`]).
//!
//! # Meaning
//!
//! Addresses are the process's own. Sizes are in bytes, times in nanoseconds since
//! [`Header::start_mono_ns`]; the shim stamps allocations and frees with the kernel's coarse
//! monotonic clock (its resolution is a timer tick, 1-4 ms), ticks and markers with the fine one. In sampled mode (`Header::rate > 0`) an [`Record::Alloc`]
//! is written only for sampled allocations, and a [`Record::Free`] only when a sampled allocation
//! is freed; the unbiased weight of a sample of size `s` is `1 / (1 - exp(-s / interval))`
//! allocations and `s` times that in bytes. In `all` mode every allocation and free is written and
//! each weighs 1. Memory mappings are recorded as allocations of kind [`AllocKind::Mmap`]; every
//! `munmap` is recorded (the CLI clips the live mappings it overlaps).

mod chunk;
mod fast;
mod header;
mod reader;
mod record;
pub mod stream;

pub use chunk::{encode_chunk, ChunkBuilder, MAX_CHUNK};
pub use header::{decode_header, encode_header, encode_header_with, Header, FORMAT_VERSION, MAGIC};
pub use reader::{Error, Reader};
pub use record::*;
pub use stream::{Compressor, FLAG_ZSTD};

/// Extension kind reserved for aggregated live-heap snapshots (bounded-size production mode).
pub const EXT_SNAPSHOT: u32 = 1;
