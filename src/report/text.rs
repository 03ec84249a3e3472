//! The report for a terminal: human-readable sizes, each site with its top frames.

use std::cell::RefCell;
use std::fmt::Write;

use super::{Report, Row};
use crate::analysis::growth;
use crate::analysis::SHORT_LIVED_NS;
use crate::present::fold::{self, stack_text, Style};
use crate::present::view::View;
use crate::symbols::frames::Frame;
use crate::units::{bytes, count};

pub fn render(r: &Report, path: &str, style: &Style) -> String {
    let frames = &Ctx {
        style,
        seen: RefCell::new(vec![]),
        section: RefCell::new(String::new()),
    };
    let s = &r.summary;
    let mut o = String::new();
    let exact = s.rate == 0;
    let est = if exact { "" } else { " (est.)" };
    let _ = writeln!(o, "memshim report: {path}");
    let forked = s
        .forked_from
        .map(|p| format!(", forked from {p}"))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "process    pid {} (ppid {}{forked}): {}",
        s.pid,
        s.ppid,
        s.argv.join(" ")
    );
    let _ = writeln!(o, "exe        {}", s.exe);
    let _ = writeln!(o, "duration   {:.2} s, ended: {}", s.duration_s, s.end);
    let running = s.snapshots.as_ref().is_some_and(|sn| sn.running);
    if let Some(sn) = &s.snapshots {
        snapshots_lines(&mut o, sn);
    }
    let sampling = if exact {
        "all: every allocation recorded, numbers are exact".to_string()
    } else {
        format!(
            "sampled, rate {}: numbers are unbiased estimates",
            bytes(s.rate as f64)
        )
    };
    let _ = writeln!(o, "sampling   {sampling}");
    if !s.marks.is_empty() {
        let marks: Vec<String> = s
            .marks
            .iter()
            .map(|m| format!("{} ({:.2} s)", m.label, crate::units::secs(m.t)))
            .collect();
        let _ = writeln!(o, "marks      {}", marks.join(", "));
    }
    let _ = writeln!(
        o,
        "allocated  {}{est} in {} allocations",
        bytes(s.allocated_bytes),
        count(s.allocations)
    );
    let _ = writeln!(
        o,
        "peak       {}{est} live at {:.2} s",
        bytes(s.peak_bytes),
        s.peak_time_s
    );
    if s.peak_rss > 0 {
        let _ = writeln!(
            o,
            "peak rss   {} at {:.2} s",
            bytes(s.peak_rss as f64),
            s.peak_rss_time_s
        );
    }
    if let Some(max) = s.cgroup_memory_max {
        let _ = writeln!(
            o,
            "mem limit  {} (cgroup memory limit: the OOM line); peak rss at {} of it",
            bytes(max as f64),
            crate::analysis::cgroup_limit::share(s.peak_rss, max)
        );
    }
    if running {
        let _ = writeln!(
            o,
            "live now   {}{est} live at the newest snapshot (the process had not ended: not leaks)",
            bytes(s.live_at_end_bytes)
        );
        let _ = writeln!(
            o,
            "leaks      {}{est}: growing sites (nothing is leaked while the process runs)",
            bytes(s.leaks_bytes)
        );
    } else {
        let _ = writeln!(o, "at end     {}{est} live", bytes(s.live_at_end_bytes));
        let _ = writeln!(
            o,
            "leaks      {}{est}: leaked {} (live at the end), plus growing sites",
            bytes(s.leaks_bytes),
            bytes(s.leaked_bytes)
        );
    }
    if let Some(t) = s.finalizing_s {
        let _ = writeln!(
            o,
            "held       {}{est} held at exit: live when Python began finalizing ({t:.2} s) and freed by it",
            bytes(s.held_bytes)
        );
    }
    if s.interpreter_kept_bytes + s.loader_kept_bytes > 0.5 {
        let _ = writeln!(
            o,
            "kept       {}{est} by the interpreter, {} by the loader at exit (not the program's leaks; --top N lists them)",
            bytes(s.interpreter_kept_bytes),
            bytes(s.loader_kept_bytes)
        );
    }
    if r.arenas.sites > 0 {
        let _ = writeln!(
            o,
            "pymalloc   {}{est} of Python object arenas at the end, {} held at exit, {} at the peak (one row in each ranking; run with --python-allocators for per-object detail)",
            bytes(r.arenas.at_end),
            bytes(r.arenas.held_at_exit),
            bytes(r.arenas.at_peak)
        );
    }
    match r.view {
        View::PythonOnly => {
            let _ = writeln!(
                o,
                "frames     Python only: the allocation's own native frames, then Python frames"
            );
        }
        View::NativeOnly => {
            let _ = writeln!(o, "frames     native only: no Python frames");
        }
        View::Hybrid => {}
    }
    let _ = writeln!(o, "dropped    {} records", s.dropped);
    let leaks_title = if running {
        "Leaks: growing (the process is still running: what it holds is under live now)"
    } else {
        "Leaks: leaked (live at the end: nothing can free it) and growing"
    };
    section(&mut o, leaks_title, &r.leaks, frames, |r| {
        match (r.why.leaked, r.why.growing) {
            (true, true) => ", leaked and growing".to_string(),
            (false, true) if running => ", growing".to_string(),
            (false, true) => ", growing (freed at exit)".to_string(),
            _ => ", leaked".to_string(),
        }
    });
    let _ = writeln!(
        o,
        "\n== Growing: live bytes rising steadily over the run =="
    );
    frames.section.replace("growing".into());
    if r.growing.is_empty() {
        let _ = writeln!(o, "  (none)");
    } else {
        let _ = writeln!(o, "how decided: {}", growth::RULE);
    }
    for (i, g) in r.growing.iter().enumerate() {
        row(
            &mut o,
            i,
            &g.row,
            frames,
            &if s.snapshots.is_some() {
                format!(
                    ", growing {}/s ({}/h)",
                    bytes(g.bytes_per_s),
                    bytes(g.bytes_per_s * 3600.0)
                )
            } else {
                format!(", growing {}/s", bytes(g.bytes_per_s))
            },
        );
    }
    if running {
        let title = format!(
            "Live now: live at the newest snapshot ({:.2} s); the process had not ended, so not leaks",
            s.snapshots.as_ref().and_then(|sn| sn.newest_s).unwrap_or(s.duration_s)
        );
        section(&mut o, &title, &r.live_now, frames, |_| String::new());
    }
    if let Some(t) = s.finalizing_s {
        let title = format!(
            "Held at exit: live when Python began finalizing ({t:.2} s), freed by finalization (module globals, caches): held, not leaked"
        );
        section(&mut o, &title, &r.held, frames, |_| String::new());
    }
    if !r.kept.is_empty() {
        section(
            &mut o,
            "Kept at exit by the interpreter and the loader (not the program's leaks)",
            &r.kept,
            frames,
            |_| String::new(),
        );
    }
    let title = format!(
        "Peak: live at {:.2} s, when the heap was highest",
        s.peak_time_s
    );
    section(&mut o, &title, &r.peak, frames, |_| String::new());
    let title = "Allocations: by total bytes allocated";
    section(&mut o, title, &r.allocations, frames, |r| {
        format!(
            ", {} short-lived (freed within {} ms)",
            count(r.short_lived),
            SHORT_LIVED_NS / 1_000_000
        )
    });
    o
}

/// The lines saying what a snapshot capture's run is.
fn snapshots_lines(o: &mut String, sn: &super::summary::SnapshotSummary) {
    let files = if sn.parts == 1 {
        String::new()
    } else {
        format!(" in {} files of one series", sn.parts)
    };
    let state = if sn.running {
        "still running at the newest snapshot: its live set is live now, not leaks; growth is the leak signal"
    } else {
        "ended: a snapshot at exit"
    };
    let _ = writeln!(
        o,
        "capture    snapshots: {}{files}, every {:.2} s; {state}",
        sn.snapshots, sn.interval_s
    );
    if sn.since_s.is_some() || sn.until_s.is_some() {
        let from = sn
            .since_s
            .map_or("the start".into(), |t| format!("{t:.2} s"));
        let to = sn.until_s.map_or("the end".into(), |t| format!("{t:.2} s"));
        let _ = writeln!(
            o,
            "window     snapshots from {from} to {to} (allocations: those made inside it)"
        );
    }
    if let Some(t) = sn.counted_from_s {
        let _ = writeln!(
            o,
            "counted    allocations from before {t:.2} s are not counted (recording was restarted then)"
        );
    }
}

fn section(
    o: &mut String,
    title: &str,
    rows: &[Row],
    frames: &Ctx,
    extra: impl Fn(&Row) -> String,
) {
    let _ = writeln!(o, "\n== {title} ==");
    let name = title.split(':').next().unwrap_or(title).to_lowercase();
    frames.section.replace(name);
    if rows.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    for (i, r) in rows.iter().enumerate() {
        row(o, i, r, frames, &extra(r));
    }
}

/// A stack as rows are compared: arena or not, and the frames shown by default.
type StackKey = (bool, Vec<Frame>);

/// The report's style, and the stacks already shown (a site met again in a later section is
/// one line: `same stack as leaks #1`).
struct Ctx<'a> {
    style: &'a Style,
    seen: RefCell<Vec<(String, StackKey)>>,
    section: RefCell<String>,
}

fn row(o: &mut String, i: usize, r: &Row, frames: &Ctx, extra: &str) {
    let n = r.count.round();
    let arena = r.note == Some(crate::present::resolve::ARENA_NOTE);
    let what = match (arena, n == 1.0) {
        (false, true) => "allocation",
        (false, false) => "allocations",
        (true, true) => {
            "pymalloc arena (Python objects; --python-allocators for per-object detail)"
        }
        (true, false) => {
            "pymalloc arenas (Python objects; --python-allocators for per-object detail)"
        }
    };
    let key = (r.note.is_some(), fold::shown(&r.frames));
    let before = frames
        .seen
        .borrow()
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(at, _)| at.clone());
    let head = format!(
        "{:>3}. {} in {} {what}{extra}",
        i + 1,
        bytes(r.bytes),
        count(r.count)
    );
    if let Some(at) = before {
        let _ = writeln!(o, "{head}: same stack as {at}");
        return;
    }
    let _ = writeln!(o, "{head}");
    match r.note {
        Some(crate::present::resolve::INTERPRETER_NOTE) => {
            let _ = writeln!(o, "       [the interpreter's: pymalloc arena kept at exit]");
        }
        Some(crate::present::resolve::LOADER_NOTE) => {
            let _ = writeln!(o, "       [the loader's: ld.so data for a loaded library]");
        }
        _ => {}
    }
    let at = format!("{} #{}", frames.section.borrow(), i + 1);
    frames.seen.borrow_mut().push((at, key));
    for l in stack_text(&r.frames, frames.style) {
        let _ = writeln!(o, "       {l}");
    }
}
