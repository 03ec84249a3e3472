//! The cgroup memory limit the shim found at capture start (`Header.extra`'s
//! `cgroup_memory_max`, bytes): the line the kernel's OOM killer acts on. Captures from shims
//! that did not record it, or from processes with no limit, have none.

use memshim_format::Header;

/// The header's name for the limit (the shim's `cgroup::HEADER_KEY`).
pub const HEADER_KEY: &str = "cgroup_memory_max";

/// The limit in bytes, when one was set.
pub fn of(h: &Header) -> Option<u64> {
    h.extra
        .iter()
        .find(|(k, _)| k == HEADER_KEY)
        .and_then(|(_, v)| v.parse().ok())
        .filter(|&b| b > 0)
}

/// "RSS peaked at N% of it", for the report's header line.
pub fn share(peak_rss: u64, limit: u64) -> String {
    format!("{:.0}%", 100.0 * peak_rss as f64 / limit as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_read_from_the_headers_named_values() {
        let mut h = Header::default();
        assert_eq!(of(&h), None);
        h.extra = vec![
            ("other".into(), "1".into()),
            (HEADER_KEY.into(), "536870912".into()),
        ];
        assert_eq!(of(&h), Some(512 << 20));
        h.extra = vec![(HEADER_KEY.into(), "junk".into())];
        assert_eq!(of(&h), None);
    }
}
