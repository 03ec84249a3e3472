//! The report for machines. The shape is fixed by issue 3 (keys may be added, none renamed):
//! `{"format_version":1, "process":{...}, "sampling":{...}, "totals":{...}, "leaks":[SITE],
//! "peak":[SITE], "allocations":[SITE]}`, SITE = `{"bytes_est","count_est","frames":[...]}`.

use serde_json::{json, Value};

use super::{Report, Row};
use crate::analysis::SHORT_LIVED_NS;
use crate::growth;
use crate::resolve::ARENA_NOTE;
use crate::view::View;

pub fn render(r: &Report, path: &str) -> Value {
    let s = &r.summary;
    let mode = if s.interval == 0 { "all" } else { "sampled" };
    json!({
        "format_version": 1,
        "capture": path,
        "process": {
            "pid": s.pid,
            "ppid": s.ppid,
            "forked_from": s.forked_from,
            "exe": s.exe,
            "argv": s.argv,
            "duration_s": s.duration_s,
            "end": s.end,
            "python_finalizing_s": s.finalizing_s,
        },
        "sampling": {
            "mode": mode,
            "mean_interval_bytes": if s.interval == 0 { Value::Null } else { json!(s.interval) },
        },
        "totals": {
            "allocated_bytes_est": int(s.allocated_bytes),
            "allocations_est": int(s.allocations),
            "peak_heap_bytes": int(s.peak_bytes),
            "peak_time_s": s.peak_time_s,
            "live_at_end_bytes_est": int(s.live_at_end_bytes),
            "dropped_records": s.dropped,
            "peak_rss_bytes": s.peak_rss,
            "peak_rss_time_s": s.peak_rss_time_s,
            "peak_heap_in_use_bytes": s.peak_heap_in_use,
            "records": s.records,
            "live_samples_at_end": s.live_samples,
            "distinct_stacks": s.distinct_stacks,
        },
        "leaks_at": s.leaks_at,
        "leaks_at_s": if s.leaks_at == "python_finalizing" { json!(s.finalizing_s) } else { json!(s.duration_s) },
        "leaks_at_note": leaks_note(s.leaks_at),
        "leaked_bytes_est": int(s.leaked_bytes),
        "view": view_name(r.view),
        "pymalloc_arenas": {
            "at_leaks_point_bytes_est": int(r.arenas.at_leaks_point),
            "at_peak_bytes_est": int(r.arenas.at_peak),
            "allocated_bytes_est": int(r.arenas.allocated),
            "sites": r.arenas.sites,
            "note": ARENA_NOTE,
            "ranking": "arena sites rank by their bytes like other sites and carry this note",
        },
        "leaks": r.leaks.iter().map(site).collect::<Vec<_>>(),
        "growing": r.growing.iter().map(|g| {
            let mut v = site(&g.row);
            v["growth_bytes_per_s"] = int(g.bytes_per_s);
            v["gained_bytes_est"] = int(g.gained);
            v
        }).collect::<Vec<_>>(),
        "growing_rule": growth::RULE,
        "peak": r.peak.iter().map(site).collect::<Vec<_>>(),
        "allocations": r.allocations.iter().map(|row| {
            let mut v = site(row);
            v["short_lived_count_est"] = int(row.short_lived);
            v
        }).collect::<Vec<_>>(),
        "short_lived_ns": SHORT_LIVED_NS,
    })
}

fn site(r: &Row) -> Value {
    let mut v = json!({
        "bytes_est": int(r.bytes),
        "count_est": int(r.count),
        "frames": r.frames,
    });
    if let Some(note) = r.note {
        v["note"] = json!(note);
        v["pymalloc_arena"] = json!(true);
    }
    v
}

/// What the leaks ranking shows, in words (also in the text header).
pub fn leaks_note(leaks_at: &str) -> &'static str {
    if leaks_at == "python_finalizing" {
        "live when the Python interpreter began finalizing (Py_FinalizeEx): module globals and caches are freed after this, so live-at-exit would hide Python-level leaks"
    } else {
        "live at the end of the capture"
    }
}

pub fn view_name(v: View) -> &'static str {
    match v {
        View::Hybrid => "hybrid",
        View::PythonOnly => "python_only",
        View::NativeOnly => "native_only",
    }
}

/// An estimate as a JSON integer (rounded; estimates are never negative).
pub fn int(x: f64) -> Value {
    json!(x.round().max(0.0) as u64)
}
