//! Captures as the shim wrote them, decoded whole with the format crate: records, stacks,
//! module maps, and allocations followed through their frees.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use memshim_format::{AllocKind, Drops, EndKind, Header, Module, Reader, Record};

use crate::elf::sym_range;

/// A decoded capture.
#[derive(Debug)]
pub struct Capture {
    pub path: PathBuf,
    pub header: Header,
    pub records: Vec<Record>,
    /// The stream ended inside a chunk (process killed mid-write).
    pub truncated: bool,
    pub chunks: u64,
}

impl Capture {
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// The End record: how the process left and the drops it reported.
    pub fn end(&self) -> Option<(EndKind, Drops)> {
        self.records.iter().find_map(|r| match r {
            Record::End { how, dropped, .. } => Some((*how, *dropped)),
            _ => None,
        })
    }

    /// Asserts the capture is complete: decodes, not truncated, ends with exactly one End, last.
    pub fn assert_complete(&self) {
        assert!(!self.truncated, "{}: truncated", self.name());
        let ends = self
            .records
            .iter()
            .filter(|r| matches!(r, Record::End { .. }))
            .count();
        assert_eq!(ends, 1, "{}: {ends} End records", self.name());
        assert!(
            matches!(self.records.last(), Some(Record::End { .. })),
            "{}: End is not the last record",
            self.name()
        );
    }

    /// Why the shim stopped recording, when the capture's last record says so (an
    /// `EXTENSION_STOPPED` record).
    pub fn stop_note(&self) -> Option<String> {
        match self.records.last()? {
            Record::Extension { kind, data } if *kind == memshim_format::EXTENSION_STOPPED => {
                Some(String::from_utf8_lossy(data).into_owned())
            }
            _ => None,
        }
    }

    pub fn allocs(&self) -> impl Iterator<Item = Alloc> + '_ {
        self.records.iter().filter_map(Alloc::of)
    }

    /// (addr, size) of every Free record.
    pub fn frees(&self) -> impl Iterator<Item = (u64, u64, u32)> + '_ {
        self.records.iter().filter_map(|r| match *r {
            Record::Free {
                addr, size, tid, ..
            } => Some((addr, size, tid)),
            _ => None,
        })
    }

    pub fn stacks(&self) -> HashMap<u64, Vec<u64>> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Stack { id, frames, .. } => Some((*id, frames.clone())),
                _ => None,
            })
            .collect()
    }

    /// Asserts every Alloc names a stack written before it.
    pub fn assert_stacks_defined(&self) {
        let mut seen = std::collections::HashSet::new();
        for r in &self.records {
            match r {
                Record::Stack { id, .. } => {
                    seen.insert(*id);
                }
                Record::Alloc { stack, .. } => {
                    assert!(
                        seen.contains(stack),
                        "{}: Alloc names stack {stack} before it is written",
                        self.name()
                    )
                }
                _ => {}
            }
        }
    }

    /// Every module map the capture recorded, merged (later maps win on equal paths).
    pub fn modules(&self) -> Vec<Module> {
        let mut out: Vec<Module> = Vec::new();
        for r in &self.records {
            if let Record::Modules(ms) = r {
                for m in ms {
                    out.retain(|o| !(o.path == m.path && o.base == m.base));
                    out.push(m.clone());
                }
            }
        }
        out
    }

    /// The module whose file is `path` (compared canonically).
    pub fn module(&self, path: &Path) -> Option<Module> {
        let want = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.modules().into_iter().find(|m| {
            let p = Path::new(&m.path);
            std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()) == want
        })
    }

    /// Ids of the stacks with a frame inside one of `ranges` (runtime address ranges).
    pub fn stacks_through(&self, ranges: &[(u64, u64)]) -> std::collections::HashSet<u64> {
        self.stacks()
            .into_iter()
            .filter(|(_, frames)| {
                frames.iter().any(|&ip| {
                    // A return address points after the call; step back into the call instruction.
                    let a = ip.wrapping_sub(1);
                    ranges.iter().any(|&(lo, hi)| a >= lo && a < hi)
                })
            })
            .map(|(id, _)| id)
            .collect()
    }

    pub fn rate(&self) -> u64 {
        self.header.rate
    }

    /// Unbiased estimate of the bytes that allocations `a` stand for.
    pub fn est_bytes<'a>(&self, a: impl Iterator<Item = &'a Alloc>) -> f64 {
        let iv = self.rate();
        a.map(|a| a.size as f64 * memshim_format::sample_weight(a.size, iv))
            .sum()
    }

    /// The snapshots of a snapshot capture, in order (each must decode).
    pub fn snapshots(&self) -> Vec<memshim_format::snapshot::Snapshot> {
        self.records
            .iter()
            .filter_map(memshim_format::snapshot::Snapshot::from_record)
            .map(|s| s.expect("a snapshot that decodes"))
            .collect()
    }

    /// A named value of the header's `extra`.
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.header
            .extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn count(&self, pred: impl Fn(&Record) -> bool) -> usize {
        self.records.iter().filter(|r| pred(r)).count()
    }
}

/// The `*.msh` files of `dir`, sorted by name.
pub fn capture_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "msh"))
        .collect();
    paths.sort();
    paths
}

/// Decodes every `*.msh` file of `dir`, sorted by pid then name; panics on a decoding error.
pub fn captures(dir: &Path) -> Vec<Capture> {
    let mut caps: Vec<Capture> = capture_paths(dir).iter().map(|p| decode(p)).collect();
    caps.sort_by_key(|c| (c.header.pid, c.path.clone()));
    caps
}

/// Decodes one capture completely; panics (naming the file) when it does not decode.
pub fn decode(path: &Path) -> Capture {
    let f = std::fs::File::open(path).unwrap();
    let mut r = Reader::new(std::io::BufReader::new(f))
        .unwrap_or_else(|e| panic!("{}: header does not decode: {e}", path.display()));
    let mut records = Vec::new();
    for rec in &mut r {
        records.push(rec.unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    Capture {
        path: path.to_path_buf(),
        header: r.header().clone(),
        truncated: r.truncated(),
        chunks: r.chunks(),
        records,
    }
}

/// One Alloc record, flattened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alloc {
    pub t: u64,
    pub tid: u32,
    pub addr: u64,
    pub size: u64,
    pub stack: u64,
    pub kind: AllocKind,
    pub inherited: bool,
}

impl Alloc {
    /// The allocation an Alloc record describes.
    pub fn of(r: &Record) -> Option<Alloc> {
        match *r {
            Record::Alloc {
                t,
                tid,
                addr,
                size,
                stack,
                kind,
                inherited,
            } => Some(Alloc {
                t,
                tid,
                addr,
                size,
                stack,
                kind,
                inherited,
            }),
            _ => None,
        }
    }
}

/// Follows the allocations whose stack is in `stacks` through the Free records.
pub fn replay(cap: &Capture, stacks: &std::collections::HashSet<u64>) -> Replay {
    let mut r = Replay::default();
    for rec in &cap.records {
        if let Some(a) = Alloc::of(rec) {
            // A new allocation at a live address means a Free went missing: only possible
            // when the capture reports dropped records (the replay's users bound them).
            if let Some(old) = r.live.remove(&a.addr) {
                let drops = cap.end().map_or(0, |(_, d)| d.ring_full);
                assert!(
                    drops > 0,
                    "{}: allocation at {:#x} while {old:?} is still live (lost Free)",
                    cap.name(),
                    a.addr
                );
                r.lost_frees += 1;
            }
            if stacks.contains(&a.stack) {
                r.allocs.push(a);
                r.live.insert(a.addr, a);
            }
        } else if let Record::Free { addr, tid, .. } = *rec {
            if let Some(a) = r.live.remove(&addr) {
                r.freed += 1;
                if a.tid != tid {
                    r.cross_thread += 1;
                }
            }
        }
    }
    r
}

/// Allocations of some stacks followed through the capture, in record order.
#[derive(Debug, Default)]
pub struct Replay {
    /// Alloc records of those stacks (inherited ones included).
    pub allocs: Vec<Alloc>,
    /// How many of them a later Free released.
    pub freed: usize,
    /// How many of those frees came from another thread than the allocation.
    pub cross_thread: usize,
    /// Still live at the end of the capture: addr -> allocation.
    pub live: HashMap<u64, Alloc>,
    /// Allocations at an address still live: their Free was among the capture's ring-full drops.
    pub lost_frees: usize,
}

/// The one capture of a single-process run, checked complete.
pub fn only(caps: &[Capture]) -> &Capture {
    assert_eq!(
        caps.len(),
        1,
        "one process, one capture: {:?}",
        caps.iter().map(|c| c.name()).collect::<Vec<_>>()
    );
    caps[0].assert_complete();
    caps[0].assert_stacks_defined();
    &caps[0]
}

/// Runtime ranges of `sym` of `bin` in every place the capture saw `bin` loaded.
pub fn ranges(cap: &Capture, bin: &Path, sym: &str) -> Vec<(u64, u64)> {
    let want = std::fs::canonicalize(bin).unwrap();
    let r: Vec<_> = cap
        .modules()
        .iter()
        .filter(|m| std::fs::canonicalize(&m.path).is_ok_and(|p| p == want))
        .map(|m| sym_range(bin, m.base, sym))
        .collect();
    assert!(
        !r.is_empty(),
        "{}: {} is not in any module map",
        cap.name(),
        bin.display()
    );
    r
}
