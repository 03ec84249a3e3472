//! Interactive flamegraph SVGs (inferno) of leaks, the peak, or all allocations, in bytes.

use std::collections::BTreeMap;

use inferno::flamegraph::{
    self,
    color::{BasicPalette, Color, PaletteMap},
    Direction, Options, Palette,
};

use super::Kind;
use crate::analysis::Analysis;
use crate::error::{CliError, Result};
use crate::present::fold;
use crate::present::resolve;
use crate::present::view::View;
use crate::report::sections::Sections;
use crate::symbols::frames::Kind as FrameKind;
use crate::symbols::symbolize::Symbolizer;

/// The leaf frame added under pymalloc arena sites.
pub const ARENA_LEAF: &str = "[pymalloc arena: Python objects]";

/// Which frames a flamegraph draws, and how it names them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// Every frame (by default the allocator's internals, the interpreter's call machinery and
    /// start-up chain, and ctypes/libffi plumbing are folded away: stacks start at `<module>`).
    pub all_frames: bool,
    /// Full Rust and C++ names.
    pub full_names: bool,
}

/// A frame's colour: Python frames blue, native frames warm, the shade from the name.
fn color(kind: FrameKind, name: &str) -> Color {
    let h = name
        .bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    let v = (h % 60) as u8;
    match kind {
        FrameKind::Python => Color {
            r: 80 + v / 2,
            g: 150 + v,
            b: 230,
        },
        FrameKind::Native => Color {
            r: 230,
            g: 120 + v,
            b: 40 + v / 3,
        },
    }
}

/// Folded stacks (`outer;...;inner bytes`), one line per distinct stack as drawn, and each
/// frame's colour.
pub struct Folded {
    pub lines: Vec<String>,
    pub colors: PaletteMap,
}

/// Folded stacks of `kind`. Leaks are the report's headline (leaked plus growing sites, see
/// `report::sections`), held is what finalization freed. pymalloc arena sites get a leaf frame
/// `[pymalloc arena: Python objects]`. Frames are named `function (file:line)`.
pub fn folded(a: &Analysis, sym: &mut Symbolizer, kind: Kind, view: View, style: Style) -> Folded {
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
    let mut colors = PaletteMap::default();
    colors.insert(
        ARENA_LEAF,
        Color {
            r: 170,
            g: 170,
            b: 170,
        },
    );
    colors.insert(
        "[no frames]",
        Color {
            r: 170,
            g: 170,
            b: 170,
        },
    );
    for i in sites {
        let mut frames = resolve::site_frames(a, sym, i, view);
        // The native-only view asks for the interpreter's own frames: nothing folds there.
        if !style.all_frames && view != View::NativeOnly {
            frames = fold::shown(&frames);
        }
        let mut names: Vec<String> = frames
            .iter()
            .rev()
            .map(|f| {
                let n = fold::graph_name(f, style.full_names).replace(';', ":");
                if colors.get(&n).is_none() {
                    colors.insert(&n, color(f.kind, &n));
                }
                n
            })
            .collect();
        if names.is_empty() {
            names.push("[no frames]".into());
        }
        if resolve::is_pymalloc_arena(a, sym, i) {
            names.push(ARENA_LEAF.into());
        }
        *merged.entry(names.join(";")).or_insert(0.0) += value(i);
    }
    let lines = merged
        .into_iter()
        .filter(|(_, v)| v.round() >= 1.0)
        .map(|(k, v)| format!("{k} {}", v.round() as u64))
        .collect();
    Folded { lines, colors }
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
    let mut f = folded(a, sym, kind, view, Style::default());
    svg_of(a, &mut f, kind, icicle)
}

/// The total bytes of folded stacks (the number ending each line).
pub fn folded_total(lines: &[String]) -> f64 {
    lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The SVG of a flamegraph of `lines`, the [`folded`] stacks of `kind`.
pub fn svg_of(a: &Analysis, f: &mut Folded, kind: Kind, icicle: bool) -> Result<Vec<u8>> {
    let lines = &f.lines;
    let mut opt = Options::default();
    let what = match kind {
        Kind::Leaks => "leaks (leaked: live at the end; and growing)",
        Kind::Held => "held at exit (live when Python began finalizing, freed by it)",
        _ => kind.name(),
    };
    opt.title = format!("memshim: {what} of pid {}", a.header.pid);
    opt.subtitle = Some(format!(
        "{}; blue: Python frames, orange: native; hover for file:line, click to zoom",
        match a.header.rate {
            0 => "all allocations recorded: exact bytes".to_string(),
            r => format!("sampled every {r} bytes on average: estimated bytes"),
        }
    ));
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
    opt.palette_map = Some(&mut f.colors);
    flamegraph::from_lines(&mut opt, f.lines.iter().map(String::as_str), &mut out)
        .map_err(|e| CliError::new(format!("flamegraph: {e}")))?;
    Ok(out)
}
