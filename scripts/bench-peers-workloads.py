"""Workloads of scripts/bench-peers (the pure-Python one is scripts/bench-python-workload.py).

  cpairs LIB THREADS PAIRS LEAK_MIB [large]
      the C malloc/free microbenchmark (benches/malloc_pair.c built as a shared library), called
      through ctypes so that Python-only profilers (memray, Fil) can run it too. The C code leaks
      LEAK_MIB MiB from leak_blocks() (Python caller: call_pairs). Sizes 16 B-4 KiB, or with
      `large` 16 B-128 KiB (60% up to 128 B, 30% up to 1 KiB, 9% up to 16 KiB, 1% up to 128 KiB).
  serve EXT_DIR REQUESTS THREADS ARRAY_MB
      a model-serving-like loop: per request a float32 array of ARRAY_MB MB, copies, slices and
      temporaries, a 64-entry LRU cache of feature slices, a JSON response, and the native
      extension peersext (scripts/bench-peers-ext.c) whose score_tokens() leaks 64 KiB per call
      (Python caller: tokenize_request). THREADS > 1 serves the requests from that many threads.

  servebig EXT_DIR REQUESTS
      the large-array serving loop where the shim's region shows in RSS: per request a float32
      input of 1 to 8 MB, a copy, slices and temporaries, a JSON response, a 32-entry LRU cache
      of 512 KiB entries, and 4 native calls (normalize 3 times, score_tokens once: it leaks
      64 KiB per call). Baseline peak RSS about 140 MB.

Each prints a line with `leaked=BYTES` (the truth) and a checksum, and last a line
`region_rss=BYTES`: what is resident of memshim's sample region (its fixed range, see
shim/src/sys/region.rs) just before exit, from /proc/self/smaps (0 without the shim).
"""
import sys

# memshim's sample region: [BASE, BASE + REGION_LEN) in shim/src/sys/region.rs.
REGION = (0x2000_0000_0000, 0x4000_0000_0000)


def region_rss():
    """Resident bytes of the mappings inside memshim's region, from /proc/self/smaps."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                a, b = (int(v, 16) for v in head.split("-"))
                inside = REGION[0] <= a and b <= REGION[1]
            elif inside and head == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


def call_pairs(lib, threads, pairs, leak_mib, large):
    import ctypes

    so = ctypes.CDLL(lib)
    run = so.run_pairs_large if large else so.run_pairs
    run.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_long]
    return run(threads, pairs, leak_mib)


def cpairs(argv):
    lib, threads, pairs, leak_mib = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    return call_pairs(lib, threads, pairs, leak_mib, argv[4:] == ["large"])


def serve(argv):
    import collections
    import json
    import threading

    sys.path.insert(0, argv[0])
    import numpy as np
    import peersext

    requests, threads, array_mb = int(argv[1]), int(argv[2]), float(argv[3])
    n = int(array_mb * 1048576 / 4)
    words = ["Alpha", "beta", "Gamma", "delta", "epsilon", "Zeta", "eta", "theta"]
    texts = [" ".join(words[(i * 7 + k) % 8] for k in range(40 + i % 160)) for i in range(97)]
    cache = collections.OrderedDict()
    lock = threading.Lock()
    out = []

    def tokenize_request(text):
        return peersext.score_tokens(text)

    def handle(i):
        x = np.full(n, float(i % 13), dtype=np.float32)  # the request's input tensor
        y = x.copy()
        y[::3] *= 0.5
        z = y[1::2] * 2.0 + 1.0  # temporaries
        h = np.concatenate([z, y[: n // 8]])
        feats = h[:: max(1, len(h) // 256)][:256]
        text = peersext.normalize(texts[i % 97])
        ntok = tokenize_request(text)
        with lock:  # a bounded LRU cache of feature slices
            cache[i % 128] = h[:16384].copy()
            cache.move_to_end(i % 128)
            while len(cache) > 64:
                cache.popitem(last=False)
        body = {"id": i, "tokens": ntok, "mean": float(z.mean()), "features": [round(float(v), 4) for v in feats]}
        return json.dumps(body)

    def worker(k):
        total = 0
        for i in range(k, requests, threads):
            total += len(handle(i))
        out.append(total)

    if threads == 1:
        worker(0)
    else:
        ts = [threading.Thread(target=worker, args=(k,), name=f"server-{k}") for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    print(f"served={requests} threads={threads} leaked={peersext.leaked_bytes()} check={sum(out)}")


def servebig(argv):
    import collections
    import json

    sys.path.insert(0, argv[0])
    import numpy as np
    import peersext

    requests = int(argv[1])
    words = ["Alpha", "beta", "Gamma", "delta", "epsilon", "Zeta", "eta", "theta"]
    texts = [" ".join(words[(i * 7 + k) % 8] for k in range(40 + i % 160)) for i in range(97)]
    cache = collections.OrderedDict()
    total = 0

    def tokenize_request(text):
        return peersext.score_tokens(text)

    for i in range(requests):
        n = (1 + i % 8) * 262144  # 1 to 8 MB of float32
        x = np.full(n, float(i % 13), dtype=np.float32)
        y = x.copy()
        y[::3] *= 0.5
        z = y[1::2] * 2.0 + 1.0
        h = np.concatenate([z, y[: n // 8]])
        text = peersext.normalize(peersext.normalize(peersext.normalize(texts[i % 97])))
        ntok = tokenize_request(text)
        cache[i % 64] = h[:131072].copy()  # 512 KiB
        cache.move_to_end(i % 64)
        while len(cache) > 32:
            cache.popitem(last=False)
        feats = h[:: max(1, len(h) // 256)][:256]
        body = {"id": i, "tokens": ntok, "mean": float(z.mean()), "features": [round(float(v), 4) for v in feats]}
        total += len(json.dumps(body))
    print(f"served={requests} leaked={peersext.leaked_bytes()} check={total}")


if __name__ == "__main__":
    rc = {"cpairs": cpairs, "serve": serve, "servebig": servebig}[sys.argv[1]](sys.argv[2:])
    print(f"region_rss={region_rss()}", flush=True)
    sys.exit(rc or 0)
