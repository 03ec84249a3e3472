//! `memshim diff` on real processes under the real shim: two moments of one capture (what a
//! phase added and what it freed) and two captures of the same program (a bigger leak).

use memshim_test_support::fleet::*;
use memshim_test_support::report_json::within;
use serde_json::Value;

const MIB: f64 = 1048576.0;

fn diff_json(args: &[&str]) -> Value {
    let mut all = vec!["diff", "--format", "json"];
    all.extend_from_slice(args);
    let o = memshim(&all);
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    serde_json::from_str(&text(&o.stdout)).unwrap()
}

fn func(site: &Value) -> &str {
    site["frames"][0]["function"].as_str().unwrap_or("<null>")
}

#[test]
fn diff_at_two_moments_shows_what_a_phase_added_and_what_it_freed() {
    let Some(so) = shim() else { return };
    let dir = scratch("diff-at");
    let f = build_fleet(&dir);
    let cap = capture_run(&f.prog, &["phases"], &so, &dir.join("caps"));
    let c = cap.to_str().unwrap();
    // phase_one runs at the start, phase_two one second later: 0.5 s is between them.
    let v = diff_json(&[c, "--at", "0.5", "--at", "end"]);
    let grew = v["grew"].as_array().unwrap();
    let shrank = v["shrank"].as_array().unwrap();
    assert_eq!(func(&grew[0]), "phase_two", "{v:#}");
    let d = grew[0]["delta_bytes_est"].as_f64().unwrap();
    assert!(
        within(d, 48.0 * MIB, 0.25),
        "phase_two grew {d}, truth 48 MiB"
    );
    assert_eq!(grew[0]["a_bytes_est"], 0);
    assert_eq!(func(&shrank[0]), "phase_one", "{v:#}");
    let d = shrank[0]["delta_bytes_est"].as_f64().unwrap();
    assert!(
        within(-d, 16.0 * MIB, 0.25),
        "phase_one shrank {d}, truth -16 MiB"
    );
    assert_eq!(
        shrank[0]["b_bytes_est"], 0,
        "all of phase_one's blocks were freed"
    );
    assert_eq!(v["a"]["at"], "0.50 s");
    assert_eq!(v["b"]["at"], "end");

    // One --at compares that moment with the end; the text says the same.
    let o = memshim(&["diff", c, "--at", "500ms"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let grew_at = out.find("== Grew ==").expect(&out);
    let shrank_at = out.find("== Shrank ==").expect(&out);
    let two = out.find("phase_two (").expect(&out);
    let one = out.find("phase_one (").expect(&out);
    assert!(grew_at < two && two < shrank_at && shrank_at < one, "{out}");
    assert!(
        out.contains("fleet_prog.c:"),
        "frames carry file:line: {out}"
    );
}

#[test]
fn diff_of_two_captures_shows_the_bigger_leak_as_growth() {
    let Some(so) = shim() else { return };
    let dir = scratch("diff-two");
    let f = build_fleet(&dir);
    // 32 and 96 blocks of 256 KiB: 8 MiB then 24 MiB leaked from lib_leak.
    let a = capture_run(&f.prog, &["leak", "32"], &so, &dir.join("a"));
    let b = capture_run(&f.prog, &["leak", "96"], &so, &dir.join("b"));
    let v = diff_json(&[a.to_str().unwrap(), b.to_str().unwrap()]);
    let grew = &v["grew"][0];
    assert_eq!(func(grew), "lib_leak", "{v:#}");
    let d = grew["delta_bytes_est"].as_f64().unwrap();
    assert!(
        within(d, 16.0 * MIB, 0.25),
        "lib_leak grew {d}, truth 16 MiB"
    );
    assert!(
        v["grew"]
            .as_array()
            .unwrap()
            .iter()
            .chain(v["shrank"].as_array().unwrap())
            .all(|s| func(s) != "main_churn"),
        "main_churn frees everything in both runs: {v:#}"
    );
}

#[test]
fn diff_refuses_a_moment_after_the_end_and_one_capture_without_at() {
    let Some(so) = shim() else { return };
    let dir = scratch("diff-bad");
    let f = build_fleet(&dir);
    let cap = capture_run(&f.prog, &["leak", "4"], &so, &dir.join("caps"));
    let c = cap.to_str().unwrap();
    for (args, says) in [
        (vec!["diff", c, "--at", "1h"], "after the capture's end"),
        (vec!["diff", c], "needs --at"),
        (
            vec!["diff", c, "--at", "soon"],
            "a time from the capture's start",
        ),
    ] {
        let o = memshim(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.starts_with("memshim: error: ") && err.contains(says),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
