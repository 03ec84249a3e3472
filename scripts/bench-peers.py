"""Driver of scripts/bench-peers: memshim against the memory profilers people would otherwise use,
on the same workloads, in one run. See BENCHMARKS.md for what each figure means.

For each (tool, workload): wall and CPU time (user+sys of the whole process tree, from wait4's
rusage) and peak RSS (ru_maxrss: the largest process of the tree) as ratios to no profiler
(medians of the runs, runs interleaved: each round runs every tool on every workload, the order
rotated from round to round); the size of what the tool wrote; and whether the tool's own
report names the known leak, with its estimate's error against the truth the workload prints.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
BIN = os.path.dirname(PY)
LIB = os.environ.get("MEMSHIM_LIB", os.path.join(ROOT, "target/release/libmemshim.so"))
CLI = os.path.join(ROOT, "target/release/memshim")
WORK = os.path.join(ROOT, "target/bench-peers")
BUILD = os.path.join(WORK, "build")
WL_SCRIPT = os.path.join(ROOT, "scripts/bench-peers-workloads.py")
PY_ALLOC = os.path.join(ROOT, "scripts/bench-python-workload.py")
LIBPAIRS = os.path.join(BUILD, "libpairs.so")
TOP = 5  # a leak counts as found when a matching site is among the tool's top 5 leak sites

# ---------------------------------------------------------------- workloads


def workloads(scale):
    """name -> (argv, leak markers or None). Markers: (native function, its only Python caller)."""
    pairs = str(max(20_000, int(1_000_000 * scale)))
    large_pairs = str(max(60_000, int(3_000_000 * scale)))
    leak_mib = str(max(1, int(48 * scale)))
    requests = str(max(20, int(800 * scale)))
    c_leak = ("leak_blocks", "call_pairs")
    serve_leak = ("score_tokens", "tokenize_request")
    return {
        "c-1t": ([PY, WL_SCRIPT, "cpairs", LIBPAIRS, "1", pairs, leak_mib], c_leak),
        "c-2t": ([PY, WL_SCRIPT, "cpairs", LIBPAIRS, "2", pairs, leak_mib], c_leak),
        "c128k-1t": ([PY, WL_SCRIPT, "cpairs", LIBPAIRS, "1", large_pairs, leak_mib, "large"], c_leak),
        "c128k-2t": ([PY, WL_SCRIPT, "cpairs", LIBPAIRS, "2", large_pairs, leak_mib, "large"], c_leak),
        "py-alloc": ([PY, PY_ALLOC, str(max(1, int(10 * scale)))], None),
        "serve": ([PY, WL_SCRIPT, "serve", BUILD, requests, "1", "2"], serve_leak),
        "serve-2t": ([PY, WL_SCRIPT, "serve", BUILD, requests, "2", "2"], serve_leak),
        "serve-big": ([PY, WL_SCRIPT, "servebig", BUILD, str(max(20, int(200 * scale)))], serve_leak),
    }


# ---------------------------------------------------------------- tools


def tool_argv(tool, cmd, rundir):
    """argv and extra environment that run `cmd` (a Python command line) under `tool`."""
    script_and_args = cmd[1:]
    if tool == "none":
        return cmd, {}
    if tool == "memshim":
        return cmd, {"LD_PRELOAD": LIB, "MEMSHIM_OUTPUT": os.path.join(rundir, "memshim.%p.msh")}
    if tool == "memshim-base":
        # Another build of the shim in the same interleaved run (before/after a change):
        # MEMSHIM_BASE_LIB=path/to/libmemshim.so.
        return cmd, {
            "LD_PRELOAD": os.environ["MEMSHIM_BASE_LIB"],
            "MEMSHIM_OUTPUT": os.path.join(rundir, "memshim.%p.msh"),
        }
    if tool == "memshim-base-all":
        return cmd, {
            "LD_PRELOAD": os.environ["MEMSHIM_BASE_LIB"],
            "MEMSHIM_RATE": "all",
            "MEMSHIM_OUTPUT": os.path.join(rundir, "memshim.%p.msh"),
        }
    if tool == "memshim-all":
        return cmd, {
            "LD_PRELOAD": LIB,
            "MEMSHIM_RATE": "all",
            "MEMSHIM_OUTPUT": os.path.join(rundir, "memshim.%p.msh"),
        }
    if tool == "memray":
        return [PY, "-m", "memray", "run", "-q", "-f", "-o", os.path.join(rundir, "memray.bin")] + script_and_args, {}
    if tool == "memray-native":
        return [PY, "-m", "memray", "run", "--native", "-q", "-f", "-o", os.path.join(rundir, "memray.bin")] + script_and_args, {}
    if tool == "heaptrack":
        return ["heaptrack", "-o", os.path.join(rundir, "heaptrack.out")] + cmd, {}
    if tool == "fil":
        return [os.path.join(BIN, "fil-profile"), "-o", os.path.join(rundir, "fil"), "--no-browser", "run"] + script_and_args, {}
    if tool == "massif":
        return ["valgrind", "--tool=massif", "--massif-out-file=" + os.path.join(rundir, "massif.out")] + cmd, {}
    raise ValueError(tool)


def tool_available(tool):
    if tool in ("none", "memshim", "memshim-all"):
        return os.path.exists(LIB) and os.path.exists(CLI)
    if tool in ("memshim-base", "memshim-base-all"):
        return os.path.exists(os.environ.get("MEMSHIM_BASE_LIB", "")) and os.path.exists(CLI)
    if tool.startswith("memray"):
        return subprocess.run([PY, "-c", "import memray"], capture_output=True).returncode == 0
    if tool == "heaptrack":
        return shutil.which("heaptrack") is not None and shutil.which("heaptrack_print") is not None
    if tool == "fil":
        return os.path.exists(os.path.join(BIN, "fil-profile"))
    if tool == "massif":
        return shutil.which("valgrind") is not None
    return False


# ---------------------------------------------------------------- running


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMSHIM_") and k != "LD_PRELOAD"}
    env.update(PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def dir_bytes(path, skip=("stdout.txt", "stderr.txt")):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            if dirpath == path and f in skip:
                continue
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


def run_one(tool, cmd, rundir, timeout):
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    argv, extra = tool_argv(tool, cmd, rundir)
    env = dict(base_env(), **extra)
    with open(os.path.join(rundir, "stdout.txt"), "wb") as out, open(os.path.join(rundir, "stderr.txt"), "wb") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=rundir, env=env, stdout=out, stderr=err, start_new_session=True)
        killed = []

        def kill():
            killed.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        timer.cancel()
    rc = os.waitstatus_to_exitcode(status)
    stdout = open(os.path.join(rundir, "stdout.txt"), errors="replace").read()
    stderr = open(os.path.join(rundir, "stderr.txt"), errors="replace").read()
    res = {
        "wall_s": wall,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "maxrss_kib": ru.ru_maxrss,
        "rc": rc,
        "capture_bytes": dir_bytes(rundir),
    }
    m = re.search(r"leaked=(\d+)", stdout)
    if m:
        res["truth_leaked"] = int(m.group(1))
    m = re.search(r"region_rss=(\d+)", stdout)
    if m:
        res["region_rss"] = int(m.group(1))
    m = re.search(r"cpu_ns=([\d.]+)", stdout)
    if m:
        res["loop_cpu_ns_per_pair"] = float(m.group(1))
    m = re.search(r"wall_ns=([\d.]+)", stdout)
    if m:
        res["loop_wall_ns_per_pair"] = float(m.group(1))
    if killed:
        res["error"] = f"timed out after {timeout} s"
    elif rc != 0:
        tail = [l for l in stderr.strip().splitlines() if l.strip()][-3:]
        res["error"] = f"exit {rc}: " + " | ".join(tail)[:300]
    return res


# ---------------------------------------------------------------- leak checks


def match_sites(sites, markers, truth):
    """sites: [(bytes, [function names])] of the tool's leak report. A site belongs to the leak when
    its stack names the leaking native function, or (tools without native stacks) its only Python
    caller. Found = such a site among the top TOP; estimate = the sum over all such sites."""
    native, pycaller = markers
    sites = sorted(sites, key=lambda s: -s[0])
    for marker, via in ((native, "native frame"), (pycaller, "Python caller")):
        hits = [i for i, (_, funcs) in enumerate(sites) if marker in funcs]
        if hits:
            est = sum(sites[i][0] for i in hits)
            return {
                "found": hits[0] < TOP,
                "rank": hits[0] + 1,
                "via": f"{marker} ({via})",
                "estimate_bytes": est,
                "rel_error": (est - truth) / truth if truth else None,
                "sites": len(sites),
            }
    return {"found": False, "rank": None, "via": None, "estimate_bytes": 0, "rel_error": None, "sites": len(sites)}


def leaks_memshim(rundir, markers, truth):
    caps = sorted(glob.glob(os.path.join(rundir, "memshim.*.msh")))
    if not caps:
        return {"error": "no capture written"}
    p = subprocess.run([CLI, "report", "--format", "json", "--top", "200"] + caps, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": "memshim report failed: " + p.stderr.strip()[:300]}
    doc = json.loads(p.stdout)
    reports = doc.get("processes", [doc]) if isinstance(doc, dict) else doc
    sites = []
    dropped = 0
    for rep in reports:
        dropped += rep.get("totals", {}).get("dropped_records", 0)
        for s in rep.get("leaks", []):
            sites.append((s["bytes_est"], [f.get("function") for f in s["frames"]]))
    return dict(match_sites(sites, markers, truth), dropped=dropped)


MEMRAY_LEAKS = r"""
import json, sys
from memray import FileReader
r = FileReader(sys.argv[1])
native = r.metadata.has_native_traces
out = []
for rec in r.get_leaked_allocation_records(merge_threads=True):
    st = rec.hybrid_stack_trace() if native else rec.stack_trace()
    out.append((rec.size, [f[0] for f in st]))
print(json.dumps(out))
"""


def leaks_memray(rundir, markers, truth):
    p = subprocess.run([PY, "-c", MEMRAY_LEAKS, os.path.join(rundir, "memray.bin")], capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": "memray FileReader failed: " + p.stderr.strip()[-300:]}
    return match_sites([(s, f) for s, f in json.loads(p.stdout)], markers, truth)


def leaks_heaptrack(rundir, markers, truth):
    files = glob.glob(os.path.join(rundir, "heaptrack.out*"))
    if not files:
        return {"error": "no heaptrack file"}
    p = subprocess.run(
        ["heaptrack_print", "-f", files[0], "--print-leaks", "1", "--print-peaks", "0", "--print-allocators", "0",
         "--print-temporary", "0", "--peak-limit", "1000", "--sub-peak-limit", "1000"],
        capture_output=True, text=True,
    )
    if p.returncode != 0:
        return {"error": "heaptrack_print failed: " + p.stderr.strip()[-300:]}
    text = p.stdout
    i = text.find("MEMORY LEAKS")
    if i < 0:
        return {"error": "no MEMORY LEAKS section in heaptrack_print output"}
    # "2.62M leaked over 40 calls from" at column 0, the allocating function on the next line,
    # then "at FILE:LINE" / "in MODULE" lines and the callers, indented (decimal size suffixes).
    sites = []
    mult = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    for line in text[i:].splitlines()[1:]:
        m = re.match(r"([\d.]+)([KMGT]?) leaked over \d+ calls? from", line)
        if m:
            if line[0].isspace():
                continue  # a caller breakdown of the site above
            sites.append([float(m.group(1)) * mult[m.group(2)], []])
            continue
        w = line.strip()
        if sites and w and not w.startswith(("at ", "in ")):
            sites[-1][1].append(w.split("(")[0].strip())
    r = match_sites(sites, markers, truth)
    r["note"] = "heaptrack_print sizes are rounded to 3 digits"
    return r


def leaks_fil(rundir, markers, truth):
    profs = glob.glob(os.path.join(rundir, "fil", "*", "peak-memory.prof"))
    if not profs:
        return {"error": "no peak-memory.prof"}
    sites = []
    for line in open(profs[0], errors="replace"):
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not n.isdigit():
            continue
        funcs = re.findall(r"\(([^()]*?)\)", stack)
        sites.append((int(n), funcs))
    r = match_sites(sites, markers, truth)
    r["note"] = "Fil reports memory at the peak, not leaks"
    return r


def leaks_massif(rundir, markers, truth):
    path = os.path.join(rundir, "massif.out")
    if not os.path.exists(path):
        return {"error": "no massif.out"}
    text = open(path, errors="replace").read()
    snaps = text.split("snapshot=")
    peak = [s for s in snaps if "heap_tree=peak" in s]
    if not peak:
        return {"error": "no peak snapshot"}
    sites = []
    # Direct children of the root (one space of indent) are the allocating functions; their
    # subtrees name the callers.
    lines = peak[-1].splitlines()
    cur = None
    for l in lines:
        m = re.match(r"^( *)n\d+: (\d+) (.*)$", l)
        if not m:
            continue
        depth, n, what = len(m.group(1)), int(m.group(2)), m.group(3)
        if depth == 1:
            cur = [n, []]
            sites.append(cur)
        if cur is not None and depth >= 1:
            cur[1] += re.findall(r": ([A-Za-z_]\w*) \(", what)
    r = match_sites([(n, f) for n, f in sites], markers, truth)
    r["note"] = "massif's peak snapshot, not leaks"
    return r


LEAK_CHECKS = {
    "memshim": leaks_memshim,
    "memshim-all": leaks_memshim,
    "memshim-base": leaks_memshim,
    "memray": leaks_memray,
    "memray-native": leaks_memray,
    "heaptrack": leaks_heaptrack,
    "fil": leaks_fil,
    "massif": leaks_massif,
}

def check_leak(tool, rundir, markers, truth):
    """Runs the leak check in a child process: the driver stays small, so the peak RSS that the
    next runs inherit through fork/exec accounting (ru_maxrss) is not inflated by it."""
    p = subprocess.run([PY, os.path.abspath(__file__), "--check", tool, rundir, markers[0], markers[1], str(truth)],
                       capture_output=True, text=True)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"error": f"leak check crashed: {p.stderr.strip()[-300:]}"}


# ---------------------------------------------------------------- reporting


def med(v):
    return statistics.median(v) if v else None


def fmt_bytes(n):
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def summarize(results, tools, wls, baseline_of):
    rows = []
    for wl in wls:
        for tool in tools:
            runs = results.get(wl, {}).get(tool)
            if runs is None:
                continue
            ok = [r for r in runs if "error" not in r]
            row = {"workload": wl, "tool": tool, "runs": len(ok)}
            if not ok:
                row["failed"] = runs[0].get("error", "failed") if runs else "not run"
                rows.append(row)
                continue
            base = [r for r in results[wl][baseline_of(tool)] if "error" not in r]
            for key, name in (("wall_s", "wall"), ("cpu_s", "cpu"), ("maxrss_kib", "rss")):
                row[name] = med([r[key] for r in ok])
                row[name + "_ratio"] = row[name] / med([r[key] for r in base]) if base else None
            row["capture_bytes"] = med([r["capture_bytes"] for r in ok])
            region = [r["region_rss"] for r in ok if "region_rss" in r]
            if region:
                row["region_rss"] = med(region)
            loop = [r["loop_cpu_ns_per_pair"] for r in ok if "loop_cpu_ns_per_pair" in r]
            bloop = [r["loop_cpu_ns_per_pair"] for r in base if "loop_cpu_ns_per_pair" in r]
            if loop and bloop:
                row["loop_ns"] = med(loop)
                row["loop_ratio"] = med(loop) / med(bloop)
            wloop = [r["loop_wall_ns_per_pair"] for r in ok if "loop_wall_ns_per_pair" in r]
            bwloop = [r["loop_wall_ns_per_pair"] for r in base if "loop_wall_ns_per_pair" in r]
            if wloop and bwloop:
                row["loop_wall_ns"] = med(wloop)
                row["loop_wall_ratio"] = med(wloop) / med(bwloop)
            leaks = [r["leak"] for r in ok if "leak" in r]
            if leaks:
                good = [l for l in leaks if "error" not in l]
                if good:
                    errs = [l["rel_error"] for l in good if l.get("rel_error") is not None]
                    row["leak_found"] = f"{sum(l['found'] for l in good)}/{len(good)}"
                    row["leak_via"] = good[-1]["via"]
                    row["leak_rank"] = good[-1]["rank"]
                    row["leak_error_median"] = med(errs)
                    row["leak_error_max_abs"] = max((abs(e) for e in errs), default=None)
                    row["leak_note"] = good[-1].get("note")
                    if any("dropped" in l for l in good):
                        row["dropped"] = max(l.get("dropped", 0) for l in good)
                else:
                    row["leak_found"] = "check failed: " + leaks[-1]["error"]
            rows.append(row)
    return rows


def markdown(rows):
    out = [
        "| workload | tool | wall x | CPU x | peak RSS x | region resident at exit | written | in-loop ns/pair x, thread CPU / wall | leak found (top 5) | leak estimate error | records dropped (most of a run) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "failed" in r:
            out.append(f"| {r['workload']} | {r['tool']} | failed: {r['failed'][:120]} | | | | | | | | |")
            continue
        f = lambda k: f"{r[k]:.2f}" if r.get(k) is not None else "-"
        if r["tool"].startswith("none"):
            abs_ = f"{r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, {r['rss'] / 1024:.0f} MiB"
            out.append(f"| {r['workload']} | {r['tool']} | {abs_} | | | | | {r.get('loop_ns', 0):.1f} / {r.get('loop_wall_ns', 0):.1f} ns | | | |" if "loop_ns" in r
                       else f"| {r['workload']} | {r['tool']} | {abs_} | | | | | | | | |")
            continue
        leak = "-"
        err = "-"
        if "leak_found" in r:
            leak = r["leak_found"]
            if r.get("leak_via"):
                leak += f" via {r['leak_via'].split(' (')[0]}, rank {r['leak_rank']}"
            if r.get("leak_note"):
                leak += f" ({r['leak_note']})"
            if r.get("leak_error_median") is not None:
                err = f"{r['leak_error_median'] * 100:+.1f}%"
                if r["runs"] > 1 and r["tool"] == "memshim":
                    err += f" (max abs {r['leak_error_max_abs'] * 100:.1f}%)"
        out.append(
            f"| {r['workload']} | {r['tool']} | {f('wall_ratio')} | {f('cpu_ratio')} | {f('rss_ratio')} | "
            f"{fmt_bytes(r['region_rss']) if r.get('region_rss') is not None else '-'} | "
            f"{fmt_bytes(r['capture_bytes']) if r['capture_bytes'] else '-'} | {f('loop_ratio')} / {f('loop_wall_ratio')} | {leak} | {err} | "
            f"{r['dropped'] if 'dropped' in r else '-'} |"
        )
    return "\n".join(out)


def machine():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    return {
        "nproc": os.cpu_count(),
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p' | head -1"),
        "kernel": platform.release(),
        "glibc": os.confstr("CS_GNU_LIBC_VERSION"),
        "python": f"{platform.python_version()} ({PY})",
        "numpy": sh(f"{PY} -c 'import numpy; print(numpy.__version__)'"),
        "memray": sh(f"{PY} -c 'import memray; print(memray.__version__)'"),
        "filprofiler": sh(f"{PY} -m pip show filprofiler 2>/dev/null | sed -n 's/^Version: //p'"),
        "heaptrack": sh("heaptrack --version 2>&1 | head -1"),
        "valgrind": sh("valgrind --version"),
        "memshim_commit": sh(f"git -C {ROOT} rev-parse --short HEAD"),
        # The build is of the work tree: say if the shim/CLI/format sources differ from the commit.
        "memshim_uncommitted": sh(f"git -C {ROOT} status --porcelain -- shim format src Cargo.toml | tr '\\n' ' '"),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }


# ---------------------------------------------------------------- main

ALL_TOOLS = ["none", "memshim", "memshim-all", "memray", "memray-native", "heaptrack", "fil"]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        tool, rundir, native, pycaller, truth = sys.argv[2:7]
        try:
            r = LEAK_CHECKS[tool](rundir, (native, pycaller), int(truth))
        except Exception as e:  # a parser that trips on a tool's output is reported, not fatal
            r = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(r))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--scale", type=float, default=1.0, help="workload size factor (default 1)")
    ap.add_argument("--massif-scale", type=float, default=0.05, help="workload size under massif (default 0.05)")
    ap.add_argument("--massif-runs", type=int, default=3, help="rounds of massif and its baseline (default 3)")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS + ["massif"]), help="comma-separated (default: all)")
    ap.add_argument("--workloads", default="c-1t,c-2t,c128k-1t,c128k-2t,py-alloc,serve,serve-2t,serve-big",
                    help="comma-separated (default: all)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds before a run is killed (default 300)")
    ap.add_argument("--out", default=os.environ.get("BENCH_RESULTS", os.path.join(ROOT, "bench-results")),
                    help="directory of the results files (default bench-results/, or $BENCH_RESULTS)")
    ap.add_argument("--name", default="peers",
                    help="results file name, NAME.{json,md}, replaced by each run (default peers)")
    a = ap.parse_args()

    tools = [t for t in a.tools.split(",") if t]
    if a.massif_runs < 1:
        tools = [t for t in tools if t != "massif"]
    wl_all = workloads(a.scale)
    wls = [w for w in a.workloads.split(",") if w]
    main_tools = [t for t in tools if t != "massif"]
    if "none" not in main_tools:
        main_tools.insert(0, "none")
    missing = {t: "not installed" for t in tools if not tool_available(t)}
    info = machine()
    started = time.time()
    print(f"bench-peers: {len(wls)} workloads x {len(main_tools)} tools x {a.runs} rounds (scale {a.scale})"
          + (f", massif at scale {a.massif_scale} x {a.massif_runs}" if "massif" in tools else ""), flush=True)
    if missing:
        print(f"  unavailable: {missing}", flush=True)

    results = {w: {t: [] for t in main_tools} for w in wls}
    failed = set()
    runs_dir = os.path.join(WORK, "runs")

    def do(wl, tool, cmd, markers, key, last):
        if (wl, key) in failed:
            return
        if tool in missing:
            results[wl][key].append({"error": missing[tool]})
            failed.add((wl, key))
            return
        rundir = os.path.join(runs_dir, f"{wl}.{key}")
        r = run_one(tool, cmd, rundir, a.timeout)
        if "error" not in r and markers and tool in LEAK_CHECKS and r.get("truth_leaked"):
            # memshim samples: check every run; the exact tools: the last run (their reports are
            # deterministic and slow to produce on big captures).
            if tool == "memshim" or last:
                r["leak"] = check_leak(tool, rundir, markers, r["truth_leaked"])
        if "error" in r:
            failed.add((wl, key))
            print(f"  {wl:<9} {key:<14} FAILED {r['error'][:200]}", flush=True)
        else:
            lk = r.get("leak")
            note = ""
            if lk and "error" in lk:
                note = f"  leak check failed: {lk['error'][:150]}"
            elif lk:
                err = lk.get("rel_error")
                note = f"  leak found={lk['found']} rank={lk['rank']} err=" + (f"{err * 100:+.1f}%" if err is not None else "-")
            print(f"  {wl:<9} {key:<18} wall {r['wall_s']:7.2f} s  cpu {r['cpu_s']:7.2f} s  rss {r['maxrss_kib'] / 1024:7.1f} MiB"
                  f"  region {r.get('region_rss', 0) / 1048576:5.1f} MiB"
                  f"  wrote {fmt_bytes(r['capture_bytes']):>10}{note}", flush=True)
        results[wl][key].append(r)
        if tool != "none":
            shutil.rmtree(rundir, ignore_errors=True)

    for rnd in range(a.runs):
        print(f"round {rnd + 1}/{a.runs}  (load {open('/proc/loadavg').read().split()[0]})", flush=True)
        for wi, wl in enumerate(wls):
            cmd, markers = wl_all[wl]
            k = (rnd + wi) % len(main_tools)
            for tool in main_tools[k:] + main_tools[:k]:
                do(wl, tool, cmd, markers, tool, rnd == a.runs - 1)

    if "massif" in tools:
        wl_small = workloads(a.massif_scale)
        for wl in wls:
            results[wl]["none (massif size)"] = []
            results[wl]["massif"] = []
        for rnd in range(a.massif_runs):
            print(f"massif round {rnd + 1}/{a.massif_runs}", flush=True)
            for wl in wls:
                cmd, markers = wl_small[wl]
                order = [("none", "none (massif size)"), ("massif", "massif")]
                if rnd % 2:
                    order.reverse()
                for tool, key in order:
                    do(wl, tool, cmd, markers, key, rnd == a.massif_runs - 1)

    keys = main_tools + (["none (massif size)", "massif"] if "massif" in tools else [])
    rows = summarize(results, keys, wls, lambda t: "none (massif size)" if t == "massif" else "none")
    info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    info["driver_maxrss_kib"] = __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss
    info["duration_s"] = round(time.time() - started, 1)
    table = markdown(rows)
    print()
    print(table)
    os.makedirs(a.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = {
        "command": "scripts/bench-peers " + " ".join(sys.argv[1:]),
        "date": stamp,
        "machine": info,
        "settings": vars(a),
        "workloads": {w: {"argv": [os.path.relpath(x, ROOT) if x.startswith(ROOT) else x for x in wl_all[w][0]],
                          "leak_markers": wl_all[w][1]} for w in wls},
        "summary": rows,
        "runs": results,
    }
    # One file per benchmark under a stable name, the latest run: git keeps the earlier ones.
    jpath = os.path.join(a.out, f"{a.name}.json")
    with open(jpath, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    mpath = os.path.join(a.out, f"{a.name}.md")
    with open(mpath, "w") as f:
        f.write(f"# {a.name}\n\n`{doc['command']}`, {stamp}\n\n")
        f.write("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()) + "\n\n")
        f.write(table + "\n")
    print(f"\nresults: {os.path.relpath(jpath, ROOT)}, {os.path.relpath(mpath, ROOT)}  ({info['duration_s']} s)")


if __name__ == "__main__":
    main()
