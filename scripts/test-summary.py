#!/usr/bin/env python3
"""The closing summary of scripts/test.sh: reads the output of `cargo test --no-fail-fast`, the
skips the tests recorded (tests/pythons: one `binary<TAB>test<TAB>what<TAB>line` per skip) and
cargo's exit status; prints the skipped and failed tests, what was missing, then one line
`memshim: N passed, N failed, N skipped`. Exits 1 when anything failed.

A skipped test either returned early (cargo says `ok`) or, where it could not return, failed
with the line that names what is missing (cargo says `FAILED`): both count as skipped. Under CI
nothing is recorded as skipped, so such a test counts as failed."""
import os
import re
import sys

log_path, skips_path, cargo_rc = sys.argv[1], sys.argv[2], int(sys.argv[3])

running = re.compile(r"^\s*Running (?:\S+ )?.*\((.+)\)\s*$")
doctests = re.compile(r"^\s*Doc-tests (\S+)\s*$")
result = re.compile(r"^test (.+?) \.\.\. (ok|FAILED|ignored)\b")
closing = re.compile(r"^test result: (ok|FAILED)\.")
section = re.compile(r"^---- (.+) stdout ----$")

binary = None
results = {}  # (binary, test) -> status
binaries = []  # in order
closed = set()
said = {}  # (binary, test) -> the first line a failed test printed
current = None
with open(log_path, errors="replace") as f:
    for line in f:
        line = line.rstrip("\n")
        m = running.match(line)
        if m:
            binary = os.path.basename(m.group(1))
            binaries.append(binary)
            continue
        m = doctests.match(line)
        if m:
            binary = "doc-tests " + m.group(1)
            binaries.append(binary)
            continue
        m = section.match(line)
        if m and binary is not None:
            current = (binary, m.group(1))
            continue
        if current is not None and line.strip():
            said.setdefault(current, line.strip())
            current = None
        m = result.match(line)
        if m and binary is not None:
            results[(binary, m.group(1))] = m.group(2)
            continue
        if closing.match(line) and binary is not None:
            closed.add(binary)

skips = {}
try:
    with open(skips_path, errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4:
                skips.setdefault((parts[0], parts[1]), (parts[2], parts[3]))
except FileNotFoundError:
    pass

passed, failed, skipped = [], [], []
for key, status in results.items():
    if key in skips:
        skipped.append((key, skips[key][1]))
    elif status == "ok":
        passed.append(key)
    elif status == "FAILED":
        failed.append((key, said.get(key, "failed")))
    else:
        skipped.append((key, "#[ignore]"))
# A test binary that died (a signal, an abort) prints no closing line: count it as one failure.
for b in binaries:
    if b not in closed:
        failed.append(((b, "(the whole binary)"), "ended without a test result line"))
# cargo fails when any test did, a skipped one that could not return included; when no test
# failed at all, something else did (a build, a binary that could not start).
if cargo_rc != 0 and "FAILED" not in results.values() and not failed:
    failed.append((("cargo test", ""), f"exited {cargo_rc} with no failed test to show (see above)"))

print()
for (b, t), why in sorted(skipped):
    print(f"SKIPPED {b} {t}: {why}")
for (b, t), why in sorted(failed):
    print(f"FAILED  {b} {t}: {why}")
def natural(s):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s)]


missing = sorted({skips[k][0] for k, _ in skipped if k in skips}, key=natural)
if missing:
    print("missing: " + ", ".join(missing))
print(f"memshim: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped")
sys.exit(1 if failed else 0)
