#!/usr/bin/env bash
# Fuzzes the capture decoder (fuzz/fuzz_targets/decode.rs) for SECONDS (default 60).
# cargo-fuzz needs nightly features; this machine has one stable toolchain, so RUSTC_BOOTSTRAP=1
# lets it use them. Not part of CI (the proptest `arbitrary_bytes_never_panic` is).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
secs=${1:-60}
cd fuzz
RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -max_total_time="$secs" -max_len=65536
