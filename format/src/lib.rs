//! The memshim capture format (`.msh`), shared by the shim that writes it and the CLI that reads it.
//!
//! # Layout
//!
//! ```text
//! file   := preamble header_body header_crc body
//! body   := chunk*        (plain)
//!         | block*        (FLAG_ZSTD: each block a checksummed zstd frame of whole chunks)
//! preamble (16 bytes, little endian):
//!   0..8   magic   b"MEMSHIM\0"
//!   8..10  u16     format version (FORMAT_VERSION)
//!   10..12 u16     flags: bit 0 (FLAG_ZSTD, version 2+) the chunks are compressed; bit 1
//!                  (FLAG_PRIMED, version 6+) each compressed block is primed with the chunks
//!                  before it (module `prime`); others 0
//!   12..16 u32     header_body length in bytes
//! header_body      postcard encoding of [`Header`]
//! header_crc       u32 LE, CRC-32 (IEEE) of header_body
//!
//! chunk  := len:u32 LE  crc:u32 LE  payload[len]
//! payload          version 6: the chunk's records grouped by thread, with the order they came
//!                  in (module `grouped`); allocations, frees and unmaps (the "hot" records)
//!                  each relative to its thread's previous one, the others in postcard.
//!                  Versions 1-5: concatenated encodings of [`Record`], nothing else: postcard,
//!                  except that from version 3 the hot records are written relative to the
//!                  previous hot record of the same chunk (module `fast`)
//! ```
//!
//! With `FLAG_ZSTD` the bytes after the header are checksummed blocks, each one zstd frame whose
//! content is whole chunks ([`stream`]; version 2 wrote the blocks as one zstd stream): the chunk
//! checksums and the truncation rule below apply to the decompressed chunks. Version 1 files
//! (never compressed), version 2 files (hot records in plain postcard), version 3 files (no
//! user marks, [`Marker::User`]) and versions 4 and 5 (records in arrival order) still decode.
//!
//! The writer (one thread per process) flushes every 80 ms (the shim's `FLUSH_NS`) and on every
//! exit path (`exit`, `_exit`, `exec`): it frames what it has into chunks and appends each block
//! of them (up to about 8 MiB of chunks) with one `write(2)`. So a process killed by SIGKILL or any
//! signal (the shim installs no handler) leaves a file whose complete blocks and chunks all
//! decode: a reader stops at the first short or failing one and reports the file as truncated.
//! A chunk never exceeds [`MAX_CHUNK`] bytes.
//!
//! # Compatibility
//!
//! The version is bumped on any change a reader of the previous version could not decode. A reader
//! refuses a newer version with [`Error::NewerVersion`]. Within a version, new kinds of data are
//! carried by [`Record::Extension`], which every reader skips: this is the room to grow. Snapshot
//! captures (the bounded production mode) carry their aggregates that way ([`snapshot`]).
//!
//! # Meaning
//!
//! Addresses are the process's own. Sizes are in bytes, times in nanoseconds since
//! [`Header::start_mono_ns`]; the shim stamps allocations, frees, unmaps and the Python
//! finalization marker that goes in order with them with the kernel's coarse monotonic clock (its
//! resolution is a timer tick, 1-4 ms), ticks and the end with the fine one. In sampled mode
//! (`Header::rate > 0`) an [`Record::Alloc`] is written only for sampled allocations, and a
//! [`Record::Free`] only when a sampled allocation is freed; the unbiased weight of a sample of
//! size `s` is `1 / (1 - exp(-s / rate))` allocations and `s` times that in bytes
//! ([`sample_weight`]). In `all` mode every allocation and free is written and each weighs 1.
//! Memory mappings are recorded as allocations of kind [`AllocKind::Mmap`]; every `munmap` is
//! recorded (the CLI clips the live mappings it overlaps).

mod chunk;
mod fast;
mod grouped;
mod header;
mod prime;
mod reader;
mod record;
pub mod snapshot;
pub mod stream;

pub use chunk::{encode_chunk, ChunkBuilder, MAX_CHUNK};
pub use header::{decode_header, encode_header, encode_header_with, Header, FORMAT_VERSION, MAGIC};
pub use prime::PRIME_MAX;
pub use reader::{Error, Reader};
pub use record::*;
pub use stream::{Compressor, Level, FLAG_PRIMED, FLAG_ZSTD};
