"""Allocation-heavy pure Python for scripts/bench-python: builds and drops dicts, lists,
strings, tuples and small objects, a few seconds of CPU. Prints a checksum so nothing is
optimised away."""
import sys


class Point:
    __slots__ = ("x", "y", "tag")

    def __init__(self, x, y, tag):
        self.x = x
        self.y = y
        self.tag = tag


def records(n, seed):
    out = []
    for i in range(n):
        out.append({"id": i, "name": "user-%d-%d" % (seed, i), "tags": [i % 7, i % 11, "t%d" % (i % 13)]})
    return out


def points(n):
    return [Point(i, i * 2, str(i)) for i in range(n)]


def text(n):
    parts = []
    for i in range(n):
        parts.append(("word%d " % i) * (1 + i % 5))
    return "".join(parts).split()


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    check = 0
    for r in range(rounds):
        recs = records(20000, r)
        check += sum(len(x["name"]) for x in recs)
        pts = points(20000)
        check += sum(p.x for p in pts[::97])
        words = text(8000)
        check += len(words)
        index = {w: k for k, w in enumerate(words)}
        check += len(index)
        pairs = sorted((len(x["tags"]), x["id"]) for x in recs[:5000])
        check += pairs[-1][1]
        big = [bytes(64 + (i % 512)) for i in range(5000)]
        check += sum(map(len, big[::50]))
        del recs, pts, words, index, pairs, big
    print(check)


if __name__ == "__main__":
    main()
