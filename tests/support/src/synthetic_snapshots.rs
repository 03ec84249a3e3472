//! Synthetic snapshot captures (`MEMSHIM_MODE=snapshots`) whose stacks point into
//! tests/fixtures/cli/sym_target.c, compiled (see [`crate::synthetic`]): the header that says
//! so, the stacks, and snapshots built from per-site (live, allocated) bytes.

use memshim_format::snapshot::{
    Cause, SiteCounters, Snapshot, EXTRA_CAPTURE, EXTRA_INTERVAL_NS, EXTRA_PART, EXTRA_SERIES,
};
use memshim_format::Header;

use crate::synthetic::{header, module_map, ret, stack, Fixture, SyntheticCapture, SHIM};
use crate::units::MIB;

/// Sampling rate of the synthetic snapshot captures: 0, so counts are exact (1 MiB blocks).
pub const RATE: u64 = 0;

/// The header of part `part` of series `series`, snapshots every `interval_ns`.
pub fn snapshot_header(series: &str, part: u64, interval_ns: u64) -> Header {
    let mut h = header(RATE);
    h.extra = vec![
        (EXTRA_CAPTURE.into(), "snapshots".into()),
        (EXTRA_SERIES.into(), series.into()),
        (EXTRA_PART.into(), part.to_string()),
        (EXTRA_INTERVAL_NS.into(), interval_ns.to_string()),
    ];
    h
}

/// Stack ids of the fixture's functions in [`snapshot_file`]'s captures.
pub const LEAKY: u64 = 1;
pub const CLEAN: u64 = 2;
pub const PEAK: u64 = 3;

/// A file of a series: header, the module map and the fixture's three stacks (ids [`LEAKY`],
/// [`CLEAN`], [`PEAK`]); push snapshots with [`push_snapshot`].
pub fn snapshot_file(f: &Fixture, h: &Header, build_id: Vec<u8>) -> SyntheticCapture {
    let mut c = SyntheticCapture::new(h);
    c.push(module_map(f, build_id));
    let main = ret(f, "main");
    c.push(stack(LEAKY, &[SHIM + 0x100, ret(f, "leaky_alloc"), main]));
    c.push(stack(CLEAN, &[SHIM + 0x100, ret(f, "clean_alloc"), main]));
    c.push(stack(PEAK, &[SHIM + 0x100, ret(f, "peak_fn"), main]));
    c
}

/// One site of a snapshot, in MiB blocks: `live` MiB live, `alloc` MiB allocated since the
/// start, `high` MiB live at the highest heap since the previous snapshot.
pub fn site(stack: u64, live: u64, alloc: u64, high: u64) -> SiteCounters {
    SiteCounters {
        stack,
        live_bytes: live * MIB,
        live_count: live,
        alloc_bytes: alloc * MIB,
        alloc_count: alloc,
        high_bytes: high * MIB,
        high_count: high,
    }
}

/// Appends a snapshot at `t_s` seconds of `sites` (the heap's totals are their sums) in a
/// chunk of its own, as the writer flushes one.
pub fn push_snapshot(
    c: &mut SyntheticCapture,
    t_s: u64,
    seq: u64,
    cause: Cause,
    complete: bool,
    sites: Vec<SiteCounters>,
) {
    let t = t_s * 1_000_000_000;
    let s = Snapshot {
        t,
        seq,
        cause,
        complete,
        live_bytes: sites.iter().map(|s| s.live_bytes).sum(),
        high_bytes: sites.iter().map(|s| s.high_bytes).sum(),
        high_t: t,
        counted_from: 0,
        sites,
    };
    c.push(s.to_record());
    c.flush();
}
