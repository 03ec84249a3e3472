//! The plain HTML page at `/`: the processes of the template, each with links to its profiles.

use super::profiles::Loaded;
use crate::units;

/// `rows`: each capture's pid and file name, and what was read of it.
pub fn page(template: &str, rows: &[(u64, String, Result<Loaded, String>)]) -> String {
    let mut o = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>memshim serve</title>\
         <style>body{font-family:sans-serif;margin:1.5em}td,th{padding:.2em .8em;text-align:left}</style>\
         </head><body>\n",
    );
    o.push_str(&format!("<h1>memshim: {}</h1>\n", escape(template)));
    o.push_str(
        "<p>All processes merged: <a href=\"/debug/pprof/heap\">heap</a> \
         <a href=\"/debug/pprof/allocs\">allocs</a>. In use = leaked plus growing sites; a \
         process still running is read up to its last flush.</p>\n",
    );
    if rows.is_empty() {
        o.push_str("<p>No capture matches the template yet.</p>\n");
    } else {
        o.push_str("<table><tr><th>pid</th><th>command</th><th>capture</th><th>duration</th><th>state</th><th>in use</th><th>allocated</th><th>profiles</th></tr>\n");
    }
    for (pid, file, r) in rows {
        let cells = match r {
            Ok(l) => format!(
                "<td>{}</td><td>{}</td><td>{:.1} s</td><td>{}</td><td>{}</td><td>{}</td>",
                escape(&l.argv),
                escape(file),
                l.duration_s,
                if l.end == "truncated" {
                    "running (or killed)".to_string()
                } else {
                    escape(&l.end)
                },
                units::bytes(l.in_use_bytes),
                units::bytes(l.allocated_bytes),
            ),
            Err(why) => format!("<td colspan=\"6\">{}</td>", escape(why)),
        };
        o.push_str(&format!(
            "<tr><td>{pid}</td>{cells}<td><a href=\"/debug/pprof/heap?pid={pid}\">heap</a> <a href=\"/debug/pprof/allocs?pid={pid}\">allocs</a></td></tr>\n"
        ));
    }
    if !rows.is_empty() {
        o.push_str("</table>\n");
    }
    o.push_str("</body></html>\n");
    o
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
