"""memshim from Python: mark phases of a run, ask for a snapshot, see whether the shim records.

The calls go to libmemshim.so's C entry points (``memshim_mark``, ``memshim_snapshot``,
``memshim_active``), found in the running process itself with ``ctypes.CDLL(None)``: they are
there only when the process runs under the shim (``memshim run -- python3 app.py``). Without
it, each call is one test of a module global and returns at once.

    import memshim
    memshim.mark("after warmup")   # then: memshim report CAPTURE --since-mark "after warmup"
"""

import ctypes

__all__ = ["mark", "snapshot", "active", "MARK_LABEL_MAX"]

#: Bytes of a label a mark keeps (longer labels are cut, at a character boundary).
MARK_LABEL_MAX = 56


def _entry(lib, name, argtypes):
    try:
        f = getattr(lib, name)
    except AttributeError:
        return None
    f.argtypes = argtypes
    f.restype = ctypes.c_int
    return f


def _find():
    try:
        me = ctypes.CDLL(None)
    except OSError:
        return None, None, None
    return (
        _entry(me, "memshim_mark", [ctypes.c_char_p]),
        _entry(me, "memshim_snapshot", []),
        _entry(me, "memshim_active", []),
    )


_mark, _snapshot, _active = _find()


def mark(label):
    """Writes a marker labelled ``label`` into this process's capture, with the time and the
    calling thread. Returns True when it was recorded, False without the shim (or when the
    shim had to drop it)."""
    if _mark is None:
        return False
    if not isinstance(label, bytes):
        label = str(label).encode("utf-8", "replace")
    return _mark(label) == 1


def snapshot():
    """Asks the shim for a snapshot of the live heap now. True when one was taken; False
    without the shim, or with a shim that has no snapshot mode yet."""
    if _snapshot is None:
        return False
    return _snapshot() == 0


def active():
    """True when this process runs under libmemshim.so and it records."""
    return _active is not None and _active() == 1
