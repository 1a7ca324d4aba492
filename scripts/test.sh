#!/usr/bin/env bash
# Runs every Orderly test: unit, property, contract and integration tests of all crates.
# Usage: scripts/test.sh   (from anywhere; needs only the Rust toolchain)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets --locked
