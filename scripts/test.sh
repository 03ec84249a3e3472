#!/usr/bin/env bash
# Runs every test: builds the shim and CLI in release (the tests run real processes under the real
# libmemshim.so), then the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
cargo test --release --workspace "$@"
