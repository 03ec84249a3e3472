"""A small model-serving loop: requests come in, get normalized and tokenized by a native
extension, a 'model' scores them, and JSON responses go out. tokenize() leaks natively."""
import json
import random
import time

import leakyext

CACHE = {}
LEAKED = [0]  # what tokenize() leaks, so the demo can show the truth next to the estimate


def handle(request):
    text = leakyext.normalize(request["text"])
    n_tokens = leakyext.tokenize(text)
    LEAKED[0] += 16384 + len(text.encode())
    features = [float(len(w)) for w in text.split()]
    score = sum(features) / max(1, len(features))
    key = request["id"] % 256  # a bounded cache, not a leak
    CACHE[key] = features
    return json.dumps({"id": request["id"], "tokens": n_tokens, "score": round(score, 3)})


def main():
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    start = time.time()
    served = 0
    while served < 4000:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 200)))
        handle({"id": served, "text": text})
        served += 1
    print(f"served {served} requests in {time.time() - start:.2f}s")
    print(f"truth: tokenize() leaked {LEAKED[0] / 2**20:.1f} MiB in {served} allocations")


if __name__ == "__main__":
    main()
