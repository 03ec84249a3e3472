//! The cgroup memory limit on the timeline: a labelled horizontal line next to RSS, so a reader
//! sees how close the process came to its OOM line. A limit far above everything drawn would
//! flatten the curves, so past [`FAR`] times the chart's top it is named in a note instead.

use std::fmt::Write;

use crate::units;

/// A limit at most this many times the chart's top is drawn to scale.
const FAR: f64 = 4.0;

pub const COLOR: &str = "#9467bd";

/// The y-axis top once the limit is in view (unchanged when there is none or it is far).
pub fn scale(y_max: f64, limit: Option<u64>) -> f64 {
    match limit {
        Some(l) if (l as f64) <= FAR * y_max => y_max.max(l as f64 * 1.05),
        _ => y_max,
    }
}

/// Draws the limit into the chart `o`: a dashed line from `x0` to `x1` at `y(limit)`, or a note
/// at `(x1, top)` when it is off the chart.
pub fn draw(
    o: &mut String,
    limit: u64,
    y_max: f64,
    (x0, x1, top): (f64, f64, f64),
    y: impl Fn(f64) -> f64,
) {
    let b = limit as f64;
    let label = format!("cgroup memory limit {}", units::bytes(b));
    if b <= y_max {
        let yl = y(b);
        let _ = writeln!(
            o,
            r#"<g id="cgroup-limit"><line x1="{x0}" x2="{x1}" y1="{yl:.1}" y2="{yl:.1}" stroke="{COLOR}" stroke-width="1.5" stroke-dasharray="8 4"><title>cgroup memory limit</title></line><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{COLOR}">{label}</text></g>"#,
            x1 - 4.0,
            yl - 5.0,
        );
    } else {
        let _ = writeln!(
            o,
            r#"<g id="cgroup-limit"><text x="{x1}" y="{:.1}" text-anchor="end" fill="{COLOR}"><title>cgroup memory limit</title>{label} (above the chart: {:.0}x its top)</text></g>"#,
            top - 6.0,
            b / y_max,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_limit_is_drawn_to_scale_and_a_far_one_named() {
        assert_eq!(scale(100.0, None), 100.0);
        assert_eq!(scale(100.0, Some(200)), 210.0);
        assert_eq!(scale(100.0, Some(50)), 100.0);
        assert_eq!(scale(100.0, Some(1000)), 100.0);
        let mut near = String::new();
        draw(&mut near, 200, 210.0, (0.0, 100.0, 10.0), |b| b);
        assert!(
            near.contains("<line") && near.contains("cgroup memory limit 200 B"),
            "{near}"
        );
        let mut far = String::new();
        draw(&mut far, 1000, 100.0, (0.0, 100.0, 10.0), |b| b);
        assert!(
            !far.contains("<line") && far.contains("above the chart: 10x"),
            "{far}"
        );
    }
}
