"""Driver of scripts/bench-python: interleaved runs, child CPU time from wait4's rusage."""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

lib, memshim, runs, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
instructions = len(sys.argv) > 5 and sys.argv[5] == "--instructions"
here = os.path.dirname(os.path.abspath(__file__))
# The interpreter measured (scripts/bench-python's PYTHON=); this driver runs on the machine's own.
workload = [os.environ.get("BENCH_WORKLOAD_PYTHON", sys.executable), os.path.join(here, "bench-python-workload.py"), rounds]
out = tempfile.mkdtemp(prefix="memshim-bench-")

base = {k: v for k, v in os.environ.items() if not k.startswith("MEMSHIM_") and k != "LD_PRELOAD"}
base["PYTHONHASHSEED"] = "0"
configs = {
    "no preload": dict(base),
    "memshim": dict(base, LD_PRELOAD=lib, MEMSHIM_OUTPUT=os.path.join(out, "py.%p.msh")),
    "memshim, MEMSHIM_PYTHON=0": dict(
        base, LD_PRELOAD=lib, MEMSHIM_PYTHON="0", MEMSHIM_OUTPUT=os.path.join(out, "nopy.%p.msh")
    ),
}


def cpu(env):
    p = subprocess.Popen(workload, env=env, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"bench-python: workload failed ({p.returncode})")
    return ru.ru_utime + ru.ru_stime


def pycode_records(prefix):
    """PyCode records in the last capture with this prefix: > 0 when Python frames were on."""
    caps = sorted((f for f in os.listdir(out) if f.startswith(prefix)), key=lambda f: os.path.getmtime(os.path.join(out, f)))
    if not caps:
        return None
    s = subprocess.run([memshim, "stats", os.path.join(out, caps[-1])], capture_output=True, text=True).stdout
    m = re.search(r"^\s+pycode\s+(\d+)", s, re.M)
    return int(m.group(1)) if m else 0


times = {k: [] for k in configs}
names = list(configs)
for r in range(runs):
    # Rotate the order so drift in machine load hits every configuration alike.
    for k in names[r % 3:] + names[: r % 3]:
        times[k].append(cpu(configs[k]))
    for f in os.listdir(out):
        if r < runs - 1:
            os.remove(os.path.join(out, f))

py_on, py_off = pycode_records("py."), pycode_records("nopy.")
base_med = statistics.median(times["no preload"])
print(f"workload: {' '.join(workload)}  ({runs} interleaved runs, CPU = user+sys of the child)")
for k in names:
    med = statistics.median(times[k])
    print(f"  {k:<28} median {med:6.3f} s  ratio {med / base_med:5.3f}  (min {min(times[k]):.3f}, max {max(times[k]):.3f})")
# Each run's ratio to the no-preload run of the same round (taken seconds apart), then the median:
# pairing cancels most of a shared machine's drift between rounds.
for k in names[1:]:
    paired = sorted(t / b for t, b in zip(times[k], times["no preload"]))
    q = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3
    print(f"  {k:<28} paired ratio {statistics.median(paired):5.3f}  (quartiles {q[0]:.3f}-{q[2]:.3f})")
print(f"  Python code objects recorded: with frames {py_on}, with MEMSHIM_PYTHON=0 {py_off}")
if py_off:
    print("  note: this libmemshim.so ignores MEMSHIM_PYTHON=0 (Python frames still recorded):")
    print("        the two memshim rows measure the same thing.")


def collected(env):
    """Instructions of all threads under callgrind (valgrind), 4 rounds of the workload."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + workload[:-1] + ["4"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or not m:
        sys.exit("bench-python: callgrind failed:\n" + r.stderr[-2000:])
    return int(m.group(1))


if instructions:
    if not shutil.which("valgrind"):
        sys.exit("bench-python: --instructions needs valgrind (apt-get install valgrind)")
    counts = {k: collected(configs[k]) for k in names}
    print("instructions (callgrind, all threads, workload with 4 rounds):")
    for k in names:
        print(f"  {k:<28} {counts[k]:>14,}  ratio {counts[k] / counts['no preload']:5.3f}")
shutil.rmtree(out, ignore_errors=True)
