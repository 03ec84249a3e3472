//! The limits `memshim check` enforces: sizes and growth rates as people write them, and how far
//! a sampled estimate can be from the truth.

/// `10MB`, `10 MiB`, `512k`, `4096` (bytes). K/M/G/T are powers of 1024 with or without
/// `i`/`B`, as `MEMSHIM_RATE`'s K/M/G are: limits and rates are in one unit.
pub fn parse_size(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (say 10MB, 512KiB or 4096)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        _ => return Err(format!("{s:?} is not a size (say 10MB, 512KiB or 4096)")),
    };
    Ok(n * mult)
}

/// `1MB/s`, `100 KiB/s`, `2048` (bytes a second).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let size = t.strip_suffix("/s").unwrap_or(t);
    parse_size(size).map_err(|_| format!("{s:?} is not a rate (say 1MB/s or 100KiB/s)"))
}

/// Two standard deviations (about 95% of runs fall within it) of a sampled estimate of
/// `bytes` at sampling rate `rate` (0: `all` mode, exact).
///
/// An allocation of `s` bytes is sampled with probability `p = 1 - exp(-s/R)` and then counts
/// `s/p`: its contribution's variance is `s^2 (1-p)/p`, which is at most `s R` (as
/// `p/(1-p) = exp(s/R) - 1 >= s/R`). Summed over the allocations, the variance of an estimate
/// of `B` bytes is at most `R B`: the bar is `2 sqrt(R B)`, taken at the estimate.
pub fn error_bar(bytes: f64, rate: u64) -> f64 {
    2.0 * (rate as f64 * bytes.max(0.0)).sqrt()
}

/// The largest rate at which the error bar at `limit` is at most `fraction` of it:
/// `2 sqrt(R L) <= f L` gives `R <= f^2 L / 4`.
pub fn rate_for(limit: f64, fraction: f64) -> f64 {
    fraction * fraction * limit / 4.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates_read_as_people_write_them() {
        assert_eq!(parse_size("10 MB").unwrap(), 10.0 * 1048576.0);
        assert_eq!(parse_size("512KiB").unwrap(), 512.0 * 1024.0);
        assert_eq!(parse_size("4096").unwrap(), 4096.0);
        assert_eq!(parse_rate("1MB/s").unwrap(), 1048576.0);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("10 parsecs").is_err());
    }

    #[test]
    fn the_rate_for_a_limit_gives_the_asked_error_bar() {
        let l = 10.0 * 1048576.0;
        let r = rate_for(l, 0.1);
        assert!((error_bar(l, r as u64) / l - 0.1).abs() < 1e-3);
        assert_eq!(error_bar(l, 0), 0.0);
    }
}
