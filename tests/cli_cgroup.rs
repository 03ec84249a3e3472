//! The cgroup memory limit next to RSS: a real program runs under the real shim inside a
//! cgroup this test makes with a memory limit (v2 `memory.max`, or v1 `memory.limit_in_bytes`),
//! moved in before it execs; the report's header and the timeline must say the limit. Needs
//! root and a writable cgroup hierarchy: skipped (tests/pythons) where cgroups cannot be made.

use std::path::{Path, PathBuf};
use std::process::Command;

use memshim_test_support::fleet::*;
use serde_json::Value;

const LIMIT: u64 = 80 << 20;

/// A fresh cgroup with `LIMIT` set; removed on drop.
struct Cgroup {
    dir: PathBuf,
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The hierarchy to make it in: v2 when its root offers the memory controller, else v1's
/// memory controller.
fn make_cgroup() -> Result<Cgroup, String> {
    let name = format!("memshim-test-{}", std::process::id());
    let v2 = Path::new("/sys/fs/cgroup");
    let v2_memory = std::fs::read_to_string(v2.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"));
    let (dir, file) = if v2_memory {
        (v2.join(&name), "memory.max")
    } else if Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        (
            Path::new("/sys/fs/cgroup/memory").join(&name),
            "memory.limit_in_bytes",
        )
    } else {
        return Err("no cgroup v2 memory controller and no v1 memory hierarchy".into());
    };
    std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let cg = Cgroup { dir };
    std::fs::write(cg.dir.join(file), LIMIT.to_string())
        .map_err(|e| format!("writing {}: {e}", cg.dir.join(file).display()))?;
    Ok(cg)
}

#[test]
fn the_report_and_the_timeline_show_the_cgroups_memory_limit() {
    let Some(so) = shim() else { return };
    let cg = match make_cgroup() {
        Ok(cg) => cg,
        Err(why) => {
            memshim_test_pythons::Missing::new("a cgroup with a memory limit", why).skip();
            return;
        }
    };
    let dir = scratch("cgroup");
    let f = build_fleet(&dir);
    let caps = dir.join("caps");
    // The wrapper moves itself into the cgroup, then execs the program under the shim (the
    // shell itself runs without it, so the one capture is the program's).
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        r#"echo $$ > "$0/cgroup.procs" && exec env LD_PRELOAD="$1" "$2" leak 96"#,
    ])
    .arg(&cg.dir)
    .arg(&so)
    .arg(&f.prog);
    under_shim(&mut cmd, &so, &caps);
    cmd.env_remove("LD_PRELOAD");
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "done");
    let cap = captures_in(&caps);
    assert_eq!(cap.len(), 1, "{cap:?}");
    let cap = cap[0].to_str().unwrap();

    let o = memshim(&["report", "--format", "json", cap]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_str(&text(&o.stdout)).unwrap();
    assert_eq!(
        v["totals"]["cgroup_memory_max_bytes"], LIMIT,
        "{:#}",
        v["totals"]
    );

    let o = memshim(&["report", cap]);
    let out = text(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("mem limit  80.0 MiB (cgroup memory limit")),
        "{out}"
    );

    let svg_path = dir.join("tl.svg");
    let o = memshim(&["timeline", cap, "-o", svg_path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    // 24 MiB leaked: RSS stays within a fourth of the limit, so the line is drawn to scale.
    assert!(svg.contains(r#"<g id="cgroup-limit"><line"#), "{svg}");
    assert!(svg.contains("cgroup memory limit 80.0 MiB</text>"), "{svg}");
}
