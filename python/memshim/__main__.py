"""`python -m memshim ARGS`: the same as `memshim ARGS`, for when the scripts directory is not
on PATH. Runs the binary the wheel installed beside this interpreter."""

import os
import shutil
import sys
import sysconfig


def binary():
    """The `memshim` executable of this installation: the scripts directory of this
    interpreter's install scheme (a virtualenv's bin/, or ~/.local/bin for --user), else PATH."""
    names = [None] + [s for s in ("posix_user", "posix_prefix") if s in sysconfig.get_scheme_names()]
    for scheme in names:
        d = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        exe = os.path.join(d, "memshim")
        if os.access(exe, os.X_OK):
            return exe
    return shutil.which("memshim")


def main():
    exe = binary()
    if exe is None:
        sys.exit("memshim: error: the memshim executable is not installed beside this Python (pip install memshim)")
    os.execv(exe, [exe] + sys.argv[1:])


if __name__ == "__main__":
    main()
