#!/usr/bin/env bash
# Builds memshim, then runs a small Python service with a leaky native extension under the shim
# and reports on the capture. Everything lands in target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cargo build --release --workspace
# The real interpreter, not a version-manager wrapper script (which would be profiled too).
py=$(python3 -c 'import sys; print(sys.executable)')
out=$root/target/demo
rm -rf "$out" && mkdir -p "$out"
cc -shared -fPIC -O1 -g $("$py-config" --includes 2>/dev/null || python3-config --includes) \
  demo/leakyext.c -o "$out/leakyext$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
cd "$out"
echo "== memshim run -- python3 demo/serve.py =="
PYTHONPATH="$out" "$root/target/release/memshim" run --seed 1 -- "$py" "$root/demo/serve.py"
capture=$(ls -t memshim.*.msh | head -1)
echo "== memshim report $out/$capture =="
"$root/target/release/memshim" report "$capture" --top 5
