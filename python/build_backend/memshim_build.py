"""PEP 517 backend: builds libmemshim.so into python/memshim/, then lets maturin build the wheel
(the `memshim` binary, that package, the pytest plugin).

The shim is an LD_PRELOAD library for x86-64 Linux with glibc only; elsewhere the build stops
with one line saying so. With cargo-zigbuild on PATH (`pip install ziglang cargo-zigbuild`) both
the shim and the binary are linked against glibc 2.28's symbols, for a manylinux_2_28 wheel
(``scripts/build-wheel.sh``); without it, against this machine's glibc.
"""

import os
import platform
import shutil
import subprocess
import sys

import maturin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(ROOT, "python", "memshim", "libmemshim.so")
GLIBC_FLOOR = "2.28"
TRIPLE = "x86_64-unknown-linux-gnu"


def unsupported():
    """Why this platform cannot run the shim, or None."""
    if sys.platform != "linux":
        return f"{sys.platform} is not Linux"
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"{platform.machine()} is not x86-64"
    libc, _ = platform.libc_ver()
    if libc != "glibc":
        return "the C library is not glibc (musl?)"
    return None


def zig():
    return os.environ.get("MEMSHIM_WHEEL_ZIG", "auto") != "0" and shutil.which("cargo-zigbuild")


def build_shim():
    why = unsupported()
    if why:
        sys.exit(f"memshim: error: the shim supports x86-64 Linux with glibc only: {why}")
    base = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target", "wheel-build"))
    # One target directory each for the shim's build and maturin's: maturin's cargo settings
    # differ from a plain build's, and in one directory each build would redo the other's
    # crates every time.
    target_dir = os.path.join(base, "shim")
    env = dict(os.environ, CARGO_TARGET_DIR=target_dir)
    if zig():
        # libgcc_s named as a file (shim/build.rs): the shim's fallback unwinder is libgcc_s's.
        gcc_s = subprocess.run(
            ["cc", "-print-file-name=libgcc_s.so.1"], capture_output=True, text=True
        ).stdout.strip()
        env["MEMSHIM_LINK_LIBGCC_S"] = gcc_s
        cmd = ["cargo", "zigbuild", "--target", f"{TRIPLE}.{GLIBC_FLOOR}"]
        built = os.path.join(target_dir, TRIPLE, "release", "libmemshim.so")
    else:
        cmd = ["cargo", "build"]
        built = os.path.join(target_dir, "release", "libmemshim.so")
    subprocess.run(cmd + ["--release", "-p", "memshim-shim"], cwd=ROOT, env=env, check=True)
    shutil.copyfile(built, LIB)
    if zig():
        # maturin links the binary the same way.
        args = os.environ.get("MATURIN_PEP517_ARGS", "")
        os.environ["MATURIN_PEP517_ARGS"] = (
            f"{args} --zig --target {TRIPLE} --compatibility manylinux_{GLIBC_FLOOR.replace('.', '_')}"
        ).strip()
    os.environ["CARGO_TARGET_DIR"] = os.path.join(base, "cli")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    build_shim()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    build_shim()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    return maturin.build_sdist(sdist_directory, config_settings)


get_requires_for_build_wheel = maturin.get_requires_for_build_wheel
get_requires_for_build_sdist = maturin.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = maturin.prepare_metadata_for_build_wheel
if hasattr(maturin, "get_requires_for_build_editable"):
    get_requires_for_build_editable = maturin.get_requires_for_build_editable
if hasattr(maturin, "prepare_metadata_for_build_editable"):
    prepare_metadata_for_build_editable = maturin.prepare_metadata_for_build_editable
