//! One self-contained HTML page: the summary, the timeline and the three flamegraphs, for people
//! who would rather look than read. Nothing is fetched: the timeline is inline SVG, and each
//! flamegraph is its own interactive SVG document in an iframe (data: URL), so the scripts of
//! the three inferno graphs do not collide.

use crate::analysis::Analysis;
use crate::error::Result;
use crate::export::{flamegraph, timeline, Kind};
use crate::present::view::View;
use crate::report;
use crate::symbols::symbolize::Symbolizer;

pub fn page(a: &Analysis, sym: &mut Symbolizer, path: &str, view: View) -> Result<String> {
    let r = report::build(a, sym, 10, view);
    let text = report::text::render(
        &r,
        path,
        &crate::present::fold::Style {
            fold: view != View::NativeOnly,
            ..Default::default()
        },
    );
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    o.push_str(&format!("<title>memshim: pid {}</title>\n", a.header.pid));
    o.push_str(
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:1300px}\
         pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}\
         iframe{width:100%;height:560px;border:1px solid #ccc}\
         nav a{margin-right:1em}</style></head><body>\n",
    );
    o.push_str(&format!(
        "<h1>memshim: {}</h1>\n",
        escape(&a.header.argv.join(" "))
    ));
    o.push_str("<nav><a href=\"#timeline\">Timeline</a><a href=\"#leaks\">Leaks</a><a href=\"#held\">Held at exit</a><a href=\"#peak\">Peak</a><a href=\"#allocations\">Allocations</a><a href=\"#report\">Report</a></nav>\n");
    o.push_str("<h2 id=\"timeline\">Memory over time</h2>\n");
    o.push_str(&timeline::svg(a));
    let mut kinds = vec![(Kind::Leaks, "Leaks: leaked (live at the end) and growing")];
    if a.finalizing_t.is_some() {
        kinds.push((
            Kind::Held,
            "Held at exit: live when Python began finalizing, freed by it (not leaked)",
        ));
    }
    kinds.extend([
        (Kind::Peak, "Peak: live when the heap was highest"),
        (Kind::Allocations, "Allocations: everything allocated"),
    ]);
    for (kind, title) in kinds {
        let svg = flamegraph::svg(a, sym, kind, true, view)?;
        o.push_str(&format!("<h2 id=\"{}\">{title}</h2>\n", kind.name()));
        o.push_str(&format!(
            "<iframe class=\"flamegraph\" title=\"{title}\" src=\"data:image/svg+xml;base64,{}\"></iframe>\n",
            base64(&svg)
        ));
    }
    o.push_str("<h2 id=\"report\">Report</h2>\n<pre>");
    o.push_str(&escape(&text));
    o.push_str("</pre>\n</body></html>\n");
    Ok(o)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Standard base64 (RFC 4648) with padding.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
