//! Capture arguments: plain paths, or a template with `%p` (the shim's `MEMSHIM_OUTPUT`
//! convention) that expands to every file in its directory where `%p` is a pid, or a pid and
//! a sequence number (`1234.2`: the shim's name for the capture of a process that exec'd again).

use std::path::{Path, PathBuf};

use crate::error::{CliError, Result};

/// The captures `args` name; the files of one rolled-over snapshot series once (at the first
/// named: it is read with the others).
pub fn expand(args: &[String]) -> Result<Vec<PathBuf>> {
    Ok(crate::capture::series::one_per_series(expand_names(args)?))
}

fn expand_names(args: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    for a in args {
        if !a.contains("%p") {
            out.push(PathBuf::from(a));
            continue;
        }
        let p = Path::new(a);
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let (pre, post) = name
            .split_once("%p")
            .ok_or_else(|| CliError::new(format!("{a}: %p must be in the file name")))?;
        let mut found: Vec<((u64, u64), PathBuf)> = std::fs::read_dir(&dir)
            .map_err(|e| CliError::about(&dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                let pid = n.strip_prefix(pre)?.strip_suffix(post)?;
                Some((pid_and_seq_or_part(pid)?, e.path()))
            })
            .collect();
        if found.is_empty() {
            return Err(CliError::new(format!(
                "{a}: no capture matches this template"
            )));
        }
        found.sort();
        out.extend(found.into_iter().map(|(_, p)| p));
    }
    Ok(out)
}

/// [`pid_and_seq`], also of a later file of a rolled-over snapshot series (`1234.part3`,
/// `1234.2.part3`): its process's capture, read with the rest of its series.
pub fn pid_and_seq_or_part(s: &str) -> Option<(u64, u64)> {
    if let Some((head, part)) = s.rsplit_once(".part") {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            // Repeated: today's shim names a part after the oldest file it keeps
            // (`1234.part2.part4`).
            return pid_and_seq_or_part(head);
        }
    }
    pid_and_seq(s)
}

/// `1234` -> (1234, 0); `1234.2` -> (1234, 2).
pub fn pid_and_seq(s: &str) -> Option<(u64, u64)> {
    match s.split_once('.') {
        None => Some((s.parse().ok()?, 0)),
        Some((pid, seq)) => Some((pid.parse().ok()?, seq.parse().ok()?)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pids_with_and_without_sequence_numbers() {
        assert_eq!(super::pid_and_seq("1234"), Some((1234, 0)));
        assert_eq!(super::pid_and_seq("1234.2"), Some((1234, 2)));
        assert_eq!(super::pid_and_seq("12a"), None);
        assert_eq!(super::pid_and_seq("1.2.3"), None);
        assert_eq!(super::pid_and_seq("1234.part3"), None);
        assert_eq!(super::pid_and_seq_or_part("1234.part3"), Some((1234, 0)));
        assert_eq!(super::pid_and_seq_or_part("1234.2.part3"), Some((1234, 2)));
        assert_eq!(super::pid_and_seq_or_part("1234.part"), None);
        assert_eq!(super::pid_and_seq_or_part("1234"), Some((1234, 0)));
        assert_eq!(
            super::pid_and_seq_or_part("1234.part2.part4"),
            Some((1234, 0))
        );
    }
}
