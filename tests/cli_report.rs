//! `memshim report` on synthetic captures whose stacks point into a real compiled C program:
//! ranks, exact numbers in `all` mode, symbolization by build-id, the JSON shape.

use memshim_test_support::prelude::cli::*;
use serde_json::Value;

fn report_json(path: &std::path::Path) -> Value {
    let o = run(&["report", "--format", "json", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    serde_json::from_str(&stdout(&o)).expect("report --format json prints JSON")
}

fn first_function(site: &Value) -> &str {
    site["frames"][0]["function"].as_str().unwrap_or("<null>")
}

#[test]
fn all_mode_ranks_and_counts_exactly_with_symbols() {
    let f = fixture("report-all");
    let p = f.dir.join("all.msh");
    capture(&f, 0, build_id(&f.bin)).write(&p);
    let v = report_json(&p);

    assert_eq!(v["format_version"], 1);
    assert_eq!(v["sampling"]["mode"], "all");
    let tot = &v["totals"];
    assert_eq!(tot["allocated_bytes_est"], (40 + 1000 + 300) * MIB);
    assert_eq!(tot["allocations_est"], 141);
    assert_eq!(tot["live_at_end_bytes_est"], 40 * MIB);
    assert_eq!(tot["peak_heap_bytes"], (40 + 300) * MIB);
    assert_eq!(tot["dropped_records"], 0);

    let leaks = v["leaks"].as_array().unwrap();
    assert_eq!(
        leaks.len(),
        1,
        "only leaky_alloc is live at the end: {leaks:?}"
    );
    assert_eq!(
        first_function(&leaks[0]),
        "leaky_alloc",
        "shim frames are stripped"
    );
    assert_eq!(leaks[0]["bytes_est"], 40 * MIB);
    assert_eq!(leaks[0]["count_est"], 40);
    let fr = &leaks[0]["frames"][0];
    assert!(
        fr["file"].as_str().unwrap().ends_with("sym_target.c"),
        "{fr}"
    );
    assert!((6..=10).contains(&fr["line"].as_u64().unwrap()), "{fr}");
    assert_eq!(fr["kind"], "native");
    assert_eq!(fr["module"], f.bin.display().to_string());
    assert_eq!(leaks[0]["frames"][1]["function"], "main");

    assert_eq!(first_function(&v["peak"][0]), "peak_fn");
    assert_eq!(v["peak"][0]["bytes_est"], 300 * MIB);
    let allocs = v["allocations"].as_array().unwrap();
    assert_eq!(first_function(&allocs[0]), "clean_alloc");
    assert_eq!(allocs[0]["bytes_est"], 1000 * MIB);
    assert_eq!(allocs[0]["short_lived_count_est"], 100);
}

#[test]
fn json_has_exactly_the_documented_shape() {
    let f = fixture("report-shape");
    let p = f.dir.join("shape.msh");
    capture(&f, 512 * 1024, build_id(&f.bin)).write(&p);
    let v = report_json(&p);
    for k in ["pid", "exe", "argv", "duration_s"] {
        assert!(v["process"].get(k).is_some(), "process.{k}");
    }
    assert_eq!(v["sampling"]["mode"], "sampled");
    assert_eq!(v["sampling"]["rate_bytes"], 512 * 1024);
    for k in [
        "allocated_bytes_est",
        "allocations_est",
        "peak_heap_bytes",
        "peak_time_s",
        "live_at_end_bytes_est",
        "dropped_records",
    ] {
        assert!(v["totals"][k].is_number(), "totals.{k}");
    }
    for ranking in ["leaks", "peak", "allocations"] {
        let sites = v[ranking].as_array().unwrap();
        assert!(!sites.is_empty(), "{ranking}");
        let bytes: Vec<f64> = sites
            .iter()
            .map(|s| s["bytes_est"].as_f64().unwrap())
            .collect();
        assert!(
            bytes.windows(2).all(|w| w[0] >= w[1]),
            "{ranking} sorted by bytes: {bytes:?}"
        );
        for s in sites {
            assert!(s["count_est"].is_number());
            for fr in s["frames"].as_array().unwrap() {
                for k in ["function", "file", "line", "module", "kind"] {
                    assert!(fr.get(k).is_some(), "frame.{k} in {fr}");
                }
                assert!(fr["kind"] == "native" || fr["kind"] == "python");
            }
        }
    }
    // Each 1 MiB sample at a 512 KiB rate weighs 1 / (1 - e^-2).
    let w = 1.0 / (1.0 - (-2.0f64).exp());
    assert_eq!(
        v["leaks"][0]["bytes_est"],
        (40.0 * MIB as f64 * w).round() as u64
    );
    assert_eq!(v["leaks"][0]["count_est"], (40.0 * w).round() as u64);
}

#[test]
fn a_rebuilt_binary_is_not_used_and_frames_say_module_plus_offset() {
    let f = fixture("report-rebuilt");
    let p = f.dir.join("rebuilt.msh");
    capture(&f, 0, vec![0xde, 0xad, 0xbe, 0xef]).write(&p);
    let v = report_json(&p);
    let fr = &v["leaks"][0]["frames"][0];
    assert_eq!(fr["function"], Value::Null, "{fr}");
    assert_eq!(fr["file"], Value::Null);
    let off = symbol_addr(&f.bin, "leaky_alloc") + 9;
    assert_eq!(fr["address"], format!("sym_target+{off:#x}"));

    let o = run(&["report", p.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains(&format!("sym_target+{off:#x}")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn text_report_names_sites_innermost_first_with_human_sizes() {
    let f = fixture("report-text");
    let p = f.dir.join("text.msh");
    capture(&f, 0, build_id(&f.bin)).write(&p);
    let o = run(&["report", "--top", "3", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let leaks = out.split("== Leaks").nth(1).unwrap();
    let first_site: Vec<&str> = leaks.lines().skip(1).take(3).collect();
    assert!(
        first_site[0].contains("1. 40.0 MiB in 40 allocations"),
        "{out}"
    );
    assert!(
        first_site[1].trim_start().starts_with("leaky_alloc ("),
        "{out}"
    );
    assert!(first_site[2].trim_start().starts_with("main ("), "{out}");
    let growing = out.split("== Growing").nth(1).unwrap();
    assert!(
        growing.lines().nth(1) == Some("  (none)") && !out.contains("how decided:"),
        "nothing grows here: the growth rule's paragraph is left out\n{out}"
    );
    assert!(out.contains("peak       340.0 MiB live"), "{out}");
}

#[test]
fn several_captures_get_a_combined_summary() {
    let f = fixture("report-multi");
    for pid in [100, 101] {
        capture(&f, 0, build_id(&f.bin)).write(&f.dir.join(format!("memshim.{pid}.msh")));
    }
    let template = f.dir.join("memshim.%p.msh");
    let o = run(&["report", "--format", "json", template.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["combined"]["processes"], 2);
    assert_eq!(v["combined"]["live_at_end_bytes_est"], 80 * MIB);
    assert_eq!(v["processes"].as_array().unwrap().len(), 2);
    let o = run(&["report", template.to_str().unwrap()]);
    assert!(
        stdout(&o).starts_with("memshim report: 2 processes"),
        "{}",
        stdout(&o)
    );
}

fn base_capture(f: &Fixture) -> SyntheticCapture {
    let mut c = SyntheticCapture::new(&header(0));
    c.push(memshim_format::Record::Modules(vec![
        memshim_format::Module {
            path: f.bin.display().to_string(),
            base: BASE,
            segments: vec![(0, 0x10_0000)],
            build_id: build_id(&f.bin),
        },
    ]));
    c
}

#[test]
fn python_frames_render_with_kind_python_and_their_line() {
    use memshim_format::{PyCode, PyFrame, Record};
    let f = fixture("report-python");
    let mut c = base_capture(&f);
    c.push(Record::PyCode(PyCode {
        id: 77,
        name: "handler".into(),
        qualname: "Service.handler".into(),
        filename: "serve.py".into(),
        first_line: 10,
        // One code unit at line 10 + 2 (one-line form, delta 2).
        linetable: vec![0x80 | (12 << 3), 0, 0],
        py_version: (3, 11),
    }));
    c.push(Record::Stack {
        id: 1,
        frames: vec![ret(&f, "leaky_alloc"), ret(&f, "main")],
        python: vec![PyFrame {
            code: 77,
            instr: 0,
            entry: true,
        }],
    });
    c.push(alloc(1, 0x1000, 4096, 1));
    c.end(2);
    let p = f.dir.join("py.msh");
    c.write(&p);
    let v = report_json(&p);
    let frames = v["leaks"][0]["frames"].as_array().unwrap();
    let py = frames
        .iter()
        .find(|fr| fr["kind"] == "python")
        .expect("a python frame");
    assert_eq!(py["function"], "Service.handler");
    assert_eq!(py["file"], "serve.py");
    assert_eq!(py["line"], 12);
    assert_eq!(py["module"], Value::Null);
}

#[test]
fn a_never_exiting_process_shows_its_steadily_growing_site() {
    let f = fixture("report-growth");
    let mut c = base_capture(&f);
    c.push(stack(1, &[ret(&f, "leaky_alloc"), ret(&f, "main")]));
    c.push(stack(2, &[ret(&f, "peak_fn"), ret(&f, "main")]));
    c.push(stack(3, &[ret(&f, "clean_alloc"), ret(&f, "main")]));
    // A 50 MiB cache filled at start and kept; 1 MiB leaked every 100 ms for 60 s; churn.
    c.push(alloc(1, 0x8000_0000, 50 * MIB, 2));
    let mut addr = 0x1_0000_0000u64;
    for i in 1..=600u64 {
        let t = i * 100_000_000;
        addr += 2 * MIB;
        c.push(alloc(t, addr, MIB, 1));
        c.push(alloc(t + 1, 0x9000_0000, 8 * MIB, 3));
        c.push(free(t + 2, 0x9000_0000));
        c.push(tick(t + 3, 200 * MIB, 100 * MIB));
    }
    // No End record: the process is still running when the capture is read.
    let p = f.dir.join("growth.msh");
    c.write(&p);
    let o = run(&["report", "--format", "json", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).lines().count(),
        1,
        "one truncation warning: {}",
        stderr(&o)
    );
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let growing = v["growing"].as_array().unwrap();
    assert_eq!(growing.len(), 1, "only the leak grows: {growing:#?}");
    assert_eq!(first_function(&growing[0]), "leaky_alloc");
    let rate = growing[0]["growth_bytes_per_s"].as_f64().unwrap();
    assert!(
        (rate / (10.0 * MIB as f64) - 1.0).abs() < 0.05,
        "10 MiB/s, got {rate}"
    );
    assert!(v["growing_rule"].as_str().unwrap().contains("quarter"));
    // The flat cache is the larger leak at the end, but it does not grow.
    assert_eq!(first_function(&v["leaks"][0]), "leaky_alloc");
    assert_eq!(v["leaks"][0]["bytes_est"], 600 * MIB);
    assert_eq!(first_function(&v["leaks"][1]), "peak_fn");
}

#[test]
fn inherited_allocations_are_live_but_not_allocated_by_the_child() {
    use memshim_format::{AllocKind, Record};
    let f = fixture("report-fork");
    let mut h = header(0);
    h.forked_from = Some(4000);
    let mut c = SyntheticCapture::new(&h);
    c.push(Record::Modules(vec![memshim_format::Module {
        path: f.bin.display().to_string(),
        base: BASE,
        segments: vec![(0, 0x10_0000)],
        build_id: build_id(&f.bin),
    }]));
    c.push(stack(1, &[ret(&f, "leaky_alloc")]));
    c.push(Record::Alloc {
        t: 0,
        tid: 1,
        addr: 0x10,
        size: MIB,
        stack: 1,
        kind: AllocKind::Malloc,
        inherited: true,
    });
    c.push(Record::Alloc {
        t: 0,
        tid: 1,
        addr: 0x20,
        size: MIB,
        stack: 1,
        kind: AllocKind::Malloc,
        inherited: true,
    });
    c.push(free(5, 0x20));
    c.end(10);
    let p = f.dir.join("child.msh");
    c.write(&p);
    let v = report_json(&p);
    assert_eq!(v["process"]["forked_from"], 4000);
    assert_eq!(v["totals"]["allocated_bytes_est"], 0);
    assert_eq!(v["totals"]["live_at_end_bytes_est"], MIB);
    assert_eq!(v["leaks"][0]["bytes_est"], MIB);
}
