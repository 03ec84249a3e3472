#!/usr/bin/env bash
# Builds the manylinux_2_28 wheel (the `memshim` binary, libmemshim.so in the `memshim` Python
# package, the pytest plugin) into target/wheel/dist/ and checks it with `auditwheel show`.
# Its build tools (maturin, ziglang, cargo-zigbuild, auditwheel) go into a virtualenv under
# target/wheel/ from PyPI; the Rust build shares target/wheel-build/ between runs.
# Prints the wheel's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/target/wheel
venv=$out/tools
py=$(python3 -c 'import sys; print(sys.executable)')
if [ ! -x "$venv/bin/cargo-zigbuild" ] || [ ! -x "$venv/bin/auditwheel" ]; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'maturin>=1.5,<2' ziglang cargo-zigbuild auditwheel
fi
rm -rf "$out/dist"
mkdir -p "$out/dist"
PATH=$venv/bin:$PATH CARGO_TARGET_DIR=$root/target/wheel-build \
  "$venv/bin/pip" wheel --quiet --disable-pip-version-check --no-build-isolation --no-deps \
  -w "$out/dist" "$root" >&2
wheel=$(ls "$out"/dist/memshim-*.whl)
"$venv/bin/auditwheel" show "$wheel" >"$out/auditwheel.txt"
grep -q '"manylinux_2_28_x86_64"' "$out/auditwheel.txt" || {
  cat "$out/auditwheel.txt" >&2
  echo "memshim: error: $wheel is not manylinux_2_28 (auditwheel above)" >&2
  exit 1
}
echo "$wheel"
