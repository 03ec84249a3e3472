//! `memshim report CAPTURE... [--format text|json] [--top N]`: the summary and the rankings
//! (leaks, growing, peak, allocations) of each process, and a combined summary for several.

use std::path::PathBuf;

use serde_json::json;

use crate::analysis;
use crate::analysis::window::WindowArgs;
use crate::capture::inputs;
use crate::cmd::output;
use crate::error::{CliError, Result};
use crate::present::fold::{Frames, Style};
use crate::present::view::ViewArgs;
use crate::report;
use crate::report::json::int;
use crate::symbols::symbolize::Symbolizer;
use crate::units;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Report leaks, the peak and allocation churn of captured processes.
///
/// Leaks: sites still live when the capture ended (after the interpreter finalized and every
/// library's destructor ran: nothing can free them), plus sites whose live bytes grow steadily
/// (the rule is printed). Held at exit: what was live when Python began finalizing and was freed
/// by it (module globals, caches). Kept: what the interpreter and loader keep at exit. Peak: what was live when
/// the heap was highest. Allocations: sites by total bytes allocated, with how many were
/// short-lived. In sampled mode every number is an unbiased estimate; in `all` mode, exact.
#[derive(clap::Args)]
pub struct Args {
    /// Capture files, or a template such as `memshim.%p.msh` matching every process of a run.
    #[arg(required = true)]
    captures: Vec<String>,
    /// `text` for a terminal, `json` for machines.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Sites shown in each ranking (default: 3 in text, so that a process fits on a screen;
    /// 10 in JSON).
    #[arg(long)]
    top: Option<usize>,
    /// Frames shown per site in text output (innermost first), or `all`: every frame, none
    /// folded. By default the allocator's internals, the interpreter's call machinery and
    /// ctypes/libffi plumbing are folded into one counted line per run.
    #[arg(long, default_value = "6")]
    frames: Frames,
    /// Full function names and paths in text output (by default Rust and C++ names lose their
    /// generic and template arguments, and build directories are cut; JSON always has both).
    #[arg(long)]
    full_names: bool,
    /// Accepted for older scripts: leaks are always taken at the end of the capture now (what
    /// Python's finalization freed is its own section, held at exit).
    #[arg(long, value_enum, default_value = "auto")]
    #[allow(dead_code)]
    leaks_at: LeaksAtArg,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    window: WindowArgs,
    #[command(flatten)]
    times: crate::cmd::time_window::TimeArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeaksAtArg {
    Auto,
    End,
}

pub fn run(args: Args) -> Result<()> {
    let paths = inputs::expand(&args.captures)?;
    let times = args.times.window()?;
    let top = args.top.unwrap_or(match args.format {
        Format::Text => 3,
        Format::Json => 10,
    });
    let mut reports = vec![];
    let several = paths.len() > 1;
    // With several captures, the processes with nothing to say (no sampled allocation: a shell
    // wrapper, a process that exec'd at once) are counted, not shown.
    let mut quiet = vec![];
    for p in &paths {
        if several && std::fs::metadata(p).is_ok_and(|m| m.len() == 0) {
            // A process that exec'd or died before its first write: nothing to report.
            eprintln!("memshim: warning: {}: empty capture, skipped", p.display());
            continue;
        }
        let a = if several {
            match analysis::analyze_windows(p, &args.window, times)? {
                Ok(a) => a,
                Err(why) => {
                    eprintln!("memshim: warning: {why}; skipped");
                    continue;
                }
            }
        } else {
            analysis::analyze_windows(p, &args.window, times)?.map_err(CliError::new)?
        };
        // One symbolizer per capture: its caches are keyed by the capture's own module indices.
        let r = report::build(&a, &mut Symbolizer::new(), top, args.view.view());
        // Forked children with only what they inherited (a shell's `$(...)`) say nothing of their
        // own either: the parent's report has it.
        if several && a.allocations == 0.0 {
            quiet.push((p.clone(), r));
        } else {
            reports.push((p.clone(), r));
        }
    }
    if reports.is_empty() {
        // Not one process has anything to say: show them all rather than nothing.
        reports = std::mem::take(&mut quiet);
    }
    if reports.is_empty() {
        return Err(CliError::new(format!(
            "none of the {} captures has anything readable (warnings above)",
            paths.len()
        )));
    }
    let hidden = hidden_note(&quiet);
    match args.format {
        Format::Json => {
            let mut v: Vec<_> = reports
                .iter()
                .map(|(p, r)| report::json::render(r, &p.display().to_string()))
                .collect();
            let out = if v.len() == 1 && quiet.is_empty() {
                v.pop().expect("one")
            } else {
                json!({
                    "format_version": 1,
                    "combined": combined_json(&reports),
                    "processes": v,
                    "hidden": quiet.iter().map(|(p, r)| json!({
                        "path": p.display().to_string(),
                        "pid": r.summary.pid,
                        "exe": r.summary.exe,
                    })).collect::<Vec<_>>(),
                })
            };
            output::print(&format!(
                "{}\n",
                serde_json::to_string_pretty(&out).expect("json")
            ))
        }
        Format::Text => {
            let mut out = String::new();
            if reports.len() > 1 || !quiet.is_empty() {
                out.push_str(&combined_text(&reports, hidden.as_deref()));
            }
            for (p, r) in reports.iter_mut() {
                // What the interpreter and the loader keep is one header line by default, so
                // that a process fits a screen; `--top N` lists its sites too.
                // What finalization freed is mostly the interpreter's own import-time objects: its
                // largest site by default.
                if args.top.is_none() {
                    r.kept.clear();
                    r.held.truncate(1);
                }
                out.push_str(&report::text::render(
                    r,
                    &p.display().to_string(),
                    &Style {
                        frames: args.frames,
                        full_names: args.full_names,
                        fold: args.view.view() != crate::present::view::View::NativeOnly,
                    },
                ));
                out.push('\n');
            }
            output::print(&out)
        }
    }
}

type Reports = [(PathBuf, report::Report)];

fn combined_json(reports: &Reports) -> serde_json::Value {
    let sum = |f: &dyn Fn(&report::summary::Summary) -> f64| -> f64 {
        reports.iter().map(|(_, r)| f(&r.summary)).sum()
    };
    json!({
        "processes": reports.len(),
        "pids": reports.iter().map(|(_, r)| r.summary.pid).collect::<Vec<_>>(),
        "allocated_bytes_est": int(sum(&|s| s.allocated_bytes)),
        "allocations_est": int(sum(&|s| s.allocations)),
        "live_at_end_bytes_est": int(sum(&|s| s.live_at_end_bytes)),
        "sum_of_peaks_bytes": int(sum(&|s| s.peak_bytes)),
        "dropped_records": sum(&|s| s.dropped as f64),
    })
}

/// The one line saying which processes were hidden for having nothing to say.
fn hidden_note(quiet: &Reports) -> Option<String> {
    if quiet.is_empty() {
        return None;
    }
    let mut exes: Vec<&str> = quiet
        .iter()
        .map(|(_, r)| r.summary.exe.rsplit('/').next().unwrap_or(""))
        .collect();
    exes.sort_unstable();
    exes.dedup();
    const SHOWN: usize = 5;
    let mut pids: Vec<String> = quiet
        .iter()
        .take(SHOWN)
        .map(|(_, r)| r.summary.pid.to_string())
        .collect();
    if quiet.len() > SHOWN {
        pids.push(format!("and {} more", quiet.len() - SHOWN));
    }
    Some(format!(
        "{} more {} hidden, with no sampled allocation: {} (pid {})",
        quiet.len(),
        if quiet.len() == 1 {
            "process"
        } else {
            "processes"
        },
        exes.join(", "),
        pids.join(", ")
    ))
}

fn combined_text(reports: &Reports, hidden: Option<&str>) -> String {
    let mut o = format!(
        "memshim report: {} {}\n",
        reports.len(),
        if reports.len() == 1 {
            "process"
        } else {
            "processes"
        }
    );
    if let Some(h) = hidden {
        o.push_str(&format!("  {h}\n"));
    }
    for (p, r) in reports {
        let s = &r.summary;
        o.push_str(&format!(
            "  pid {:<8} {:>10} allocated, {:>10} peak, {:>10} live at end, {:.2} s, {}  ({})\n",
            s.pid,
            units::bytes(s.allocated_bytes),
            units::bytes(s.peak_bytes),
            units::bytes(s.live_at_end_bytes),
            s.duration_s,
            s.end,
            p.display()
        ));
    }
    let total: f64 = reports
        .iter()
        .map(|(_, r)| r.summary.live_at_end_bytes)
        .sum();
    let alloc: f64 = reports.iter().map(|(_, r)| r.summary.allocated_bytes).sum();
    o.push_str(&format!(
        "  all        {:>10} allocated, {:>10} live at end\n\n",
        units::bytes(alloc),
        units::bytes(total)
    ));
    o
}
