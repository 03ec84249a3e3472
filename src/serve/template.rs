//! The captures `memshim serve` may read: the files of one directory whose names match the
//! template's `%p` form (`DIR/memshim.%p.msh`: `%p` a pid, or a pid and an exec sequence
//! number). They are listed afresh on every request, so new processes show up; only regular
//! files are taken (a symlink in that directory could point anywhere), and a request names a
//! process by its pid, never by a path: nothing outside the template is ever opened.

use std::path::{Path, PathBuf};

use crate::capture::inputs::pid_and_seq_or_part;
use crate::error::{CliError, Result};

#[derive(Debug, Clone)]
pub struct Template {
    dir: PathBuf,
    prefix: String,
    suffix: String,
}

/// One capture file of the template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Match {
    pub pid: u64,
    pub seq: u64,
    pub path: PathBuf,
}

impl Template {
    pub fn parse(t: &str) -> Result<Template> {
        let p = Path::new(t);
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some((prefix, suffix)) = name.split_once("%p") else {
            return Err(CliError::new(format!(
                "{t}: the template needs %p in its file name (as `memshim run -o` takes it: /tmp/caps/memshim.%p.msh)"
            )));
        };
        if suffix.contains("%p")
            || p.parent()
                .is_some_and(|d| d.to_string_lossy().contains("%p"))
        {
            return Err(CliError::new(format!(
                "{t}: %p may appear once, in the file name"
            )));
        }
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(CliError::new(format!(
                "{}: no such directory",
                dir.display()
            )));
        }
        Ok(Template {
            dir,
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
        })
    }

    /// The pid and sequence number a file name stands for, if it matches.
    pub fn pid_of(&self, name: &str) -> Option<(u64, u64)> {
        pid_and_seq_or_part(
            name.strip_prefix(&self.prefix)?
                .strip_suffix(&self.suffix)?,
        )
    }

    /// Every matching capture now, by pid then sequence.
    pub fn matches(&self) -> Vec<Match> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut out: Vec<Match> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let (pid, seq) = self.pid_of(&name)?;
                Some(Match {
                    pid,
                    seq,
                    path: e.path(),
                })
            })
            .collect();
        out.sort();
        // The files of a rolled-over snapshot series are one capture (read together from any
        // of them): one match each.
        out.dedup_by_key(|m| (m.pid, m.seq));
        out
    }

    pub fn describe(&self) -> String {
        self.dir
            .join(format!("{}%p{}", self.prefix, self.suffix))
            .display()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_the_template_with_a_pid_match() {
        let t = Template::parse("/tmp/memshim.%p.msh").unwrap();
        assert_eq!(t.pid_of("memshim.123.msh"), Some((123, 0)));
        assert_eq!(t.pid_of("memshim.123.2.msh"), Some((123, 2)));
        assert_eq!(t.pid_of("memshim.../etc.msh"), None);
        assert_eq!(t.pid_of("other.123.msh"), None);
        assert_eq!(t.pid_of("memshim.123.msh.bak"), None);
    }

    #[test]
    fn a_template_without_p_or_with_two_is_refused() {
        assert!(Template::parse("/tmp/memshim.msh").is_err());
        assert!(Template::parse("/tmp/%p.%p.msh").is_err());
        assert!(Template::parse("/no/such/dir/memshim.%p.msh").is_err());
    }
}
