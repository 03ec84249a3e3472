//! `memshim diff A B`, `memshim diff A --at T1 --at T2`, `memshim diff A --at T`: what grew
//! and what shrank, by site (live bytes at B minus at A, as jeprof's `--base`).

use std::fmt::Write;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::analysis::live_at::{live_sets, LiveSet, Moment};
use crate::error::{CliError, Result};
use crate::present::fold::{stack_text, Style};
use crate::present::view::ViewArgs;
use crate::report::diff::{changes, Change};
use crate::report::json::int;
use crate::symbols::symbolize::Symbolizer;
use crate::units::{bytes, count};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Compare what was live at two moments: what grew and what shrank, by site.
///
/// Two captures (each at its end, or at `--at` times),
/// or two moments of one capture (`--at T1 --at T2`; one `--at T` compares T with the end).
/// Sites are matched by their frames; each is listed with its live bytes at A and at B.
#[derive(clap::Args)]
pub struct Args {
    /// The base capture (A), then optionally the capture to compare with it (B).
    #[arg(required = true, num_args = 1..=2)]
    captures: Vec<PathBuf>,
    /// A moment: seconds from the capture's start (`1.5`, `500ms`, `2m`) or `end`. With one
    /// capture: the first is A, the second B (the end when only one is given). With two: A's,
    /// then B's.
    #[arg(long, num_args = 1, action = clap::ArgAction::Append)]
    at: Vec<Moment>,
    /// `text` for a terminal, `json` for machines.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Sites shown in each of the two lists.
    #[arg(long, default_value = "10")]
    top: usize,
    #[command(flatten)]
    view: ViewArgs,
}

pub fn run(args: Args) -> Result<()> {
    if args.at.len() > 2 {
        return Err(CliError::new("diff takes at most two --at moments"));
    }
    let at = |i: usize| args.at.get(i).copied().unwrap_or(Moment::End);
    let view = args.view.view();
    let mut sym = Symbolizer::new();
    let (a_path, b_path) = (&args.captures[0], args.captures.get(1));
    let (out, cmp) = match b_path {
        None => {
            if args.at.is_empty() {
                return Err(CliError::new(
                    "diff of one capture needs --at: `--at T` (T against the end) or `--at T1 --at T2`",
                ));
            }
            let (an, sets) = live_sets(a_path, &[at(0), at(1)])?;
            let c = changes(&mut sym, (&an, &sets[0]), (&an, &sets[1]), view);
            (c, [(a_path, sets[0].clone()), (a_path, sets[1].clone())])
        }
        Some(b) => {
            let (aa, la) = live_sets(a_path, &[at(0)])?;
            let (ab, lb) = live_sets(b, &[at(1)])?;
            let c = changes(&mut sym, (&aa, &la[0]), (&ab, &lb[0]), view);
            (c, [(a_path, la[0].clone()), (b, lb[0].clone())])
        }
    };
    let grew: Vec<&Change> = out
        .iter()
        .filter(|c| c.bytes() > 0.0)
        .take(args.top)
        .collect();
    let shrank: Vec<&Change> = out
        .iter()
        .filter(|c| c.bytes() < 0.0)
        .take(args.top)
        .collect();
    let text = match args.format {
        Format::Text => text(&cmp, &grew, &shrank),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&json_of(&cmp, &grew, &shrank))
                .map_err(|e| CliError::new(e.to_string()))?;
            s.push('\n');
            s
        }
    };
    crate::cmd::output::print(&text)
}

fn side(p: &std::path::Path, l: &LiveSet) -> String {
    let when = match l.moment {
        Moment::End => format!("end, {:.2} s", crate::units::secs(l.t)),
        m => m.to_string(),
    };
    format!("{} at {when}", p.display())
}

fn text(cmp: &[(&PathBuf, LiveSet); 2], grew: &[&Change], shrank: &[&Change]) -> String {
    let [(pa, la), (pb, lb)] = cmp;
    let mut o = String::new();
    let _ = writeln!(o, "memshim diff: live bytes at B minus at A (estimates)");
    let _ = writeln!(o, "A          {}", side(pa, la));
    let _ = writeln!(o, "B          {}", side(pb, lb));
    let _ = writeln!(
        o,
        "live       {} -> {} ({})",
        bytes(la.total),
        bytes(lb.total),
        signed(lb.total - la.total)
    );
    for (title, list) in [("Grew", grew), ("Shrank", shrank)] {
        let _ = writeln!(o, "\n== {title} ==");
        if list.is_empty() {
            let _ = writeln!(o, "  (no site)");
        }
        for (i, c) in list.iter().enumerate() {
            let _ = writeln!(
                o,
                "{:>3}. {} ({} -> {}, {} allocations)",
                i + 1,
                signed(c.bytes()),
                bytes(c.a.0.max(0.0)),
                bytes(c.b.0.max(0.0)),
                signed_count(c.count())
            );
            for l in stack_text(&c.frames, &Style::default()) {
                let _ = writeln!(o, "       {l}");
            }
        }
    }
    o
}

fn signed(b: f64) -> String {
    if b >= 0.0 {
        format!("+{}", bytes(b))
    } else {
        bytes(b)
    }
}

fn signed_count(n: f64) -> String {
    if n >= 0.0 {
        format!("+{}", count(n))
    } else {
        format!("-{}", count(-n))
    }
}

fn json_of(cmp: &[(&PathBuf, LiveSet); 2], grew: &[&Change], shrank: &[&Change]) -> Value {
    let sidej = |(p, l): &(&PathBuf, LiveSet)| {
        json!({
            "capture": p.display().to_string(),
            "at": l.moment.to_string(),
            "t_s": crate::units::secs(l.t),
            "live_bytes_est": int(l.total),
        })
    };
    let site = |c: &&Change| {
        json!({
            "delta_bytes_est": sint(c.bytes()),
            "delta_count_est": sint(c.count()),
            "a_bytes_est": int(c.a.0),
            "b_bytes_est": int(c.b.0),
            "frames": c.frames,
        })
    };
    json!({
        "a": sidej(&cmp[0]),
        "b": sidej(&cmp[1]),
        "delta_bytes_est": sint(cmp[1].1.total - cmp[0].1.total),
        "grew": grew.iter().map(site).collect::<Vec<_>>(),
        "shrank": shrank.iter().map(site).collect::<Vec<_>>(),
    })
}

/// A signed estimate, rounded (a shrink is negative).
fn sint(x: f64) -> Value {
    json!(x.round() as i64)
}
