//! Human-readable sizes and durations for text output.

/// `1536` -> `1.5 KiB`; exact bytes below 1 KiB.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let neg = n < 0.0;
    let mut v = n.abs();
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    let sign = if neg { "-" } else { "" };
    if u == 0 {
        format!("{sign}{} B", v.round() as u64)
    } else {
        format!("{sign}{v:.1} {}", UNITS[u])
    }
}

/// Nanoseconds to seconds.
pub fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A count estimate, rounded.
pub fn count(n: f64) -> String {
    let r = n.round();
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else {
        format!("{}", r as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(64.0 * 1048576.0), "64.0 MiB");
        assert_eq!(bytes(-2048.0), "-2.0 KiB");
        assert_eq!(count(2_500_000.0), "2.50M");
        assert_eq!(count(12.4), "12");
    }
}
