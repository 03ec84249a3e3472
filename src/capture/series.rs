//! Snapshot captures that rolled over (`MEMSHIM_MODE=snapshots` past `MEMSHIM_MAX_SIZE`): the
//! files of one series, found next to the one named, read as one run in the order of their
//! parts. The files looked at are those whose names begin like the one named (the shim names
//! each part after the first file); which belong, and in what order, their headers say
//! (`series`, `part`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use memshim_format::snapshot::{EXTRA_PART, EXTRA_SERIES};
use memshim_format::{Header, Reader, Record};

use crate::capture::kind::{extra, is_snapshots};
use crate::capture::load::{stream_file, Readable};
use crate::error::Result;

/// The series id and part of a snapshot capture's header.
fn series_of(h: &Header) -> Option<(String, u64)> {
    if !is_snapshots(h) {
        return None;
    }
    let id = extra(h, EXTRA_SERIES)?.to_string();
    let part = extra(h, EXTRA_PART)
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    Some((id, part))
}

/// The header of the capture at `path`, or `None` when it does not read as one.
fn header_of(path: &Path) -> Option<Header> {
    let f = File::open(path).ok()?;
    Reader::new(BufReader::new(f))
        .ok()
        .map(|r| r.header().clone())
}

/// The files of `path`'s series in part order (`path` alone for an event capture): the
/// regular files in its directory with the same extension, a name that begins like its own
/// (up to `.part`, or its extension), and the same series.
pub fn parts(path: &Path) -> Vec<PathBuf> {
    let Some((id, part)) = header_of(path).as_ref().and_then(series_of) else {
        return vec![path.to_path_buf()];
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let ext = path.extension().map(|e| e.to_os_string());
    // The shim names every part after the series' first file (`NAME.msh`, `NAME.part2.msh`):
    // only the names that begin like it are worth reading the header of.
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = path
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let first = match name.find(".part") {
        Some(i) => &name[..i],
        None => stem,
    };
    let prefix = format!("{first}.");
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| e.path())
        .filter(|p| p.extension().map(|e| e.to_os_string()) == ext && p.is_file())
        .filter_map(|p| {
            let (i, n) = series_of(&header_of(&p)?)?;
            (i == id).then_some((n, p))
        })
        .collect();
    // The named file is its part, whatever else claims that place (a copy of it).
    found.retain(|(n, _)| *n != part);
    found.push((part, path.to_path_buf()));
    found.sort();
    found.dedup_by_key(|(n, _)| *n);
    found.into_iter().map(|(_, p)| p).collect()
}

/// `paths` with each series named once (at its first path): the others are read with it.
pub fn one_per_series(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen: Vec<String> = vec![];
    paths
        .into_iter()
        .filter(|p| match header_of(p).as_ref().and_then(series_of) {
            Some((id, _)) if seen.contains(&id) => false,
            Some((id, _)) => {
                seen.push(id);
                true
            }
            None => true,
        })
        .collect()
}

/// Streams the files of `path`'s series ([`parts`]) into one state: `init` makes it from the
/// first file's header, `next_file` is told each later file's header before its records. How
/// the run ended is the last file's; a later part with nothing readable (killed just after a
/// rollover) adds nothing.
pub fn stream_series<S>(
    path: &Path,
    init: impl FnOnce(&Header) -> S,
    mut next_file: impl FnMut(&mut S, &Header),
    mut on_record: impl FnMut(&mut S, Record),
) -> Result<Readable<S>> {
    let files = parts(path);
    let last = files.len() - 1;
    let (mut state, mut ending) = match stream_file(&files[0], last == 0, init, &mut on_record)? {
        Readable::Some(s, e) => (s, e),
        Readable::Nothing(why) => return Ok(Readable::Nothing(why)),
    };
    for (k, f) in files.iter().enumerate().skip(1) {
        // The state is lent to each later file, so one with nothing readable loses nothing.
        let s = &mut state;
        let r = stream_file(
            f,
            k == last,
            |h| {
                next_file(s, h);
                s
            },
            |s, r| on_record(s, r),
        )?;
        if let Readable::Some(_, e) = r {
            ending = e;
        } else if k == last {
            // The run's end is the previous part's, which said nothing about it.
            eprintln!(
                "memshim: warning: {}: the series' last part has nothing readable; using the parts before it",
                f.display()
            );
            ending.ended = false;
        }
    }
    Ok(Readable::Some(state, ending))
}
