"""A serve-like Python service for scripts/bench-soak: for SECONDS it allocates about 300 MB/s
in short-lived buffers (requests), keeps a 64-entry cache of 512 KiB entries, and leaks 10 MB a
minute in leak_step() (the truth). At the end it prints what it leaked and how much CPU the
shim's writer thread used against the whole process."""
import os
import sys
import time

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 600.0
LEAK_PER_MIN = 10 * 1000 * 1000
kept = []
cache = {}


def leak_step(n):
    kept.append(bytearray(n))


def handle(i):
    body = bytearray(1 << 20)          # the request's buffer
    parts = [bytes(body[k:k + 65536]) for k in range(0, len(body), 262144)]
    cache[i % 64] = bytearray(512 * 1024)
    return len(parts)


def cpu_of(path):
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


start = time.monotonic()
leaked = 0
last_leak = start
i = 0
while True:
    now = time.monotonic()
    if now - start >= SECONDS:
        break
    # About 300 MB/s: each request allocates ~1.3 MB; pace to ~230 requests a second.
    for _ in range(23):
        handle(i)
        i += 1
    if now - last_leak >= 1.0:
        step = int(LEAK_PER_MIN / 60)
        leak_step(step)
        leaked += step
        last_leak = now
    time.sleep(max(0.0, 0.1 - (time.monotonic() - now)))

writer = 0.0
for tid in os.listdir("/proc/self/task"):
    try:
        with open(f"/proc/self/task/{tid}/comm") as f:
            if f.read().strip() == "memshim-writer":
                writer += cpu_of(f"/proc/self/task/{tid}/stat")
    except OSError:
        pass
total = cpu_of("/proc/self/stat")
print(f"leaked {leaked} requests {i} seconds {time.monotonic() - start:.1f} "
      f"writer_cpu {writer:.2f} process_cpu {total:.2f}")
