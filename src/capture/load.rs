//! Streams a capture file record by record: memory use is one chunk plus what the caller keeps.
//!
//! A capture that stops early (no `End` record, or a partial last chunk: the process was killed)
//! loads up to its last complete chunk with one warning line; a file that is not a capture, is
//! corrupt, or is newer than this memshim is an error. Loads of big files show a progress bar when
//! stderr is a terminal.

use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use memshim_format::{Header, Reader, Record};

use crate::error::{CliError, Result};

/// Files smaller than this load too fast to deserve a progress bar.
const PROGRESS_MIN_BYTES: u64 = 32 << 20;

/// How the stream of one capture ended.
#[derive(Debug, Clone)]
pub struct Ending {
    /// A complete capture: the `End` record was read.
    pub ended: bool,
    /// The file stops inside a chunk.
    pub partial_chunk: bool,
    /// File bytes decoded: the header and every complete chunk (a chunk cut short is not).
    pub bytes_read: u64,
    pub file_len: u64,
    /// The shim stopped recording early and said why (an EXTENSION_STOPPED record): the file
    /// is whole, only shorter than the process's life.
    pub stopped: Option<String>,
}

impl Ending {
    pub fn truncated(&self) -> bool {
        (!self.ended && self.stopped.is_none()) || self.partial_chunk
    }
}

/// How a capture the shim stopped early ended, for reports.
pub fn stopped_early(why: &str) -> String {
    format!("stopped early ({why})")
}

/// The reason in a record saying the shim stopped recording early.
pub fn stop_reason(r: &Record) -> Option<String> {
    match r {
        Record::Extension { kind, data } if *kind == memshim_format::EXTENSION_STOPPED => {
            Some(String::from_utf8_lossy(data).into_owned())
        }
        _ => None,
    }
}

/// Folds the records of the capture at `path` into a state that `init` makes from its header.
///
/// A capture with not one readable record is an error (an empty report would look like a clean
/// one).
pub fn stream<S>(
    path: &Path,
    init: impl FnOnce(&Header) -> S,
    on_record: impl FnMut(&mut S, Record),
) -> Result<(S, Ending)> {
    match stream_any(path, init, on_record)? {
        Readable::Some(s, e) => Ok((s, e)),
        Readable::Nothing(why) => Err(CliError::new(why)),
    }
}

/// What [`stream_any`] made of a capture.
pub enum Readable<S> {
    Some(S, Ending),
    /// Truncated before its first record: the one line that says so.
    Nothing(String),
}

/// [`stream`], telling a capture with nothing readable apart (for a caller that reads several
/// and goes on without it) rather than failing on it.
pub fn stream_any<S>(
    path: &Path,
    init: impl FnOnce(&Header) -> S,
    on_record: impl FnMut(&mut S, Record),
) -> Result<Readable<S>> {
    stream_file(path, true, init, on_record)
}

/// [`stream_any`]; `warn: false` says nothing about how the file ended (an earlier file of a
/// rolled-over series: the series' last file says how the run ended).
pub fn stream_file<S>(
    path: &Path,
    warn: bool,
    init: impl FnOnce(&Header) -> S,
    mut on_record: impl FnMut(&mut S, Record),
) -> Result<Readable<S>> {
    let file = File::open(path).map_err(|e| CliError::about(path, e))?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = Reader::new(BufReader::with_capacity(1 << 20, file))
        .map_err(|e| CliError::about(path, e))?;
    // A snapshot capture with no end record whose chunks are whole is a process still
    // running (the normal case for one): the report says so, not this warning.
    let still_running = crate::capture::kind::is_snapshots(reader.header());
    let mut state = init(reader.header());
    let bar = progress_bar(path, file_len);
    let mut n: u64 = 0;
    let mut stopped = None;
    // The bytes up to the end of the last complete chunk: the reader counts the bytes it took,
    // a chunk cut short included, so this is noted each time a chunk has been decoded.
    let mut decoded = reader.bytes_read();
    let mut chunks = 0;
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                if reader.chunks() != chunks {
                    chunks = reader.chunks();
                    decoded = reader.bytes_read();
                }
                if let Some(why) = stop_reason(&rec) {
                    stopped = Some(why);
                }
                on_record(&mut state, rec)
            }
            Ok(None) => break,
            Err(e) => {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                return Err(CliError::about(path, e));
            }
        }
        n += 1;
        if n & 0xffff == 0 {
            if let Some(b) = &bar {
                b.set_position(reader.bytes_read());
            }
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if !reader.truncated() {
        decoded = reader.bytes_read();
    }
    let ending = Ending {
        ended: reader.ended(),
        partial_chunk: reader.truncated(),
        bytes_read: decoded,
        file_len,
        stopped,
    };
    if ending.truncated() && n == 0 {
        // Not one record: a report of it would be empty and look like a clean one.
        let where_ = if ending.partial_chunk {
            "it ends inside its first chunk"
        } else {
            "it has no chunk after its header"
        };
        return Ok(Readable::Nothing(format!(
            "{}: truncated capture with nothing readable ({where_}; the process was probably \
             killed): only the {}-byte header of the file's {} bytes decodes",
            path.display(),
            ending.bytes_read,
            ending.file_len
        )));
    }
    if warn {
        let running = still_running && !ending.partial_chunk;
        if ending.truncated()
            && !running
            && !QUIET_TRUNCATION.load(std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!("memshim: warning: {}", truncation_note(path, &ending));
        } else if let Some(why) = &ending.stopped {
            eprintln!(
                "memshim: note: {}: the shim stopped recording early: {why}",
                path.display()
            );
        }
    }
    Ok(Readable::Some(state, ending))
}

/// Set by `memshim serve`, whose captures are mostly still being written: reading them up to
/// their last complete chunk is the normal case there, not worth a line per request.
static QUIET_TRUNCATION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops the truncation warning for the rest of the run.
pub fn quiet_truncation() {
    QUIET_TRUNCATION.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The one line said about a capture that stops early.
pub fn truncation_note(path: &Path, e: &Ending) -> String {
    let why = if e.partial_chunk {
        "ends inside a chunk"
    } else {
        "has no end record"
    };
    format!(
        "{}: truncated capture ({why}; the process was probably killed): using {} of the file's {} bytes, up to its last complete chunk",
        path.display(),
        e.bytes_read,
        e.file_len
    )
}

fn progress_bar(path: &Path, len: u64) -> Option<ProgressBar> {
    if len < PROGRESS_MIN_BYTES || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(format!("loading {}", path.display()));
    Some(bar)
}
