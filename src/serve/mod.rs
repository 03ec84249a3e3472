//! `memshim serve`: the newest state of a template's captures over HTTP, as Go programs serve
//! their profiles (net/http/pprof), so Parca and Pyroscope (Grafana Alloy's `pyroscope.scrape`)
//! scrape a memshim'd service like a Go one:
//! - `GET /debug/pprof/heap`: the profile `memshim pprof` writes (gzipped protobuf, in use
//!   first), of every process merged, or of one with `?pid=N`;
//! - `GET /debug/pprof/allocs`: the same, allocated bytes first (Go's allocs profile);
//! - `GET /`: a plain HTML page listing the processes.
//!
//! Read-only: GET only, and only the template's captures (see [`template`]). One request at a
//! time; a profile is rebuilt only when its capture changed.

pub mod index;
pub mod profiles;
pub mod template;

use std::io::Cursor;

use tiny_http::{Header, Request, Response, Server};

use crate::error::{CliError, Result};
use crate::export::{pprof, pprof_merge};
use crate::present::view::View;
use profiles::Cache;
use template::Template;

type Reply = Response<Cursor<Vec<u8>>>;

pub struct Service {
    template: Template,
    cache: Cache,
    view: View,
}

/// Binds `addr` and says where it serves; the caller then runs [`Service::serve`].
pub fn bind(addr: &str) -> Result<Server> {
    Server::http(addr).map_err(|e| CliError::new(format!("--listen {addr}: {e}")))
}

impl Service {
    pub fn new(template: Template, view: View) -> Self {
        Service {
            template,
            cache: Cache::default(),
            view,
        }
    }

    /// Answers requests until the process is stopped.
    pub fn serve(&mut self, server: &Server) {
        for req in server.incoming_requests() {
            let reply = self.answer(&req);
            // A client that went away is its own business.
            let _ = req.respond(reply);
        }
    }

    fn answer(&mut self, req: &Request) -> Reply {
        if *req.method() != tiny_http::Method::Get {
            return text(405, "memshim serve is read-only: GET only\n")
                .with_header(header("Allow", "GET"));
        }
        let url = req.url();
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let pid = match pid_param(query) {
            Ok(p) => p,
            Err(why) => return text(400, &why),
        };
        match path {
            "/" | "/debug/pprof" | "/debug/pprof/" => self.index(),
            "/debug/pprof/heap" => self.profile(pid, "inuse_space"),
            "/debug/pprof/allocs" => self.profile(pid, "alloc_space"),
            _ => text(404, "not found: / lists the processes; /debug/pprof/heap and /debug/pprof/allocs serve their profiles (?pid=N for one)\n"),
        }
    }

    fn index(&mut self) -> Reply {
        let matches = self.template.matches();
        self.cache
            .retain(&matches.iter().map(|m| m.path.clone()).collect::<Vec<_>>());
        let rows: Vec<_> = matches
            .iter()
            .map(|m| {
                let file = m
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (m.pid, file, self.cache.get(&m.path, self.view))
            })
            .collect();
        Response::from_data(index::page(&self.template.describe(), &rows).into_bytes())
            .with_header(header("Content-Type", "text/html; charset=utf-8"))
    }

    /// The merged profile of the captures of `pid` (every process without it), with
    /// `default_type` shown first.
    fn profile(&mut self, pid: Option<u64>, default_type: &str) -> Reply {
        let matches: Vec<_> = self
            .template
            .matches()
            .into_iter()
            .filter(|m| pid.is_none_or(|p| m.pid == p))
            .collect();
        if matches.is_empty() {
            return match pid {
                Some(p) => text(
                    404,
                    &format!(
                        "no capture of pid {p} matches {}\n",
                        self.template.describe()
                    ),
                ),
                None => text(
                    404,
                    &format!("no capture matches {} yet\n", self.template.describe()),
                ),
            };
        }
        let mut profiles = vec![];
        let mut errors = vec![];
        for m in &matches {
            match self.cache.get(&m.path, self.view) {
                Ok(l) => profiles.push(l.profile),
                Err(why) => errors.push(why),
            }
        }
        if profiles.is_empty() {
            return text(
                503,
                &format!("nothing readable yet: {}\n", errors.join("; ")),
            );
        }
        let mut p = pprof_merge::merge(profiles);
        if let Some(i) = p.string_table.iter().position(|s| s == default_type) {
            p.default_sample_type = i as i64;
        }
        Response::from_data(pprof::encode(&p))
            .with_header(header("Content-Type", "application/octet-stream"))
            .with_header(header(
                "Content-Disposition",
                "attachment; filename=\"profile\"",
            ))
    }
}

/// The `pid` query parameter, if given: a number, nothing else (other parameters Go's handler
/// takes, `gc` and `debug`, are accepted and ignored).
fn pid_param(query: &str) -> std::result::Result<Option<u64>, String> {
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if k == "pid" {
            return v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("pid must be a process id (a number), not `{v}`\n"));
        }
    }
    Ok(None)
}

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("ASCII header")
}

fn text(code: u16, body: &str) -> Reply {
    Response::from_data(body.as_bytes().to_vec())
        .with_status_code(code)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

#[cfg(test)]
mod tests {
    use super::pid_param;

    #[test]
    fn the_pid_parameter_is_a_number_or_refused() {
        assert_eq!(pid_param(""), Ok(None));
        assert_eq!(pid_param("gc=1&pid=42"), Ok(Some(42)));
        assert!(pid_param("pid=../../etc/passwd").is_err());
        assert!(pid_param("pid=").is_err());
    }
}
