//! The report for machines. The shape is fixed by issue 3 (keys may be added, none renamed):
//! `{"format_version":1, "process":{...}, "sampling":{...}, "totals":{...}, "leaks":[SITE],
//! "peak":[SITE], "allocations":[SITE]}`, SITE = `{"bytes_est","count_est","frames":[...]}`.

use serde_json::{json, Value};

use super::{Report, Row};
use crate::analysis::growth;
use crate::analysis::SHORT_LIVED_NS;
use crate::present::resolve::ARENA_NOTE;
use crate::present::view::View;

pub fn render(r: &Report, path: &str) -> Value {
    let mut v = render_events(r, path);
    if let Some(sn) = &r.summary.snapshots {
        v["snapshots"] = json!({
            "snapshots": sn.snapshots,
            "parts": sn.parts,
            "running": sn.running,
            "newest_snapshot_s": sn.newest_s,
            "interval_s": sn.interval_s,
            "counted_from_s": sn.counted_from_s,
            "since_s": sn.since_s,
            "until_s": sn.until_s,
            "note": SNAPSHOTS_NOTE,
        });
        v["live_now"] = r.live_now.iter().map(site).collect();
        if let Some(g) = v["growing"].as_array_mut() {
            for (row, gr) in g.iter_mut().zip(&r.growing) {
                row["growth_bytes_per_hour"] = int(gr.bytes_per_s * 3600.0);
            }
        }
    }
    v
}

/// What `snapshots` and `live_now` mean in the JSON of a snapshot capture.
pub const SNAPSHOTS_NOTE: &str = "a snapshot capture: a process that ended (a snapshot at exit) is reported as an event capture is; for one still running at its newest snapshot (running: true), live_now is that snapshot's live set, leaks are only growing sites";

fn render_events(r: &Report, path: &str) -> Value {
    let s = &r.summary;
    let mode = if s.rate == 0 { "all" } else { "sampled" };
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
            "rate_bytes": if s.rate == 0 { Value::Null } else { json!(s.rate) },
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
            "cgroup_memory_max_bytes": s.cgroup_memory_max,
            // The timeline's lines at the tick where the estimated live bytes were highest.
            "timeline_at_live_peak": s.tick_at_live_peak.map(|p| json!({
                "t_s": crate::units::secs(p.t),
                "rss_bytes": p.rss,
                "heap_in_use_bytes": p.heap_in_use,
                "live_bytes_est": int(p.live_est),
                "live_heap_bytes_est": int(p.live_heap_est),
            })),
            "records": s.records,
            "live_samples_at_end": s.live_samples,
            "distinct_stacks": s.distinct_stacks,
        },
        "marks": s.marks.iter().map(|m| json!({
            "t_s": crate::units::secs(m.t),
            "label": m.label,
            "thread": m.thread,
        })).collect::<Vec<_>>(),
        "leaks_at": "end",
        "leaks_at_s": s.duration_s,
        "leaks_at_note": LEAKS_NOTE,
        "leaked_bytes_est": int(s.leaks_bytes),
        "sections": {
            "leaked_bytes_est": int(s.leaked_bytes),
            "leaked": "live at the end of the capture, after the interpreter finalized and every library's destructor ran: nothing can free it any more",
            "growing_sites": r.growing.len(),
            "growing": growth::RULE,
            "held_at_exit_bytes_est": int(s.held_bytes),
            "held_at_exit": HELD_NOTE,
            "live_when_python_began_finalizing_bytes_est": if s.finalizing_s.is_some() { int(s.finalizing_live_bytes) } else { Value::Null },
            "kept_by_interpreter_bytes_est": int(s.interpreter_kept_bytes),
            "kept_by_loader_bytes_est": int(s.loader_kept_bytes),
            "kept": "live at the end but the interpreter's or the dynamic loader's (pymalloc arenas CPython does not unmap, ld.so's data for loaded libraries): not in the headline",
            "headline": "leaked_bytes_est and leaks = leaked sites plus growing sites (a site once, with the larger of its leaked bytes and its live bytes at the last growth checkpoint)",
        },
        "view": view_name(r.view),
        "pymalloc_arenas": {
            "at_leaks_point_bytes_est": int(r.arenas.at_end),
            "held_at_exit_bytes_est": int(r.arenas.held_at_exit),
            "at_peak_bytes_est": int(r.arenas.at_peak),
            "allocated_bytes_est": int(r.arenas.allocated),
            "sites": r.arenas.sites,
            "note": ARENA_NOTE,
            "ranking": "arena sites rank by their bytes like other sites and carry this note",
        },
        "leaks": r.leaks.iter().map(|row| {
            let mut v = site(row);
            v["leaked"] = json!(row.why.leaked);
            v["growing"] = json!(row.why.growing);
            v
        }).collect::<Vec<_>>(),
        "held_at_exit": r.held.iter().map(site).collect::<Vec<_>>(),
        "kept_at_exit": r.kept.iter().map(|row| {
            let mut v = site(row);
            v["owner"] = json!(if row.note == Some(crate::present::resolve::LOADER_NOTE) { "loader" } else { "interpreter" });
            v
        }).collect::<Vec<_>>(),
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
        v["pymalloc_arena"] =
            json!(note == ARENA_NOTE || note == crate::present::resolve::INTERPRETER_NOTE);
    }
    v
}

/// What the leaks ranking shows, in words (also in the text header).
pub const LEAKS_NOTE: &str = "leaks = leaked (live at the end, after the interpreter finalized and every library's destructor ran) plus growing sites; what finalization freed is held_at_exit, not leaked";

/// What the held-at-exit section shows.
pub const HELD_NOTE: &str = "live when Python began finalizing and freed by it (or by a library's destructor): memory held by live objects (module globals, caches, models), not leaked";

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
