//! `memshim check CAPTURE... --max-leak SIZE --max-peak SIZE --max-growth RATE`: a gate for CI.
//! Exit 0 when every limit holds in every process, 1 with one line per broken limit naming the
//! top site, 2 on bad input.

use serde_json::{json, Value};

use crate::analysis::window::WindowArgs;
use crate::capture::inputs;
use crate::cmd::output;
use crate::error::{CliError, Result};
use crate::present::view::View;
use crate::report::limits::{error_bar, parse_rate, parse_size, rate_for};
use crate::report::{self, sections::Sections};
use crate::symbols::frames::{Frame, Kind};
use crate::symbols::symbolize::Symbolizer;
use crate::{present, units};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Fail (exit 1) when a capture's leaks, peak or growth pass a limit.
///
/// Leak is the report's headline figure (leaked plus growing); peak is the highest estimated
/// live total; growth is the growing sites' combined rate. Each broken limit prints one line
/// naming the top site, its native frame and its Python caller.
///
/// Sampled captures give estimates, each shown with its error bar: two standard deviations,
/// at most 2*sqrt(RATE*BYTES) (about 95% of runs land within it). To check a limit L to within
/// a fraction f of it, record at MEMSHIM_RATE <= f^2*L/4: for --max-leak 10MB, 10% needs a rate
/// of 26 KiB or less (`memshim run --rate 26K`), 20% needs 104 KiB; the default 512 KiB is
/// within 10% only for limits of 200 MiB and more. `--rate all` records every allocation:
/// exact, no error bar. A value within its error bar of the limit is reported as it falls,
/// with the bar, so rerun at a finer rate when it matters.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Capture files, or a template such as `memshim.%p.msh` (every process is checked).
    #[arg(required = true)]
    captures: Vec<String>,
    /// Largest headline leak allowed (leaked plus growing), e.g. 10MB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_leak: Option<f64>,
    /// Largest peak of estimated live bytes allowed, e.g. 200MB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_peak: Option<f64>,
    /// Largest combined growth rate of growing sites allowed, e.g. 1MB/s.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    max_growth: Option<f64>,
    /// `text` for people, `json` for machines.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    window: WindowArgs,
}

/// One limit applied to one process.
struct Verdict {
    limit: &'static str,
    max: f64,
    value: f64,
    error: f64,
    unit: &'static str,
    top: Vec<Frame>,
}

impl Verdict {
    fn passed(&self) -> bool {
        self.value <= self.max
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.max_leak.is_none() && args.max_peak.is_none() && args.max_growth.is_none() {
        return Err(CliError::new(
            "check needs at least one limit: --max-leak, --max-peak or --max-growth",
        ));
    }
    let paths = inputs::expand(&args.captures)?;
    let mut sym = Symbolizer::new();
    let mut checked = vec![];
    for p in &paths {
        let a = match crate::analysis::analyze_window(p, &args.window)? {
            Ok(a) => a,
            Err(why) if paths.len() > 1 => {
                eprintln!("memshim: warning: {why}; skipped");
                continue;
            }
            Err(why) => return Err(CliError::new(why)),
        };
        let r = report::build(&a, &mut sym, 1, View::Hybrid);
        let sec = Sections::of(&a, &mut sym);
        let rate = a.header.rate;
        let mut v = vec![];
        if let Some(max) = args.max_leak {
            let value = r.summary.leaks_bytes;
            v.push(Verdict {
                limit: "leak",
                max,
                value,
                error: error_bar(value, rate),
                unit: "",
                top: r
                    .leaks
                    .first()
                    .map(|s| s.frames.clone())
                    .unwrap_or_default(),
            });
        }
        if let Some(max) = args.max_peak {
            let value = r.summary.peak_bytes;
            v.push(Verdict {
                limit: "peak",
                max,
                value,
                error: error_bar(value, rate),
                unit: "",
                top: r.peak.first().map(|s| s.frames.clone()).unwrap_or_default(),
            });
        }
        if let Some(max) = args.max_growth {
            let value: f64 = sec.growing.values().map(|g| g.bytes_per_s).sum();
            let gained: f64 = sec.growing.values().map(|g| g.gained).sum();
            let secs = units::secs(a.last_t).max(1e-3);
            v.push(Verdict {
                limit: "growth",
                max,
                value,
                error: error_bar(gained, rate) / secs,
                unit: "/s",
                top: r
                    .growing
                    .first()
                    .map(|g| g.row.frames.clone())
                    .unwrap_or_default(),
            });
        }
        checked.push((p.display().to_string(), a.header.pid, rate, v));
    }
    if checked.is_empty() {
        return Err(CliError::new(format!(
            "none of the {} captures has anything readable (warnings above)",
            paths.len()
        )));
    }
    let passed = checked.iter().all(|c| c.3.iter().all(Verdict::passed));
    match args.format {
        Format::Json => output::print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&json_of(&checked, passed)).expect("json")
        ))?,
        Format::Text => output::print(&text_of(&checked, passed))?,
    }
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

type Checked = [(String, u32, u64, Vec<Verdict>)];

/// `64.7 MiB ± 2.1 MiB` (sampled) or `64.7 MiB` (exact).
fn amount(v: f64, error: f64, unit: &str, rate: u64) -> String {
    if rate == 0 {
        format!("{}{unit}", units::bytes(v))
    } else {
        format!("{}{unit} ± {}{unit}", units::bytes(v), units::bytes(error))
    }
}

/// The top site in one line: who allocated (the innermost frame shown) and its Python caller.
fn site_line(frames: &[Frame]) -> String {
    let shown = present::fold::shown(frames);
    let Some(first) = shown.first() else {
        return "no site".into();
    };
    let mut s = present::fold::label(first, false);
    if first.kind == Kind::Native {
        if let Some(py) = shown.iter().find(|f| f.kind == Kind::Python) {
            s.push_str(" called from ");
            s.push_str(&present::fold::label(py, false));
        }
    }
    s
}

fn text_of(checked: &Checked, passed: bool) -> String {
    let mut o = String::new();
    for (path, pid, rate, verdicts) in checked {
        for v in verdicts.iter().filter(|v| !v.passed()) {
            o.push_str(&format!(
                "memshim check: {} {} over its limit {}{}: {path} (pid {pid}); top site {}\n",
                v.limit,
                amount(v.value, v.error, v.unit, *rate),
                units::bytes(v.max),
                v.unit,
                site_line(&v.top)
            ));
        }
    }
    if passed {
        let all: Vec<String> = checked
            .iter()
            .flat_map(|(_, _, rate, vs)| {
                vs.iter().map(move |v| {
                    format!(
                        "{} {} <= {}{}",
                        v.limit,
                        amount(v.value, v.error, v.unit, *rate),
                        units::bytes(v.max),
                        v.unit
                    )
                })
            })
            .collect();
        o.push_str(&format!(
            "memshim check: every limit holds in {} {}: {}\n",
            checked.len(),
            if checked.len() == 1 {
                "process"
            } else {
                "processes"
            },
            all.join(", ")
        ));
    }
    o
}

fn json_of(checked: &Checked, passed: bool) -> Value {
    json!({
        "format_version": 1,
        "passed": passed,
        "processes": checked.iter().map(|(path, pid, rate, vs)| json!({
            "capture": path,
            "pid": pid,
            "mode": if *rate == 0 { "all" } else { "sampled" },
            "rate_bytes": if *rate == 0 { Value::Null } else { json!(rate) },
            "checks": vs.iter().map(|v| json!({
                "limit": v.limit,
                "unit": if v.unit.is_empty() { "bytes" } else { "bytes/s" },
                "max": v.max,
                "value_est": v.value,
                // Two standard deviations; 0 in `all` mode (exact).
                "error": v.error,
                "passed": v.passed(),
                // The rate at which this limit's error bar would be 10% of it.
                "rate_for_10_percent": if v.unit.is_empty() { json!(rate_for(v.max, 0.1).floor()) } else { Value::Null },
                "top_site": {
                    "line": site_line(&v.top),
                    "frames": v.top,
                },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
