//! A program to run with and without the real libmemshim.so: its command, with nothing of the
//! test's own environment that could change what the shim does, and the shim's settings.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{run, Outcome, TIMEOUT};
use crate::seeds::SHIM_SEED;
use crate::shim_lib::shim_lib;

/// A program to run: executable, arguments, extra environment.
#[derive(Debug, Clone)]
pub struct Program {
    pub exe: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

impl Program {
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Program {
            exe: exe.into(),
            args: vec![],
            env: vec![],
            cwd: None,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args_of(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(&self.args);
        // Nothing inherited from the test's own environment may change what the shim does.
        for k in [
            "LD_PRELOAD",
            "MEMSHIM_RATE",
            "MEMSHIM_OUTPUT",
            "MEMSHIM_SEED",
            "MEMSHIM_STACK_DEPTH",
            "MEMSHIM_UNWIND",
        ] {
            c.env_remove(k);
        }
        c.env("PYTHONDONTWRITEBYTECODE", "1");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }

    pub fn cwd(mut self, d: impl Into<PathBuf>) -> Self {
        self.cwd = Some(d.into());
        self
    }

    /// Runs without the shim.
    pub fn run_plain(&self, dir: &Path) -> Outcome {
        run(self.command(), dir, "plain", TIMEOUT)
    }

    /// Runs without the shim, with its own tag and timeout.
    pub fn run_plain_with(&self, dir: &Path, tag: &str, timeout: Duration) -> Outcome {
        run(self.command(), dir, tag, timeout)
    }

    /// Runs under the shim with `MEMSHIM_RATE=rate` (None: unset), the fixed seed, and captures
    /// written into a fresh directory `dir/caps-TAG`.
    pub fn run_shim(&self, dir: &Path, tag: &str, rate: Option<&str>) -> (Outcome, PathBuf) {
        self.run_shim_with(dir, tag, rate, TIMEOUT)
    }

    /// [`Program::run_shim`] with its own timeout.
    pub fn run_shim_with(
        &self,
        dir: &Path,
        tag: &str,
        rate: Option<&str>,
        timeout: Duration,
    ) -> (Outcome, PathBuf) {
        let (c, caps) = self.shim_command(dir, tag, rate);
        (run(c, dir, tag, timeout), caps)
    }

    /// The command that runs the program without the shim.
    pub fn plain_command(&self) -> Command {
        self.command()
    }

    /// The command that runs the program under the shim (as [`Program::run_shim`] does) and the
    /// fresh directory its captures go to.
    pub fn shim_command(&self, dir: &Path, tag: &str, rate: Option<&str>) -> (Command, PathBuf) {
        let caps = dir.join(format!("caps-{tag}"));
        let _ = std::fs::remove_dir_all(&caps);
        std::fs::create_dir_all(&caps).unwrap();
        let mut c = self.command();
        c.env("LD_PRELOAD", shim_lib())
            .env("MEMSHIM_OUTPUT", caps.join("memshim.%p.msh"))
            .env("MEMSHIM_SEED", SHIM_SEED);
        if let Some(r) = rate {
            c.env("MEMSHIM_RATE", r);
        }
        // The program's own settings win (tests of bad values).
        for (k, v) in &self.env {
            c.env(k, v);
        }
        (c, caps)
    }
}
