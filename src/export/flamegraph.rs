//! Interactive flamegraph SVGs (inferno) of leaks, the peak, or all allocations, in bytes.

use std::collections::BTreeMap;

use inferno::flamegraph::{self, color::BasicPalette, Direction, Options, Palette};

use super::Kind;
use crate::analysis::Analysis;
use crate::error::{CliError, Result};
use crate::report::sections::Sections;
use crate::resolve;
use crate::symbolize::Symbolizer;
use crate::view::View;

/// The leaf frame added under pymalloc arena sites.
pub const ARENA_LEAF: &str = "[pymalloc arena: Python objects]";

/// Folded stacks (`outer;...;inner bytes`), one line per distinct symbolized stack.
/// Leaks are the report's headline (leaked plus growing sites, see `report::sections`), held is
/// what finalization freed. pymalloc arena sites get a leaf frame `[pymalloc arena: Python
/// objects]`.
pub fn folded(a: &Analysis, sym: &mut Symbolizer, kind: Kind, view: View) -> Vec<String> {
    let sec = if kind == Kind::Leaks {
        Sections::of(a, sym)
    } else {
        Sections::default()
    };
    let value = |i: u32| {
        let s = &a.sites[i as usize];
        match kind {
            Kind::Leaks => sec.headline(a, i).0 .0,
            Kind::Held => a.held_at_exit(i).0,
            Kind::Peak => s.at_peak().0,
            Kind::Allocations => s.alloc_bytes,
        }
    };
    let sites: Vec<u32> = (0..a.sites.len() as u32)
        .filter(|&i| value(i) >= 0.5)
        .collect();
    resolve::prefetch(a, sym, sites.iter().copied());
    let mut merged: BTreeMap<String, f64> = BTreeMap::new();
    for i in sites {
        let frames = resolve::site_frames(a, sym, i, view);
        let mut names: Vec<String> = frames
            .iter()
            .rev()
            .map(|f| f.name().replace(';', ":"))
            .collect();
        if names.is_empty() {
            names.push("[no frames]".into());
        }
        if resolve::is_pymalloc_arena(a, sym, i) {
            names.push(ARENA_LEAF.into());
        }
        *merged.entry(names.join(";")).or_insert(0.0) += value(i);
    }
    merged
        .into_iter()
        .filter(|(_, v)| v.round() >= 1.0)
        .map(|(k, v)| format!("{k} {}", v.round() as u64))
        .collect()
}

/// The SVG of a flamegraph; an empty profile gives a page that says so. `icicle` draws the root
/// at the top (the HTML page does, so the widest frames show without scrolling).
pub fn svg(
    a: &Analysis,
    sym: &mut Symbolizer,
    kind: Kind,
    icicle: bool,
    view: View,
) -> Result<Vec<u8>> {
    svg_of(a, &folded(a, sym, kind, view), kind, icicle)
}

/// The total bytes of folded stacks (the number ending each line).
pub fn folded_total(lines: &[String]) -> f64 {
    lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The SVG of a flamegraph of `lines`, the [`folded`] stacks of `kind`.
pub fn svg_of(a: &Analysis, lines: &[String], kind: Kind, icicle: bool) -> Result<Vec<u8>> {
    let mut opt = Options::default();
    let what = match kind {
        Kind::Leaks => "leaks (leaked: live at the end; and growing)",
        Kind::Held => "held at exit (live when Python began finalizing, freed by it)",
        _ => kind.name(),
    };
    opt.title = format!("memshim: {what} of pid {}", a.header.pid);
    opt.subtitle = Some(match a.header.sample_interval {
        0 => "all allocations recorded: exact bytes".into(),
        r => format!("sampled every {r} bytes on average: estimated bytes"),
    });
    opt.count_name = "bytes".into();
    opt.name_type = "Function:".into();
    opt.colors = Palette::Basic(BasicPalette::Mem);
    opt.deterministic = true;
    opt.direction = if icicle {
        Direction::Inverted
    } else {
        Direction::Straight
    };
    let mut out = Vec::new();
    if lines.is_empty() {
        // inferno refuses an empty profile: say it in an SVG of our own.
        let msg = format!("memshim: no {} in this capture", kind.name());
        out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\"><text x=\"10\" y=\"25\">{msg}</text></svg>\n"
        )
        .into_bytes();
        return Ok(out);
    }
    flamegraph::from_lines(&mut opt, lines.iter().map(String::as_str), &mut out)
        .map_err(|e| CliError::new(format!("flamegraph: {e}")))?;
    Ok(out)
}
