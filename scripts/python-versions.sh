#!/usr/bin/env bash
# Provisions the CPython interpreters that tests/py_versions.rs runs under the real shim, besides
# the machine's own 3.11, into $MEMSHIM_PYTHONS (default /var/cache/memshim-pythons). Idempotent:
# a version whose directory has its `ok` marker is left alone. Needs root (debootstrap) and
# Debian's archive, from the mirror this machine's apt uses ($MEMSHIM_DEBIAN_MIRROR overrides);
# nothing else from outside.
#
#   3.9   Debian 11 (bullseye) python3.9 3.9.2: its .debs (checked against the suite's Packages
#         index) unpacked into 3.9/root; it runs on this machine's newer glibc with PYTHONHOME
#         (and bullseye's libffi7 for its ctypes, with LD_LIBRARY_PATH).
#   3.13  Debian 13 (trixie) python3.13: built against glibc 2.41, so a minimal trixie tree
#         (debootstrap) in 3.13/root that the tests enter with chroot.
#
# 3.8, 3.10 and 3.12 have no build in any Debian suite reachable here: the shim refuses them.
set -euo pipefail
DEST=${MEMSHIM_PYTHONS:-/var/cache/memshim-pythons}
# The Debian mirror apt is set up with (deb822 sources first, then a one-line sources.list).
mirror() {
  local m
  m=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || { echo "python-versions: no Debian mirror in apt's sources; set MEMSHIM_DEBIAN_MIRROR" >&2; exit 1; }
  echo "${m%/}"
}
MIRROR=${MEMSHIM_DEBIAN_MIRROR:-$(mirror)}
mkdir -p "$DEST"
start=$(date +%s)

need_tools=()
command -v debootstrap >/dev/null || need_tools+=(debootstrap)
command -v xz >/dev/null || need_tools+=(xz-utils)
command -v curl >/dev/null || need_tools+=(curl)
if [ ${#need_tools[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_tools[@]}" >/dev/null
fi

# --- 3.9: bullseye's debs, unpacked -------------------------------------------------------------
py39() {
  local dir=$DEST/3.9
  [ -e "$dir/ok" ] && return 0
  rm -rf "$dir"
  mkdir -p "$dir/debs"
  curl -fsS --retry 3 -m 300 "$MIRROR/dists/bullseye/main/binary-amd64/Packages.xz" |
    xz -dc >"$dir/Packages"
  local p f sum
  for p in python3.9-minimal libpython3.9-minimal libpython3.9-stdlib libpython3.9 libpython3.9-dev; do
    read -r f sum < <(awk -v p="$p" '
      $1 == "Package:" { cur = $2 }
      cur == p && $1 == "Filename:" { f = $2 }
      cur == p && $1 == "SHA256:" { print f, $2; exit }' "$dir/Packages") || true
    [ -n "${f:-}" ] || { echo "python-versions: $p not in bullseye's index" >&2; exit 1; }
    curl -fsS --retry 3 -m 300 -o "$dir/debs/${f##*/}" "$MIRROR/$f"
    echo "$sum  $dir/debs/${f##*/}" | sha256sum -c --quiet -
    dpkg-deb -x "$dir/debs/${f##*/}" "$dir/root"
  done
  rm -rf "$dir/debs" "$dir/Packages"
  PYTHONHOME=$dir/root/usr "$dir/root/usr/bin/python3.9" -c \
    'import sys, threading; assert sys.version_info[:2] == (3, 9)'
  touch "$dir/ok"
}

# bullseye's libffi7 for 3.9's ctypes (tests/py_nogil.rs runs it with LD_LIBRARY_PATH into the
# tree): unpacked into the tree, added to one provisioned before it too (nothing is removed, so
# tests running with the tree meanwhile are not disturbed).
py39_ffi() {
  local dir=$DEST/3.9
  [ -e "$dir/ok-ffi" ] && return 0
  local tmp f sum
  tmp=$(mktemp -d)
  curl -fsS --retry 3 -m 300 "$MIRROR/dists/bullseye/main/binary-amd64/Packages.xz" |
    xz -dc >"$tmp/Packages"
  read -r f sum < <(awk '
    $1 == "Package:" { cur = $2 }
    cur == "libffi7" && $1 == "Filename:" { f = $2 }
    cur == "libffi7" && $1 == "SHA256:" { print f, $2; exit }' "$tmp/Packages") || true
  [ -n "${f:-}" ] || { echo "python-versions: libffi7 not in bullseye's index" >&2; exit 1; }
  curl -fsS --retry 3 -m 300 -o "$tmp/${f##*/}" "$MIRROR/$f"
  echo "$sum  $tmp/${f##*/}" | sha256sum -c --quiet -
  dpkg-deb -x "$tmp/${f##*/}" "$dir/root"
  rm -rf "$tmp"
  LD_LIBRARY_PATH=$dir/root/usr/lib/x86_64-linux-gnu PYTHONHOME=$dir/root/usr \
    "$dir/root/usr/bin/python3.9" -c 'import ctypes'
  touch "$dir/ok-ffi"
}

# Unmounts whatever is mounted under $1 (debootstrap mounts /proc and /sys in the tree and may
# leave them there when it fails), deepest first, so that rm -rf never walks into them.
umount_under() {
  local m
  for m in $(awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount -l "$m" || true
  done
}

# --- 3.13: a minimal trixie tree -----------------------------------------------------------------
py313() {
  local dir=$DEST/3.13
  [ -e "$dir/ok" ] && return 0
  [ -d "$dir" ] && umount_under "$dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  debootstrap --variant=minbase --include=python3.13-minimal,libpython3.13-stdlib,libpython3.13-dev \
    trixie "$dir/root" "$MIRROR" >"$dir/debootstrap.log" 2>&1 ||
    { tail -30 "$dir/debootstrap.log" >&2; umount_under "$dir"; exit 1; }
  umount_under "$dir"
  rm -rf "$dir/root/var/cache/apt/archives"/*.deb
  chroot "$dir/root" python3.13 -c 'import sys, threading; assert sys.version_info[:2] == (3, 13)'
  touch "$dir/ok"
}

py39
py39_ffi
py313
echo "python-versions: 3.9 and 3.13 ready in $DEST ($(($(date +%s) - start)) s)"
