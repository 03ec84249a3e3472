//! Memory over time as an SVG line chart, like mprof's plot: RSS, the allocator's heap in use,
//! and the estimated live bytes from the samples, with the peak marked.

use std::fmt::Write;

use crate::analysis::Analysis;
use crate::units;

const W: f64 = 960.0;
const H: f64 = 500.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
/// Room for the time axis and, under it, the legend: one line per series saying what it is.
const BOTTOM: f64 = 110.0;

struct Series<'a> {
    name: &'a str,
    /// What the line means, in the legend.
    means: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

/// The estimated live bytes at each tick, plus the peak itself (it may fall between ticks)
/// and the end.
fn live_points(a: &Analysis) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = a
        .ticks
        .points
        .iter()
        .map(|p| (units::secs(p.t), p.live_est))
        .collect();
    if a.peak_bytes > 0.0 {
        v.push((units::secs(a.peak_t), a.peak_bytes));
    }
    v.push((units::secs(a.last_t), a.live_total.max(0.0)));
    v.sort_by(|x, y| x.0.total_cmp(&y.0));
    v
}

/// The chart as a standalone SVG document.
pub fn svg(a: &Analysis) -> String {
    let pts = &a.ticks.points;
    let xs = |p: &crate::analysis::ticks::Point| units::secs(p.t);
    let mut series = vec![
        Series {
            name: "RSS",
            means: "resident memory (kernel): pages touched; memory allocated but never written is not resident, so RSS can sit below the heap",
            color: "#1f77b4",
            points: pts.iter().map(|p| (xs(p), p.rss as f64)).collect(),
        },
        Series {
            name: "heap in use (allocator)",
            means: "bytes malloc'd, not freed: glibc's count (mallinfo2, read at flushes: a flat stretch holds the last reading) plus the blocks the shim's region serves",
            color: "#2ca02c",
            // 0: not read (the shim stops reading a heap whose reading stalls the process).
            points: pts
                .iter()
                .filter(|p| p.heap_in_use > 0)
                .map(|p| (xs(p), p.heap_in_use as f64))
                .collect(),
        },
        Series {
            name: "live (from samples)",
            means: "memshim's estimate of bytes allocated and not freed (malloc and mmap): what the reports rank",
            color: "#ff7f0e",
            points: live_points(a),
        },
    ];
    series.retain(|s| s.points.iter().any(|&(_, y)| y > 0.0));
    let peak_t = units::secs(a.peak_t);
    let t_max = units::secs(a.last_t)
        .max(pts.last().map(xs).unwrap_or(0.0))
        .max(1e-3);
    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(a.peak_bytes, f64::max)
        .max(1.0)
        * 1.05;
    let limit = crate::analysis::cgroup_limit::of(&a.header);
    let y_max = super::timeline_limit::scale(y_max, limit);
    let x = |t: f64| LEFT + (W - LEFT - RIGHT) * t / t_max;
    let y = |b: f64| H - BOTTOM - (H - TOP - BOTTOM) * b / y_max;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="memshim-timeline" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{LEFT}" y="22" font-size="16">memshim: memory over time, pid {} (peak {} at {:.2} s)</text>"#,
        a.header.pid,
        units::bytes(a.peak_bytes),
        peak_t
    );
    // Axes and grid; enough decimals that the time labels differ.
    let prec = if t_max >= 10.0 {
        0
    } else if t_max >= 1.0 {
        1
    } else {
        3
    };
    for i in 0..=5 {
        let b = y_max * i as f64 / 5.0;
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y(b) + 4.0,
            units::bytes(b),
            y = y(b)
        );
        let t = t_max * i as f64 / 5.0;
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:.prec$} s</text>"#,
            x(t),
            H - BOTTOM + 18.0,
            prec = prec
        );
    }
    let _ = writeln!(
        o,
        r#"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="black"/><line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="black"/>"#,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    if series.is_empty() {
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}">no timeline data (no Tick records)</text>"#,
            LEFT + 20.0,
            H / 2.0
        );
    }
    for (k, s) in series.iter().enumerate() {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(t, b)| format!("{:.1},{:.1}", x(t), y(b)))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline class="series" fill="none" stroke="{}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#,
            s.color,
            path.join(" "),
            s.name
        );
        if s.points.len() <= 400 {
            // Each reading drawn: a short run shows how many there are.
            for &(t, b) in &s.points {
                let _ = write!(
                    o,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="{}"/>"#,
                    x(t),
                    y(b),
                    s.color
                );
            }
            o.push('\n');
        }
        let ly = H - BOTTOM + 44.0 + 17.0 * k as f64;
        let _ = writeln!(
            o,
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{}"/><text x="{}" y="{}" font-size="11"><tspan font-weight="bold">{}</tspan>: {} ({} readings)</text>"#,
            LEFT,
            ly - 5.0,
            s.color,
            LEFT + 20.0,
            ly,
            s.name,
            s.means,
            s.points.len()
        );
    }
    if let Some(l) = limit {
        super::timeline_limit::draw(&mut o, l, y_max, (LEFT, W - RIGHT, TOP), y);
    }
    // The program's marks (`memshim.mark`): a thin line each, labelled at the top, staggered so
    // that marks close together stay readable.
    for (k, m) in a.marks.iter().enumerate() {
        let mx = x(units::secs(m.t));
        let _ = writeln!(
            o,
            r##"<g class="mark"><line x1="{mx:.1}" x2="{mx:.1}" y1="{TOP}" y2="{}" stroke="#7f7f7f" stroke-dasharray="2 2"/><text x="{:.1}" y="{}" font-size="11" fill="#555">{}</text><title>mark "{}" at {:.3} s, thread {}</title></g>"##,
            H - BOTTOM,
            mx + 3.0,
            TOP + 26.0 + 13.0 * (k % 4) as f64,
            xml_escape(&m.label),
            xml_escape(&m.label),
            units::secs(m.t),
            m.thread
        );
    }
    // The peak.
    let px = x(peak_t);
    // Keep the label inside the chart: on the left of the line near the right edge.
    let (lx, anchor) = if px > W - 260.0 {
        (px - 6.0, "end")
    } else {
        (px + 6.0, "start")
    };
    let _ = writeln!(
        o,
        r##"<g id="peak"><line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{}" stroke="#d62728" stroke-dasharray="4 3"/><circle cx="{px:.1}" cy="{:.1}" r="4" fill="#d62728"/><text x="{lx:.1}" y="{}" text-anchor="{anchor}" fill="#d62728">peak {} at {:.2} s</text></g>"##,
        H - BOTTOM,
        y(a.peak_bytes),
        TOP + 12.0,
        units::bytes(a.peak_bytes),
        peak_t,
    );
    o.push_str("</svg>\n");
    o
}

/// Text as SVG character data.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
