#!/usr/bin/env bash
# Installs what the tests need and is missing; quick (no network) when everything is there.
# scripts/test.sh calls it; run it alone to provision a machine.
#
#   - the Debian packages of scripts/test-packages.txt whose command (or file) is missing
#     (apt-get, root);
#   - CPython 3.9 and 3.13 in $MEMSHIM_PYTHONS (default /var/cache/memshim-pythons), by
#     scripts/python-versions.sh (root, Debian's archive);
#   - the greenlet package (gevent's base) and numpy for python3, from PyPI;
#   - maturin for python3, from PyPI (tests/py_nogil.rs builds a PyO3 extension with it);
#   - and it names what it cannot install: pyenv's CPython 3.7, 3.8, 3.10, 3.12 and 3.13 come with
#     this project's machines (under ~/.pyenv/versions) and cannot be provisioned elsewhere.
#
# Each prerequisite it could not provide is named in one line; the tests that need it then say so
# too (they fail under CI=true, and are skipped elsewhere). Exit status: 0 when everything is
# there, 1 when something is missing. MEMSHIM_PROVISION=0 makes it do nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${MEMSHIM_PROVISION:-1}" = 0 ]; then
  echo "provision: skipped (MEMSHIM_PROVISION=0)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
missing=()
root=false
[ "$(id -u)" = 0 ] && root=true

# Debian packages, from the list: a command, or (starting with /) a file the package installs.
have() { case $1 in /*) [ -e "$1" ] ;; *) command -v "$1" >/dev/null ;; esac; }
need=()
while read -r cmd pkg _; do
  case $cmd in '' | '#'*) continue ;; esac
  have "$cmd" || need+=("$pkg")
done <scripts/test-packages.txt
if [ ${#need[@]} -gt 0 ]; then
  # Another apt-get at work (another checkout provisioning) is waited for, not failed on.
  apt=(apt-get -o DPkg::Lock::Timeout=900 -qq)
  if $root && "${apt[@]}" update && "${apt[@]}" install -y "${need[@]}" >/dev/null; then
    echo "provision: installed ${need[*]}"
  else
    $root || echo "provision: not root, cannot apt-get install ${need[*]}"
    while read -r cmd pkg _; do
      case $cmd in '' | '#'*) continue ;; esac
      have "$cmd" || missing+=("$cmd (Debian package $pkg)")
    done <scripts/test-packages.txt
  fi
fi

# CPython 3.9 and 3.13, Debian's.
pythons=${MEMSHIM_PYTHONS:-/var/cache/memshim-pythons}
if [ ! -e "$pythons/3.9/ok" ] || [ ! -e "$pythons/3.13/ok" ]; then
  if ! $root; then
    missing+=("CPython 3.9 and 3.13 from scripts/python-versions.sh (not root: run it as root)")
  elif ! scripts/python-versions.sh; then
    for v in 3.9 3.13; do
      [ -e "$pythons/$v/ok" ] || missing+=("CPython $v from scripts/python-versions.sh (it failed, above)")
    done
  fi
fi

# greenlet, from PyPI.
if ! python3 -c 'import greenlet' 2>/dev/null; then
  # (A Debian python3 refuses pip without --break-system-packages; pyenv's takes it plainly.)
  python3 -m pip install -q --disable-pip-version-check greenlet 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check --break-system-packages greenlet ||
    missing+=("the greenlet package for $(command -v python3) (pip install greenlet failed)")
fi

# maturin, from PyPI: tests/py_nogil.rs builds its PyO3 extension with it (PyO3 from crates.io).
if ! python3 -m maturin --version >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check maturin 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check --break-system-packages maturin ||
    missing+=("maturin for $(command -v python3) (pip install maturin failed)")
fi

# numpy, from PyPI (the leak-free numpy run and its OpenBLAS constructor's frames).
if ! python3 -c 'import numpy' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check numpy 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check --break-system-packages numpy ||
    missing+=("the numpy package for $(command -v python3) (pip install numpy failed)")
fi

# pyenv's interpreters: there or not, nothing to install.
versions=${PYENV_ROOT:-$HOME/.pyenv}/versions
echo "provision: pyenv versions: $(ls "$versions" 2>/dev/null | tr '\n' ' ')"
for v in 3.7 3.8 3.10 3.12 3.13; do
  ls -d "$versions/$v".*/bin/python"$v" >/dev/null 2>&1 ||
    missing+=("CPython $v from pyenv (none in $versions; this project's machines come with it)")
done

if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "provision: missing: $m"; done
  exit 1
fi
echo "provision: everything the tests need is here"
