"""pytest plugin: ``pytest --memshim`` runs the session under libmemshim.so, and two markers
bound what a test may leave behind or reach:

    @pytest.mark.memshim_limit_leaks("10 MB")   # allocated by the test, still live at its end
    @pytest.mark.memshim_limit_peak("200 MB")   # the test's own allocations at their highest

Without the shim loaded, ``--memshim`` re-executes pytest under ``memshim run`` (same
arguments). Every allocation is recorded by default (``--memshim-rate all``: exact); at a
sampled rate a limit is checked from estimates, and a failure says so with its error bar.
Each limited test is framed by two marks (``memshim.mark``); at its end the plugin asks
``memshim check --since-mark --until-mark`` about that window of the capture, and a broken
limit fails the test with the top site: the native function and its Python caller.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

import memshim
from memshim.__main__ import binary

REEXEC = "MEMSHIM_PYTEST_REEXEC"
# How long the plugin waits for the shim's writer to put a test's end mark in the capture (it
# flushes every 80 ms): a bound on a wait, not a measurement.
FLUSH_WAIT_S = 10.0
LIMITS = {"memshim_limit_leaks": ("--max-leak", "leaked"), "memshim_limit_peak": ("--max-peak", "peak")}


def pytest_addoption(parser):
    group = parser.getgroup("memshim", "memory limits checked by memshim")
    group.addoption("--memshim", action="store_true", help="run the session under memshim and enforce the memshim_limit_* markers")
    group.addoption(
        "--memshim-rate",
        default="all",
        help="sampling rate of the session's capture: all (default, exact) or a size such as 64K (estimates)",
    )
    group.addoption("--memshim-dir", default=None, help="directory for the session's capture (default: a new temporary one)")


def pytest_configure(config):
    config.addinivalue_line("markers", "memshim_limit_leaks(size): fail when the test's allocations still live at its end pass size (with --memshim)")
    config.addinivalue_line("markers", "memshim_limit_peak(size): fail when the test's own allocations at their highest pass size (with --memshim)")
    if not config.getoption("memshim"):
        return
    if memshim.active():
        config.pluginmanager.register(_Limits(binary()), "memshim-limits")
        return
    if os.environ.get(REEXEC):
        raise pytest.UsageError("memshim: error: pytest was re-run under memshim run but the shim is not recording")
    exe = binary()
    if exe is None:
        raise pytest.UsageError("memshim: error: the memshim executable is not installed beside this Python")
    out = config.getoption("memshim_dir") or tempfile.mkdtemp(prefix="memshim-pytest-")
    os.makedirs(out, exist_ok=True)
    os.environ[REEXEC] = "1"
    argv = [exe, "run", "--rate", config.getoption("memshim_rate"), "-o", os.path.join(os.path.abspath(out), "memshim.%p.msh"), "--"]
    argv += [sys.executable, "-m", "pytest"] + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(exe, argv)


class _Limits:
    """Marks each limited test's window and checks it when the test ends."""

    def __init__(self, exe):
        self.exe = exe
        self.capture = os.environ.get("MEMSHIM_OUTPUT", "memshim.%p.msh").replace("%p", str(os.getpid()))
        self.capture = os.path.abspath(self.capture)
        self.count = 0
        self.failures = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        limits = [(m.name, m.args[0]) for m in item.iter_markers() if m.name in LIMITS and m.args]
        if not limits:
            yield
            return
        self.count += 1
        start, end = f"pytest {self.count} start", f"pytest {self.count} end"
        memshim.mark(start)
        outcome = yield
        memshim.mark(end)
        if outcome.excinfo is None:
            broken = self.check(start, end, limits)
            if broken:
                self.failures[item.nodeid] = broken

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        if call.when == "call" and item.nodeid in self.failures:
            rep.outcome = "failed"
            rep.longrepr = self.failures.pop(item.nodeid)

    def check(self, start, end, limits):
        """The failure message when a limit is broken, else None."""
        args = [self.exe, "check", self.capture, "--since-mark", start, "--until-mark", end, "--format", "json"]
        for name, size in limits:
            args += [LIMITS[name][0], str(size)]
        # The CLI is not to be profiled: no shim in its environment.
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MEMSHIM_OUTPUT")}
        deadline = time.monotonic() + FLUSH_WAIT_S
        while True:
            r = subprocess.run(args, capture_output=True, text=True, env=env)
            if r.returncode in (0, 1):
                break
            # The end mark not written yet (the writer flushes every 80 ms): ask again.
            if "no mark" not in r.stderr or time.monotonic() > deadline:
                return "memshim: cannot check the test's limits: " + r.stderr.strip()
            time.sleep(0.05)
        result = json.loads(r.stdout)
        proc = result["processes"][0]
        lines = []
        for c in proc["checks"]:
            if c["passed"]:
                continue
            what = "leaked" if c["limit"] == "leak" else "peak"
            value = _size(c["value_est"])
            if proc["mode"] == "sampled":
                value += f" ± {_size(c['error'])} (estimated from samples at rate {_size(proc['rate_bytes'])})"
            lines.append(f"memshim: {what} {value} over the limit {_size(c['max'])}: top site {c['top_site']['line']}")
        return "\n".join(lines) or None


def _size(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
