//! `memshim check`: the CI gate passes captures within their limits and fails, one line per
//! broken limit naming the top site, those past them; sampled estimates carry their error bar.

use cli::*;
use memshim_test_support::prelude::cli;
use serde_json::Value;

/// An `all`-mode capture (exact): 40 MiB leaked by leaky_alloc, a 300 MiB peak by peak_fn
/// (with the leak and a 10 MiB churn block live then: 335 MiB at most), and churn.
fn exact(name: &str) -> (Fixture, std::path::PathBuf) {
    let f = fixture(name);
    let p = f.dir.join("exact.msh");
    capture(&f, 0, build_id(&f.bin)).write(&p);
    (f, p)
}

/// A capture of a process growing 10 MiB/s (1 MiB every 100 ms for 60 s, from leaky_alloc).
fn growing(name: &str) -> (Fixture, std::path::PathBuf) {
    let f = fixture(name);
    let mut c = SyntheticCapture::new(&header(0));
    c.push(module_map(&f, build_id(&f.bin)));
    c.push(stack(1, &[ret(&f, "leaky_alloc"), ret(&f, "main")]));
    let mut addr = 0x1_0000_0000u64;
    for i in 1..=600u64 {
        let t = i * 100_000_000;
        addr += 2 * MIB;
        c.push(alloc(t, addr, MIB, 1));
        c.push(tick(t + 3, 200 * MIB, 100 * MIB));
    }
    c.end(600 * 100_000_000 + 10);
    let p = f.dir.join("growing.msh");
    c.write(&p);
    (f, p)
}

fn check(p: &std::path::Path, limits: &[&str]) -> std::process::Output {
    memshim()
        .arg("check")
        .arg(p)
        .args(limits)
        .output()
        .expect("memshim runs")
}

#[test]
fn a_leak_under_its_limit_passes_and_over_it_fails_naming_the_leaking_function() {
    let (_f, p) = exact("check-leak");
    let o = check(&p, &["--max-leak", "50MB"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "memshim check: every limit holds in 1 process: leak 40.0 MiB <= 50.0 MiB"
    );
    let o = check(&p, &["--max-leak", "30MB"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("memshim check: leak 40.0 MiB over its limit 30.0 MiB: "),
        "{out}"
    );
    assert!(
        out.contains("top site leaky_alloc (") && out.contains("sym_target.c:"),
        "{out}"
    );
}

#[test]
fn a_peak_over_its_limit_fails_naming_what_was_live_then() {
    let (_f, p) = exact("check-peak");
    let o = check(&p, &["--max-peak", "400MB"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = check(&p, &["--max-peak", "100MB"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.starts_with("memshim check: peak "), "{out}");
    assert!(out.contains("over its limit 100.0 MiB"), "{out}");
    assert!(out.contains("top site peak_fn ("), "{out}");
}

#[test]
fn growth_faster_than_its_limit_fails_naming_the_growing_site() {
    let (_f, p) = growing("check-growth");
    let o = check(&p, &["--max-growth", "20MB/s"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = check(&p, &["--max-growth", "5MB/s"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("memshim check: growth 10.0 MiB/s over its limit 5.0 MiB/s: "),
        "{out}"
    );
    assert!(out.contains("top site leaky_alloc ("), "{out}");
}

#[test]
fn each_broken_limit_is_one_line_and_the_json_says_which() {
    let (_f, p) = exact("check-json");
    let o = check(&p, &["--max-leak", "30MB", "--max-peak", "100MB"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let limits: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(limits, ["leak", "peak"], "{out}");
    let o = check(
        &p,
        &[
            "--max-leak",
            "30MB",
            "--max-peak",
            "1GB",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], false);
    let checks = v["processes"][0]["checks"].as_array().unwrap();
    assert_eq!(checks[0]["limit"], "leak");
    assert_eq!(checks[0]["passed"], false);
    assert_eq!(checks[0]["value_est"], 40.0 * MIB as f64);
    assert_eq!(checks[0]["error"], 0.0, "all mode is exact");
    assert_eq!(
        checks[0]["top_site"]["frames"][0]["function"],
        "leaky_alloc"
    );
    assert_eq!(checks[1]["limit"], "peak");
    assert_eq!(checks[1]["passed"], true);
}

#[test]
fn a_sampled_estimate_carries_its_error_bar() {
    let f = fixture("check-sampled");
    let p = f.dir.join("sampled.msh");
    let rate = 512u64 << 10;
    capture(&f, rate, build_id(&f.bin)).write(&p);
    let o = check(&p, &["--max-leak", "1GB", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = &v["processes"][0]["checks"][0];
    let (value, error) = (
        c["value_est"].as_f64().unwrap(),
        c["error"].as_f64().unwrap(),
    );
    assert!(
        value > 40.0 * MIB as f64,
        "each sample weighs more than itself"
    );
    assert!(
        (error - 2.0 * (rate as f64 * value).sqrt()).abs() < 1.0,
        "two standard deviations, 2 sqrt(rate x bytes): {error}"
    );
    // The rate at which this limit's bar would be 10% of it: f^2 L / 4.
    assert_eq!(
        c["rate_for_10_percent"].as_f64().unwrap(),
        (0.01 * 1024.0 * MIB as f64 / 4.0).floor()
    );
    let o = check(&p, &["--max-leak", "1GB"]);
    assert!(stdout(&o).contains(" ± "), "{}", stdout(&o));
}

#[test]
fn help_explains_how_to_choose_the_rate_for_a_limit() {
    let o = run(&["check", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for s in [
        "MEMSHIM_RATE <= f^2*L/4",
        "2*sqrt(RATE*BYTES)",
        "--rate all",
    ] {
        assert!(help.contains(s), "{s:?} missing from:\n{help}");
    }
}

#[test]
fn no_limit_or_a_bad_size_is_one_error_line() {
    let (_f, p) = exact("check-errors");
    let o = check(&p, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "memshim: error: check needs at least one limit: --max-leak, --max-peak or --max-growth"
    );
    let o = check(&p, &["--max-leak", "ten"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with("memshim: error: ") && e.contains("is not a size"),
        "{e}"
    );
}
