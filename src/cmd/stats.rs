//! `memshim stats CAPTURE...`: is this capture good? Header, records by kind, drops, duration,
//! and whether it ended cleanly or was truncated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memshim_format::{Drops, EndKind, Record};
use serde_json::json;

use crate::capture::load;
use crate::error::Result;
use crate::units;

/// Print a capture's header, its records counted by kind, drops, duration and how it ended.
#[derive(clap::Args)]
pub struct Args {
    /// Capture files (`memshim.<pid>.msh`).
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    /// Print one JSON object per capture (one per line) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
struct Counts {
    by_kind: BTreeMap<&'static str, u64>,
    drops: Drops,
    last_t: u64,
    end: Option<EndKind>,
    sampled_bytes: u64,
    inherited: u64,
}

pub fn run(args: Args) -> Result<()> {
    for path in &args.captures {
        one(path, args.json)?;
    }
    Ok(())
}

fn one(path: &Path, as_json: bool) -> Result<()> {
    let ((header, c), ending) = load::stream(
        path,
        |h| (h.clone(), Counts::default()),
        |(_, c), r| count(c, &r),
    )?;
    let total: u64 = c.by_kind.values().sum();
    let end = match (c.end, ending.truncated()) {
        (Some(EndKind::Exit), false) => "exit".to_string(),
        (Some(EndKind::QuickExit), false) => "_exit".to_string(),
        (Some(EndKind::Signal(s)), false) => format!("signal {s}"),
        (Some(EndKind::Exec), false) => "exec".to_string(),
        (None, false) => match &ending.stopped {
            Some(why) => load::stopped_early(why),
            None => "truncated".to_string(),
        },
        _ => "truncated".to_string(),
    };
    if as_json {
        let v = json!({
            "path": path.display().to_string(),
            "file_bytes": ending.file_len,
            "bytes_read": ending.bytes_read,
            "header": {
                "pid": header.pid, "ppid": header.ppid, "exe": header.exe, "argv": header.argv,
                "start_unix_ns": header.start_unix_ns, "rate": header.rate,
                "page_size": header.page_size, "stack_depth": header.stack_depth,
                "seed": header.seed, "forked_from": header.forked_from,
                "shim_version": header.shim_version,
            },
            "records": total,
            "by_kind": c.by_kind,
            "sampled_bytes": c.sampled_bytes,
            "inherited_allocs": c.inherited,
            "dropped": {"ring_full": c.drops.ring_full, "region_full": c.drops.region_full,
                        "total": c.drops.total()},
            "duration_s": units::secs(c.last_t),
            "ended": ending.ended,
            "truncated": ending.truncated(),
            "end": end,
        });
        println!("{v}");
        return Ok(());
    }
    let rate = if header.records_all() {
        "all (every allocation recorded)".to_string()
    } else {
        format!("sampled, rate {}", units::bytes(header.rate as f64))
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<10} {v}\n"));
    line(
        "capture",
        format!("{} ({} bytes)", path.display(), ending.file_len),
    );
    line("shim", header.shim_version.clone());
    line(
        "process",
        format!(
            "pid {} ppid {}{}",
            header.pid,
            header.ppid,
            header
                .forked_from
                .map(|p| format!(", forked from {p}"))
                .unwrap_or_default()
        ),
    );
    line("exe", header.exe.clone());
    line("argv", header.argv.join(" "));
    line("sampling", rate);
    line(
        "seed",
        header
            .seed
            .map(|s| s.to_string())
            .unwrap_or_else(|| "random".into()),
    );
    line("depth", format!("{} frames", header.stack_depth));
    line("duration", format!("{:.3} s", units::secs(c.last_t)));
    line("records", total.to_string());
    for (k, n) in &c.by_kind {
        line("", format!("{k:<10} {n}"));
    }
    line("sampled", units::bytes(c.sampled_bytes as f64));
    line(
        "dropped",
        format!(
            "{} (ring full {}, region full {})",
            c.drops.total(),
            c.drops.ring_full,
            c.drops.region_full
        ),
    );
    line("end", end);
    print!("{out}");
    Ok(())
}

fn count(c: &mut Counts, r: &Record) {
    let kind = match r {
        Record::Modules(_) => "modules",
        Record::Stack { .. } => "stack",
        Record::Alloc {
            t, size, inherited, ..
        } => {
            c.last_t = c.last_t.max(*t);
            c.sampled_bytes += size;
            c.inherited += *inherited as u64;
            "alloc"
        }
        Record::Free { t, .. } => {
            c.last_t = c.last_t.max(*t);
            "free"
        }
        Record::Munmap { t, .. } => {
            c.last_t = c.last_t.max(*t);
            "munmap"
        }
        Record::Thread { .. } => "thread",
        Record::Tick { t, dropped, .. } => {
            c.last_t = c.last_t.max(*t);
            c.drops = *dropped;
            "tick"
        }
        Record::PyCode(_) => "pycode",
        Record::Marker { t, .. } => {
            c.last_t = c.last_t.max(*t);
            "marker"
        }
        Record::End { t, how, dropped } => {
            c.last_t = c.last_t.max(*t);
            c.drops = *dropped;
            c.end = Some(*how);
            "end"
        }
        Record::Extension { .. } => "extension",
    };
    *c.by_kind.entry(kind).or_insert(0) += 1;
}
