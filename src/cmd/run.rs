//! `memshim run [--rate R] [-o TEMPLATE] [--seed N] [--python-allocators] -- COMMAND ARGS...`

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{CliError, Result};
use crate::launch::{captures, preload, signals};
use crate::units;

/// Run a command under libmemshim.so, then say where its captures are.
///
/// Finds libmemshim.so next to this executable (or in ../lib/memshim/, or at $MEMSHIM_LIB), preloads it, runs the
/// command with its settings, passes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 on to
/// it, and exits as it did (its exit code, or killed by the same signal). At the end it prints,
/// on stderr, the captures the run wrote (forked and exec'd children included) and the command
/// that reports on them. memshim's own errors exit with code 2.
#[derive(clap::Args)]
pub struct Args {
    /// Sampling rate, mean bytes between samples (`512K`, `2M`, `4096`), or `all` to record every allocation.
    /// Default: the shim's, 512K.
    #[arg(long)]
    rate: Option<String>,
    /// Capture file template; `%p` becomes the pid (an exec'd process adds `.<n>`).
    #[arg(short, long, default_value = "memshim.%p.msh")]
    output: PathBuf,
    /// Seed of the sampler, for reproducible captures.
    #[arg(long)]
    seed: Option<u64>,
    /// Production mode: keep per-stack aggregates and write snapshots of them
    /// (MEMSHIM_MODE=snapshots), bounded however long the command runs.
    #[arg(long)]
    snapshots: bool,
    /// With --snapshots: time between snapshots (`500ms`, `30s`, `5m`; the shim's default 60s).
    #[arg(long, requires = "snapshots")]
    interval: Option<String>,
    /// Start with recording off, until `memshim ctl PID start` (MEMSHIM_START=paused).
    #[arg(long)]
    paused: bool,
    /// Run Python with PYTHONMALLOC=malloc: every Python object goes through malloc, so the
    /// capture has per-object detail instead of pymalloc arenas (slower).
    #[arg(long)]
    python_allocators: bool,
    /// The command to run, and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<OsString>,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(r) = &args.rate {
        check_rate(r)?;
    }
    let lib = preload::find()?;
    let template = absolute(&args.output)?;
    let dir = template.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(CliError::new(format!(
            "{}: the capture directory does not exist",
            dir.display()
        )));
    }
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env(
            "LD_PRELOAD",
            preload::ld_preload(&lib, std::env::var_os("LD_PRELOAD")),
        )
        .env("MEMSHIM_OUTPUT", &template);
    if let Some(r) = &args.rate {
        cmd.env("MEMSHIM_RATE", r);
    }
    if let Some(s) = args.seed {
        cmd.env("MEMSHIM_SEED", s.to_string());
    }
    if args.snapshots {
        cmd.env("MEMSHIM_MODE", "snapshots");
    }
    if let Some(i) = &args.interval {
        cmd.env("MEMSHIM_INTERVAL", i);
    }
    if args.paused {
        cmd.env("MEMSHIM_START", "paused");
    }
    if args.python_allocators {
        cmd.env("PYTHONMALLOC", "malloc");
    }
    let before = captures::scan(&template);
    signals::install();
    let mut child = cmd.spawn().map_err(|e| {
        CliError::new(format!(
            "cannot run {}: {e}",
            args.command[0].to_string_lossy()
        ))
    })?;
    signals::set_child(child.id());
    let status = child
        .wait()
        .map_err(|e| CliError::new(format!("waiting for the command: {e}")))?;
    let (written, all) = captures::written(&before, captures::scan(&template));
    eprint!("{}", summary(&written, all, &args.output));
    if let Some(sig) = status.signal() {
        signals::die_like(sig);
    }
    std::process::exit(status.code().unwrap_or(1))
}

/// What `memshim run` says at the end.
fn summary(written: &[(PathBuf, u64)], all: bool, template: &Path) -> String {
    if written.is_empty() {
        return format!(
            "memshim: no capture was written to {} (the program ignored LD_PRELOAD: static or setuid; or the shim had nothing to write)\n",
            template.display()
        );
    }
    let cwd = std::env::current_dir().ok();
    let show = |p: &Path| -> String {
        let rel = cwd.as_deref().and_then(|c| p.strip_prefix(c).ok());
        rel.unwrap_or(p).display().to_string()
    };
    let mut o = format!(
        "memshim: {} capture{} written:\n",
        written.len(),
        if written.len() == 1 { "" } else { "s" }
    );
    for (p, len) in written {
        o.push_str(&format!("  {}  ({})\n", show(p), units::bytes(*len as f64)));
    }
    let files = if written.len() > 1 && all {
        // Every capture matching the template is from this run: the template says it shortest.
        captures::shell_word(&template.display().to_string())
    } else {
        written
            .iter()
            .map(|(p, _)| captures::shell_word(&show(p)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    o.push_str(&format!("memshim: report with: {} report {files}\n", me()));
    o
}

/// How to call this memshim: `memshim` when that is what PATH finds, else its full path.
fn me() -> String {
    let exe = std::env::current_exe().ok();
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("memshim"))
            .find(|p| p.is_file())
    });
    match (&exe, on_path) {
        (Some(e), Some(p)) if p.canonicalize().ok().as_ref() == Some(e) => "memshim".into(),
        (Some(e), _) => captures::shell_word(&e.display().to_string()),
        _ => "memshim".into(),
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.file_name().is_none() {
        return Err(CliError::new(format!(
            "{}: the output template needs a file name",
            p.display()
        )));
    }
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(p))
}

/// The sizes the shim accepts: digits with an optional K/M/G suffix, or `all`.
fn check_rate(r: &str) -> Result<()> {
    let s = r.trim();
    if s.eq_ignore_ascii_case("all") {
        return Ok(());
    }
    let digits = s.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
    let ok = s.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0);
    if ok {
        Ok(())
    } else {
        Err(CliError::new(format!(
            "--rate {r:?}: expected a size such as 512K, 2M, 4096, or `all`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        for ok in ["512K", "2m", "4096", "all", "ALL", "1G"] {
            assert!(check_rate(ok).is_ok(), "{ok}");
        }
        for bad in ["", "0", "K", "12KK", "-1", "banana", "1.5M"] {
            assert!(check_rate(bad).is_err(), "{bad}");
        }
    }
}
