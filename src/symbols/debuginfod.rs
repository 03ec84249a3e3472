//! A debuginfod client (the protocol elfutils serves): `GET URL/buildid/HEX/debuginfo`, then
//! `/executable`, for each server of `DEBUGINFOD_URLS` (space-separated) in turn. What a server
//! sends is kept in a cache laid out as elfutils' own (`CACHE/HEX/debuginfo`,
//! `CACHE/HEX/executable`), under `$XDG_CACHE_HOME/memshim/debuginfod` or
//! `~/.cache/memshim/debuginfod`, and used only if its build-id is the one asked for.
//!
//! A server that cannot be reached, times out or answers with an error is said in one warning
//! line and not asked again during the run; "not found" (404) is an answer, not a failure.
//! Each request gives up after `DEBUGINFOD_TIMEOUT` seconds (elfutils' variable; 10 s here by
//! default). Plain HTTP only: this build has no TLS, so an `https://` server is named in the
//! warning line and skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::hex;

/// Seconds a request may take when `DEBUGINFOD_TIMEOUT` does not say.
const DEFAULT_TIMEOUT_S: u64 = 10;
/// The largest file taken from a server (a debug file of a big library is a few hundred MiB).
const MAX_BYTES: u64 = 4 << 30;

/// The two kinds of file a server has per build-id, preferred first.
pub const KINDS: [&str; 2] = ["debuginfo", "executable"];

pub struct Client {
    servers: Vec<Server>,
    cache: Option<PathBuf>,
    agent: ureq::Agent,
}

struct Server {
    url: String,
    /// Failed once: not asked again.
    down: bool,
}

/// Servers that failed in this run, across clients (several commands' symbolizers): each is
/// warned about once.
static DOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn known_down(url: &str) -> bool {
    DOWN.lock().is_ok_and(|d| d.iter().any(|u| u == url))
}

impl Client {
    /// The servers of `DEBUGINFOD_URLS`, or None when it names none.
    pub fn from_env() -> Option<Client> {
        let urls = std::env::var("DEBUGINFOD_URLS").ok()?;
        let servers: Vec<Server> = urls
            .split_whitespace()
            .map(|u| u.trim_end_matches('/').to_string())
            .map(|url| Server {
                down: known_down(&url),
                url,
            })
            .collect();
        if servers.is_empty() {
            return None;
        }
        let timeout = std::env::var("DEBUGINFOD_TIMEOUT")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|&s: &u64| s > 0)
            .unwrap_or(DEFAULT_TIMEOUT_S);
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(timeout)))
            .http_status_as_error(false)
            .user_agent(concat!("memshim/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Some(Client {
            servers,
            cache: cache_dir(),
            agent,
        })
    }

    /// A file of `kind` for `build_id`: from the cache, else from the first server that has it.
    pub fn fetch(&mut self, build_id: &[u8], kind: &str) -> Option<PathBuf> {
        let cache = self.cache.clone()?;
        let h = hex(build_id);
        let dest = cache.join(&h).join(kind);
        if super::has_build_id(&dest, build_id) {
            return Some(dest);
        }
        for i in 0..self.servers.len() {
            if self.servers[i].down {
                continue;
            }
            let url = format!("{}/buildid/{h}/{kind}", self.servers[i].url);
            match self.download(&url, &dest) {
                Ok(true) if super::has_build_id(&dest, build_id) => return Some(dest),
                Ok(true) => {
                    let _ = std::fs::remove_file(&dest);
                    self.fail(i, format!("{url}: the file it sent has another build-id"));
                }
                Ok(false) => {}
                Err(why) => self.fail(i, why),
            }
        }
        None
    }

    fn fail(&mut self, i: usize, why: String) {
        let s = &mut self.servers[i];
        s.down = true;
        if let Ok(mut d) = DOWN.lock() {
            d.push(s.url.clone());
        }
        eprintln!(
            "memshim: warning: debuginfod {}: {why}; not asked again in this run",
            s.url
        );
    }

    /// Ok(true): saved at `dest`; Ok(false): the server does not have it.
    fn download(&self, url: &str, dest: &Path) -> Result<bool, String> {
        if url.starts_with("https://") {
            return Err("https needs TLS, which this memshim is built without (use an http:// server or a local mirror)".into());
        }
        let resp = self.agent.get(url).call().map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(false);
        }
        if status != 200 {
            return Err(format!("{url}: HTTP {status}"));
        }
        let dir = dest.parent().expect("a file under the cache");
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // Written aside and renamed: a run cut short never leaves half a file in the cache.
        let tmp = dir.join(format!(
            ".{}.{}.part",
            dest.file_name().unwrap().to_string_lossy(),
            std::process::id()
        ));
        let result = (|| {
            let mut out = std::fs::File::create(&tmp)?;
            let mut body = resp
                .into_body()
                .into_with_config()
                .limit(MAX_BYTES)
                .reader();
            std::io::copy(&mut body, &mut out)?;
            out.flush()?;
            std::fs::rename(&tmp, dest)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("{url}: {e}"));
        }
        Ok(true)
    }
}

/// `$XDG_CACHE_HOME/memshim/debuginfod`, else `$HOME/.cache/memshim/debuginfod`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("memshim").join("debuginfod"))
}
