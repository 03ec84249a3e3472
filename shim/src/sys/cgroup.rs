//! The memory limit of the process's cgroup, read once when the capture starts, so the timeline
//! can draw the line the kernel's OOM killer acts on next to RSS.
//!
//! cgroup v2: `memory.max` in the unified hierarchy (`0::/PATH` in `/proc/self/cgroup`); v1:
//! `memory.limit_in_bytes` under the `memory` controller's mount (`N:memory:/PATH`). A limit
//! set on an ancestor bounds the process too, so the smallest limit from the process's cgroup
//! up to the root is the one in force. `max` (v2) and v1's "no limit" (a page-rounded
//! `i64::MAX`) mean none.
//!
//! Runs on the writer thread at the capture's start, never on an allocation path.

/// The name the header's `extra` gives the limit (bytes, decimal); older readers ignore it.
pub const HEADER_KEY: &str = "cgroup_memory_max";

/// Where the hierarchies are mounted on every distribution that has them.
const V2_ROOT: &str = "/sys/fs/cgroup";
const V1_MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";

/// Limits at or above this are "no limit": v1 writes `i64::MAX` rounded down to a page.
const NO_LIMIT_FROM: u64 = 1 << 62;

/// The process's memory cgroup: which hierarchy and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    V1(String),
    V2(String),
}

/// Where `/proc/self/cgroup` puts the process: the v1 `memory` controller's cgroup when there
/// is one (on a hybrid system the v2 hierarchy has no memory controller), else the v2 cgroup.
pub fn parse_proc_cgroup(text: &str) -> Option<Place> {
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some(Place::V1(path.to_string()));
        }
        if controllers.is_empty() {
            v2 = Some(Place::V2(path.to_string()));
        }
    }
    v2
}

/// A limit file's value: bytes, or None for `max`, "no limit" or text that is not a number.
pub fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|&b| b < NO_LIMIT_FROM)
}

/// The limit files of `place` from the process's cgroup up to the root, innermost first.
pub fn limit_files(place: &Place) -> Vec<String> {
    let (root, path, file) = match place {
        Place::V1(p) => (V1_MEMORY_ROOT, p.as_str(), "memory.limit_in_bytes"),
        Place::V2(p) => (V2_ROOT, p.as_str(), "memory.max"),
    };
    let mut out = vec![];
    let mut dir = path.trim_end_matches('/').to_string();
    loop {
        out.push(format!("{root}{dir}/{file}"));
        match dir.rfind('/') {
            Some(i) => dir.truncate(i),
            None => break,
        }
    }
    out
}

/// The smallest limit in force on this process, in bytes; None when none is set (or cgroups
/// cannot be read).
pub fn memory_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let place = parse_proc_cgroup(&text)?;
    limit_files(&place)
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|t| parse_limit(&t))
        .min()
}

/// The header's named values for the limit: one pair, or none.
pub fn header_extra() -> Vec<(String, String)> {
    memory_limit()
        .map(|b| vec![(HEADER_KEY.to_string(), b.to_string())])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v2_system_places_the_process_in_the_unified_hierarchy() {
        assert_eq!(
            parse_proc_cgroup("0::/system.slice/app.service\n"),
            Some(Place::V2("/system.slice/app.service".into()))
        );
    }

    #[test]
    fn a_v1_or_hybrid_system_uses_the_memory_controller() {
        let text = "9:name=systemd:/\n5:devices:/\n4:memory:/kubepods/pod1/abc\n\
                    2:cpu,cpuacct:/\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(text),
            Some(Place::V1("/kubepods/pod1/abc".into()))
        );
        assert_eq!(
            parse_proc_cgroup("3:cpu,memory:/x\n"),
            Some(Place::V1("/x".into())),
            "a co-mounted memory controller"
        );
        assert_eq!(parse_proc_cgroup("garbage\n"), None);
    }

    #[test]
    fn max_and_v1s_huge_value_mean_no_limit() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_limit("12abc"), None);
    }

    #[test]
    fn limit_files_walk_up_to_the_root() {
        assert_eq!(
            limit_files(&Place::V2("/a/b".into())),
            [
                "/sys/fs/cgroup/a/b/memory.max",
                "/sys/fs/cgroup/a/memory.max",
                "/sys/fs/cgroup/memory.max"
            ]
        );
        assert_eq!(
            limit_files(&Place::V1("/".into())),
            ["/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        );
    }
}
