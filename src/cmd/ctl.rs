//! `memshim ctl PID snapshot|start|stop`: asks a process running under the shim to write a
//! snapshot now, or to start or stop recording. The request is a file the shim looks for
//! (`/tmp/memshim-ctl.PID.KIND`, created through `/proc/PID/root` so a process in a container
//! is reached in its own `/tmp`); the shim answers in `KIND.done` with the capture's path.
//! Nothing the program can observe changes: no signal is sent.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cmd::output;
use crate::error::{CliError, Result};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Action {
    /// Write a snapshot (or, in an event capture, flush) now.
    Snapshot,
    /// Start recording (after `MEMSHIM_START=paused` or a stop).
    Start,
    /// Stop recording until a start.
    Stop,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Snapshot => "snapshot",
            Action::Start => "start",
            Action::Stop => "stop",
        }
    }
}

/// Control a running process: `snapshot`, `start` or `stop`.
#[derive(clap::Args)]
pub struct Args {
    /// The process's id.
    pid: u32,
    action: Action,
    /// How long to wait for the process to pick the request up.
    #[arg(long, default_value = "5s", value_parser = parse_seconds)]
    timeout: Duration,
}

fn parse_seconds(s: &str) -> std::result::Result<Duration, String> {
    let (num, mult) = match s.strip_suffix("ms") {
        Some(n) => (n, 0.001),
        None => (s.strip_suffix('s').unwrap_or(s), 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(Duration::from_secs_f64(v * mult)),
        _ => Err(format!("{s:?} is not a duration like 5s or 500ms")),
    }
}

/// The process's pid in its own pid namespace (the last of `NSpid`), which names its files.
fn pid_inside(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

fn runs_the_shim(pid: u32) -> std::io::Result<bool> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    Ok(maps.lines().any(|l| l.ends_with("/libmemshim.so")))
}

pub fn run(args: Args) -> Result<()> {
    let pid = args.pid;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(CliError::new(format!("no process {pid}")));
    }
    match runs_the_shim(pid) {
        Ok(true) => {}
        Ok(false) => {
            return Err(CliError::new(format!(
                "process {pid} does not run under memshim (libmemshim.so is not loaded)"
            )))
        }
        Err(e) => {
            return Err(CliError::new(format!(
                "cannot read process {pid}'s maps: {e}"
            )))
        }
    }
    let inside = pid_inside(pid).unwrap_or(pid);
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let req = root.join(format!("tmp/memshim-ctl.{inside}.{}", args.action.name()));
    let done = PathBuf::from(format!("{}.done", req.display()));
    let _ = std::fs::remove_file(&done);
    let nonce = format!(
        "{:x}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&req)
        .and_then(|mut f| writeln!(f, "{nonce}"));
    if let Err(e) = written {
        return Err(CliError::new(format!(
            "cannot make the request {}: {e}",
            req.display()
        )));
    }
    let deadline = Instant::now() + args.timeout;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&done) {
            let mut lines = text.lines();
            if lines.next() == Some(nonce.as_str()) {
                let capture = lines.next().unwrap_or("").to_string();
                let _ = std::fs::remove_file(&done);
                let what = match args.action {
                    Action::Snapshot => "snapshot written to",
                    Action::Start => "recording started; capture",
                    Action::Stop => "recording stopped; capture",
                };
                return output::print(&format!("memshim: process {pid}: {what} {capture}"));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Withdrawn, so that it does not act later, unannounced.
    let _ = std::fs::remove_file(&req);
    Err(CliError::new(format!(
        "process {pid} did not pick the {} request up within {:.1} s (a paused process looks \
         for a start every 4 MiB it allocates; a process that has not sampled yet has no \
         writer to write a snapshot); the request was withdrawn",
        args.action.name(),
        args.timeout.as_secs_f64()
    )))
}
