//! Gzipped pprof profiles (github.com/google/pprof, proto/profile.proto), as a Go heap profile:
//! sample types `alloc_objects`, `alloc_space`, `inuse_objects`, `inuse_space` (in use = live
//! at the end of the capture), period `space`/bytes = the rate (mean bytes between samples). Mappings carry
//! build-ids, functions carry file and line, inlined calls are extra lines of one location, so
//! `go tool pprof`, Pyroscope and Parca read it without the binaries.
//!
//! The messages are the subset of profile.proto we write, declared with prost's derive (field
//! numbers as in profile.proto), so no protoc is needed at build time.

use std::collections::HashMap;
use std::io::Write;

use flate2::{write::GzEncoder, Compression};
use prost::Message;

use crate::analysis::Analysis;
use crate::capture::modules::Addr;
use crate::present::view::View;
use crate::symbols::frames::{Frame, Kind, Unit};
use crate::symbols::symbolize::Symbolizer;

#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

/// Interns strings, functions, mappings and locations while samples are added.
#[derive(Default)]
struct Builder {
    p: Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(String, String), u64>,
    mappings: HashMap<u32, u64>,
    native: HashMap<Unit, u64>,
    python: HashMap<Frame, u64>,
}

impl Builder {
    fn s(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.p.string_table.len() as i64;
        self.p.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn vt(&mut self, t: &str, unit: &str) -> ValueType {
        ValueType {
            r#type: self.s(t),
            unit: self.s(unit),
        }
    }

    fn function(&mut self, f: &Frame) -> u64 {
        let key = (f.name(), f.file.clone().unwrap_or_default());
        if let Some(&id) = self.functions.get(&key) {
            return id;
        }
        let id = self.p.function.len() as u64 + 1;
        let (shown, system) = pprof_names(f);
        let name = self.s(&shown);
        let system_name = self.s(&system);
        let filename = self.s(&key.1);
        self.p.function.push(Function {
            id,
            name,
            system_name,
            filename,
        });
        self.functions.insert(key, id);
        id
    }

    fn line(&mut self, f: &Frame) -> Line {
        Line {
            function_id: self.function(f),
            line: f.line.unwrap_or(0) as i64,
        }
    }

    fn mapping(&mut self, a: &Analysis, m: u32) -> u64 {
        if let Some(&id) = self.mappings.get(&m) {
            return id;
        }
        let module = &a.modules.modules[m as usize];
        let lo = module.segments.iter().map(|s| s.0).min().unwrap_or(0);
        let hi = module.segments.iter().map(|s| s.0 + s.1).max().unwrap_or(0);
        let id = self.p.mapping.len() as u64 + 1;
        let filename = self.s(&module.path);
        let hex: String = module.build_id.iter().map(|b| format!("{b:02x}")).collect();
        let build_id = self.s(&hex);
        self.p.mapping.push(Mapping {
            id,
            memory_start: module.base.wrapping_add(lo),
            memory_limit: module.base.wrapping_add(hi),
            file_offset: lo,
            filename,
            build_id,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        });
        self.mappings.insert(m, id);
        id
    }

    /// One location per native unit (an address, or the part of it left around the Python
    /// frames that replaced its eval-loop frame).
    fn native_location(&mut self, a: &Analysis, u: Unit, addr: Addr) -> u64 {
        if let Some(&id) = self.native.get(&u) {
            return id;
        }
        let id = self.p.location.len() as u64 + 1;
        let (mapping_id, address) = if addr.module == Addr::NO_MODULE {
            (0, addr.addr)
        } else {
            let base = a.modules.modules[addr.module as usize].base;
            (self.mapping(a, addr.module), base.wrapping_add(addr.addr))
        };
        let line = u.frames.iter().map(|f| self.line(f)).collect();
        self.p.location.push(Location {
            id,
            mapping_id,
            address,
            line,
        });
        self.native.insert(u, id);
        id
    }

    fn python_location(&mut self, f: Frame) -> u64 {
        if let Some(&id) = self.python.get(&f) {
            return id;
        }
        let id = self.p.location.len() as u64 + 1;
        let line = vec![self.line(&f)];
        self.p.location.push(Location {
            id,
            mapping_id: 0,
            address: 0,
            line,
        });
        self.python.insert(f, id);
        id
    }
}

/// A function's name as pprof shows it, and its system name. pprof simplifies a name only when
/// both are equal (it strips `<...>` and `(...)` from what looks like C++: every Python
/// `<module>` became `<unknown>`), so the shown name is ours and always differs from the system
/// name: Rust and C++ names shortened, Python's `<module>` frames named with their file
/// (`<module> (serve.py)`), the system name the full name with its file (`serve.py:<module>`).
fn pprof_names(f: &Frame) -> (String, String) {
    let full = f.name();
    let file = f.file.as_deref().unwrap_or("");
    let base = file.rsplit('/').next().unwrap_or(file);
    let shown = match f.kind {
        Kind::Python if full == "<module>" && !base.is_empty() => format!("<module> ({base})"),
        Kind::Python => full.clone(),
        Kind::Native => crate::present::fold::display_name(f),
    };
    let system = if base.is_empty() {
        format!("{full} ")
    } else {
        format!("{base}:{full}")
    };
    (shown, system)
}

/// A stack without the allocator's internals at its leaf (malloc, obmalloc, `PyMem_*`, Rust's
/// and C++'s allocation glue: [`crate::present::fold::Fold::Allocator`]), so that `-top` puts the
/// bytes on who allocated, as Go's heap profiles do (no `runtime.mallocgc`). A unit goes only
/// when every frame of it is the allocator's; one unit always stays.
fn without_allocator_leaf(units: Vec<Unit>) -> Vec<Unit> {
    let frames: Vec<Frame> = units.iter().flat_map(|u| u.frames.clone()).collect();
    let folds = crate::present::fold::folds(&frames);
    let mut at = 0;
    let mut drop = 0;
    for u in &units[..units.len().saturating_sub(1)] {
        let n = u.frames.len();
        let all_alloc = n > 0
            && folds[at..at + n]
                .iter()
                .all(|k| *k == Some(crate::present::fold::Fold::Allocator));
        if !all_alloc {
            break;
        }
        at += n;
        drop += 1;
    }
    units.into_iter().skip(drop).collect()
}

/// The profile, not yet encoded.
/// In use = the report's leaks (leaked: live at the end; plus growing sites, see
/// `report::sections`); held = held at exit (live when Python began finalizing, freed by it).
pub fn profile(a: &Analysis, sym: &mut Symbolizer, view: View) -> Profile {
    let mut b = Builder::default();
    b.s("");
    b.p.sample_type = vec![
        b.vt("alloc_objects", "count"),
        b.vt("alloc_space", "bytes"),
        b.vt("inuse_objects", "count"),
        b.vt("inuse_space", "bytes"),
        b.vt("held_objects", "count"),
        b.vt("held_space", "bytes"),
    ];
    b.p.period_type = Some(b.vt("space", "bytes"));
    b.p.period = a.header.rate.max(1) as i64;
    b.p.time_nanos = a.header.start_unix_ns as i64;
    b.p.duration_nanos = a.last_t as i64;
    let note = format!(
        "memshim capture of pid {}: {}",
        a.header.pid,
        a.header.argv.join(" ")
    );
    let c = b.s(&note);
    b.p.comment.push(c);
    if a.live_now() {
        let c = b.s(
            "a snapshot capture of a process still running: inuse_* = live at its newest snapshot",
        );
        b.p.comment.push(c);
    }
    let c = b.s("inuse_* = leaks: leaked (live at the end, after finalization and every destructor) plus growing sites; held_* = held at exit: live when Python began finalizing and freed by it");
    b.p.comment.push(c);
    // What `go tool pprof` shows first: bytes in use (the leaks), as for a Go heap profile.
    b.p.default_sample_type = b.s("inuse_space");
    // The main binary is the first mapping (pprof names it as the profile's file): the
    // executable, not whichever library a sample happened to reach first.
    if let Some(m) = a
        .modules
        .modules
        .iter()
        .position(|m| m.path == a.header.exe)
    {
        b.mapping(a, m as u32);
    }

    let sites: Vec<u32> = (0..a.sites.len() as u32)
        .filter(|&i| {
            let s = &a.sites[i as usize];
            s.alloc_count > 0.0
                || a.leaked(i).1 > 0.0
                || s.held_count > 0.0
                || (a.live_now() && s.live_count > 0.0)
        })
        .collect();
    let sec = crate::report::sections::Sections::of(a, sym);
    crate::present::resolve::prefetch(a, sym, sites.iter().copied());
    for i in sites {
        let site = &a.sites[i as usize];
        let units = without_allocator_leaf(crate::present::resolve::site_units(a, sym, i, view));
        let ids: Vec<u64> = units
            .into_iter()
            .map(|u| match u.addr {
                Some(addr) => b.native_location(a, u, addr),
                None => b.python_location(u.frames.into_iter().next().expect("one frame")),
            })
            .collect();
        // A process still running (a snapshot capture): what its newest snapshot has live.
        let (inuse_bytes, inuse_count) = if a.live_now() {
            (site.live_bytes, site.live_count)
        } else {
            sec.headline(a, i).0
        };
        let (held_bytes, held_count) = a.held_at_exit(i);
        let r = |x: f64| x.round().max(0.0) as i64;
        b.p.sample.push(Sample {
            location_id: ids,
            value: vec![
                r(site.alloc_count),
                r(site.alloc_bytes),
                r(inuse_count),
                r(inuse_bytes),
                r(held_count),
                r(held_bytes),
            ],
        });
    }
    b.p
}

/// The gzipped protobuf bytes.
pub fn encode(p: &Profile) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&p.encode_to_vec())
        .expect("writing to a Vec cannot fail");
    gz.finish().expect("writing to a Vec cannot fail")
}
