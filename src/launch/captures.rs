//! The captures a run wrote: files matching the output template (`%p` = a pid, or `pid.n` for
//! the capture of a process that exec'd) that are new or changed since the run started.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::capture::inputs::pid_and_seq;

/// Files matching the template now, with their modification time and size.
pub fn scan(template: &Path) -> HashMap<PathBuf, (Option<SystemTime>, u64)> {
    let mut out = HashMap::new();
    let Some(name) = template.file_name().and_then(|n| n.to_str()) else {
        return out;
    };
    let dir = match template.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some((pre, post)) = name.split_once("%p") else {
        if let Ok(m) = std::fs::metadata(template) {
            out.insert(template.to_path_buf(), (m.modified().ok(), m.len()));
        }
        return out;
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return out;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let Ok(n) = e.file_name().into_string() else {
            continue;
        };
        let matches = n
            .strip_prefix(pre)
            .and_then(|r| r.strip_suffix(post))
            .and_then(pid_and_seq)
            .is_some();
        if matches {
            if let Ok(m) = e.metadata() {
                out.insert(dir.join(&n), (m.modified().ok(), m.len()));
            }
        }
    }
    out
}

/// The captures written between two scans, in (pid, sequence) order, with their sizes; and
/// whether every capture matching the template is one of them.
pub fn written(
    before: &HashMap<PathBuf, (Option<SystemTime>, u64)>,
    after: HashMap<PathBuf, (Option<SystemTime>, u64)>,
) -> (Vec<(PathBuf, u64)>, bool) {
    let total = after.len();
    let mut new: Vec<(PathBuf, u64)> = after
        .into_iter()
        .filter(|(p, meta)| before.get(p) != Some(meta))
        .map(|(p, (_, len))| (p, len))
        .collect();
    new.sort_by_key(|(p, _)| order_key(p));
    let all = new.len() == total;
    (new, all)
}

/// (pid, sequence) from `prefix.<pid>[.<n>].msh`-like names, for sorting.
fn order_key(p: &Path) -> (u64, u64, PathBuf) {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let nums: Vec<u64> = name
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
        p.to_path_buf(),
    )
}

/// A path as a shell word (single-quoted when it needs to be).
pub fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_changed_files_count_old_ones_do_not() {
        let t0 = Some(SystemTime::UNIX_EPOCH);
        let t1 = Some(SystemTime::now());
        let before: HashMap<_, _> = [
            (PathBuf::from("m.1.msh"), (t0, 10)),
            (PathBuf::from("m.2.msh"), (t0, 10)),
        ]
        .into();
        let after: HashMap<_, _> = [
            (PathBuf::from("m.1.msh"), (t0, 10)),
            (PathBuf::from("m.2.msh"), (t1, 20)),
            (PathBuf::from("m.30.1.msh"), (t1, 5)),
            (PathBuf::from("m.30.msh"), (t1, 5)),
        ]
        .into();
        let (new, all) = written(&before, after);
        let names: Vec<_> = new.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(names, ["m.2.msh", "m.30.msh", "m.30.1.msh"]);
        assert!(!all);
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("/tmp/memshim.%p.msh"), "/tmp/memshim.%p.msh");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
