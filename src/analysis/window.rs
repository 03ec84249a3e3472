//! `--since-mark LABEL` / `--until-mark LABEL`: a report of what happened between two marks
//! the program made (`memshim.mark`, `memshim_mark`).
//!
//! Records are let through by their place in the stream, not their time: the shim writes a mark
//! in order with the samples around it (shim/src/marks.rs), so the window is exact even where
//! two events share a timer tick. Inside the window everything counts. Before it, allocations
//! are left out (so their frees find nothing and count nothing): what the window allocated is
//! what the report ranks. From the until mark on, allocations, frees and ticks are left out:
//! leaks are what the window allocated that was still live at its end, the peak is the
//! highest that the window's own allocations reached.

use memshim_format::{Marker, Record};

use crate::error::{CliError, Result};

/// The two flags, shared by every command that takes a window.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WindowArgs {
    /// Count only what was allocated after the first mark with this label (`memshim.mark`).
    #[arg(long, value_name = "LABEL")]
    pub since_mark: Option<String>,
    /// Stop at the first mark with this label after the window's start: leaks are what was
    /// allocated in the window and still live at this mark.
    #[arg(long, value_name = "LABEL")]
    pub until_mark: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    Inside,
    After,
}

/// Decides, record by record, what a windowed analysis sees.
#[derive(Debug)]
pub struct Filter {
    args: WindowArgs,
    phase: Phase,
    /// Every mark label seen, for the error naming what the capture has.
    labels: Vec<String>,
}

impl Filter {
    pub fn new(args: &WindowArgs) -> Filter {
        Filter {
            args: args.clone(),
            phase: if args.since_mark.is_some() {
                Phase::Before
            } else {
                Phase::Inside
            },
            labels: vec![],
        }
    }

    /// Whether `r` goes to the analysis.
    pub fn pass(&mut self, r: &Record) -> bool {
        if let Record::Marker {
            marker: Marker::User { label, .. },
            ..
        } = r
        {
            self.labels.push(label.clone());
            match self.phase {
                Phase::Before if self.args.since_mark.as_ref() == Some(label) => {
                    self.phase = Phase::Inside;
                }
                Phase::Inside if self.args.until_mark.as_ref() == Some(label) => {
                    self.phase = Phase::After;
                    return true;
                }
                _ => {}
            }
        }
        match self.phase {
            Phase::Inside => true,
            Phase::Before => !matches!(r, Record::Alloc { .. }),
            Phase::After => matches!(
                r,
                Record::Modules(_)
                    | Record::Stack { .. }
                    | Record::PyCode(_)
                    | Record::Thread { .. }
                    | Record::End { .. }
                    | Record::Extension { .. }
            ),
        }
    }

    /// After the stream: an error when a mark the window needs never came.
    pub fn check(&self, path: &std::path::Path) -> Result<()> {
        let missing = match self.phase {
            Phase::Before => self.args.since_mark.as_deref().map(|l| (l, "")),
            Phase::Inside => self.args.until_mark.as_deref().map(|l| {
                (
                    l,
                    if self.args.since_mark.is_some() {
                        " after the --since-mark one"
                    } else {
                        ""
                    },
                )
            }),
            Phase::After => None,
        };
        let Some((label, after)) = missing else {
            return Ok(());
        };
        let mut have = self.labels.clone();
        have.dedup();
        let have = if have.is_empty() {
            "it has no marks".to_string()
        } else {
            format!("its marks: {}", have.join(", "))
        };
        Err(CliError::new(format!(
            "{}: no mark \"{label}\"{after} ({have})",
            path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(label: &str) -> Record {
        Record::Marker {
            t: 0,
            marker: Marker::User {
                label: label.into(),
                thread: 1,
            },
        }
    }

    fn alloc() -> Record {
        Record::Alloc {
            t: 0,
            tid: 1,
            addr: 16,
            size: 1,
            stack: 1,
            kind: memshim_format::AllocKind::Malloc,
            inherited: false,
        }
    }

    #[test]
    fn only_allocations_between_the_two_marks_pass() {
        let mut f = Filter::new(&WindowArgs {
            since_mark: Some("a".into()),
            until_mark: Some("b".into()),
        });
        let seen: Vec<bool> = [alloc(), mark("b"), mark("a"), alloc(), mark("b"), alloc()]
            .iter()
            .map(|r| f.pass(r))
            .collect();
        // The "b" before "a" does not end the window; allocations outside it do not pass.
        assert_eq!(seen, [false, true, true, true, true, false]);
        assert!(f.check(std::path::Path::new("x")).is_ok());
    }

    #[test]
    fn a_missing_mark_is_an_error_naming_the_marks_there_are() {
        let mut f = Filter::new(&WindowArgs {
            since_mark: Some("warm".into()),
            until_mark: None,
        });
        f.pass(&mark("cold"));
        let e = f.check(std::path::Path::new("c.msh")).unwrap_err();
        assert_eq!(e.0, "c.msh: no mark \"warm\" (its marks: cold)");
    }
}
