//! Exporters on a synthetic capture pointing into a real compiled program: flamegraph SVGs,
//! the timeline, pprof read back by `go tool pprof`, and the HTML page looked at in headless
//! Chromium (a screenshot whose pixels must show the timeline and the flamegraphs).

use memshim_test_support::prelude::cli::*;
use std::path::Path;
use std::process::Command;

fn setup(name: &str) -> (Fixture, std::path::PathBuf) {
    let f = fixture(name);
    let p = f.dir.join("cap.msh");
    capture(&f, 0, build_id(&f.bin)).write(&p);
    (f, p)
}

fn ok(args: &[&str]) {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    assert_eq!(stderr(&o), "", "{args:?}");
}

#[test]
fn flamegraphs_show_the_right_functions_per_kind() {
    let (f, p) = setup("export-fg");
    let cap = p.to_str().unwrap();
    for (kind, has, lacks) in [
        ("leaks", "leaky_alloc", "clean_alloc"),
        ("peak", "peak_fn", "clean_alloc"),
        ("allocations", "clean_alloc", "no-such-fn"),
    ] {
        let out = f.dir.join(format!("{kind}.svg"));
        ok(&[
            "flamegraph",
            cap,
            "--kind",
            kind,
            "-o",
            out.to_str().unwrap(),
        ]);
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{kind}");
        assert!(
            svg.contains(&format!("<title>{has} (")),
            "{kind}: {has} is a frame"
        );
        assert!(!svg.contains(lacks), "{kind}: {lacks} must not appear");
        assert!(
            svg.contains("<title>main ("),
            "{kind}: callers are above the allocation site"
        );
    }
}

#[test]
fn timeline_plots_rss_and_marks_the_peak() {
    let (f, p) = setup("export-tl");
    let out = f.dir.join("tl.svg");
    ok(&["timeline", p.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("<title>RSS</title>"));
    assert!(svg.contains("<title>heap in use (allocator)</title>"));
    assert!(svg.contains("<title>live (from samples)</title>"));
    assert!(svg.contains("peak 340.0 MiB at 0.05 s"), "{svg}");
}

#[test]
fn pprof_reads_back_in_go_tool_pprof() {
    let (f, p) = setup("export-pprof");
    let out = f.dir.join("p.pb.gz");
    ok(&["pprof", p.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let gz = std::fs::read(&out).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    if !have_tool("go", &["version"], "golang-go") {
        return;
    }
    let top = |index: &str| {
        let o = Command::new("go")
            .args([
                "tool",
                "pprof",
                "-top",
                "-nodecount=5",
                &format!("-sample_index={index}"),
            ])
            .arg(&out)
            .env("PPROF_BINARY_PATH", "/nonexistent")
            .env("HOME", &f.dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let first_row = |out: &str| -> String {
        let after = out.split("flat%").nth(1).expect("a -top table");
        after.lines().nth(1).unwrap_or_default().to_string()
    };
    let inuse = top("inuse_space");
    assert!(
        first_row(&inuse).contains("leaky_alloc") && first_row(&inuse).contains("40MB"),
        "{inuse}"
    );
    assert!(!inuse.contains("clean_alloc"), "{inuse}");
    let alloc = top("alloc_space");
    assert!(
        first_row(&alloc).contains("clean_alloc") && first_row(&alloc).contains("1000MB"),
        "{alloc}"
    );
    let objs = top("alloc_objects");
    assert!(
        first_row(&objs).contains("clean_alloc") && first_row(&objs).contains("100 "),
        "{objs}"
    );
    for t in [
        "alloc_objects",
        "alloc_space",
        "inuse_objects",
        "inuse_space",
        "held_objects",
        "held_space",
    ] {
        assert!(top(t).contains(&format!("Type: {t}")), "{t}");
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Pixels of `png` within `tol` of `rgb` in every channel.
fn count_color(img: &[u8], channels: usize, rgb: [u8; 3], tol: u8) -> usize {
    img.chunks(channels)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= tol))
        .count()
}

fn decode_png(path: &Path) -> (Vec<u8>, usize) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (buf, info.color_type.samples())
}

#[test]
fn html_page_renders_timeline_and_flamegraphs_in_chromium() {
    let (f, p) = setup("export-html");
    let out = f.dir.join("r.html");
    ok(&["html", p.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "self-contained"
    );
    assert_eq!(html.matches("<iframe class=\"flamegraph\"").count(), 3);
    assert!(html.contains("id=\"memshim-timeline\""));
    if chromium().is_none() {
        // Fails under CI, skipped elsewhere, naming what is missing (tests/pythons).
        have_tool("chromium", &["--version"], "chromium");
        return;
    }
    let shot = f.dir.join("shot.png");
    let o = Command::new(chromium().unwrap())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg("--window-size=1300,1700")
        .arg(format!(
            "--user-data-dir={}",
            f.dir.join("chrome-profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (img, ch) = decode_png(&shot);
    // The timeline's RSS line (#1f77b4) and its red peak marker (#d62728).
    let rss = count_color(&img, ch, [0x1f, 0x77, 0xb4], 12);
    let peak = count_color(&img, ch, [0xd6, 0x27, 0x28], 12);
    // Flamegraph frames in inferno's "mem" palette: red 0, green 190-240.
    let frames = img
        .chunks(ch)
        .filter(|p| p[0] < 8 && p[1] >= 188 && p[1] <= 242)
        .count();
    assert!(rss > 200, "timeline RSS line visible: {rss} px");
    assert!(peak > 50, "peak marker visible: {peak} px");
    assert!(frames > 5000, "flamegraph frames visible: {frames} px");
}
