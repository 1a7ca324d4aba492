#!/usr/bin/env bash
# Builds the Lambda functions of apps/orderly-lambda as zips with cargo-lambda (installed
# into ${ORDERLY_TOOLS_DIR:-~/.cache/orderly}/venv-lambda by scripts/tools.sh, with the Zig
# toolchain it links with):
#   target/lambda/orderly-<function>/bootstrap.zip   for api, relay, intake, saga-step,
#                                                    events and dlq-replay
# and fails if a zip is over 5 MB (ORDERLY_MAX_ZIP_BYTES).
# Usage: scripts/lambda-build.sh [--arm64]
# x86_64 is the default. --arm64 needs the aarch64-unknown-linux-gnu standard library
# (`rustup target add aarch64-unknown-linux-gnu`), which this build machine does not have.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/tools.sh lambda
export PATH="${ORDERLY_TOOLS_DIR:-$HOME/.cache/orderly}/venv-lambda/bin:$PATH"
arch=()
if [ "${1:-}" = "--arm64" ]; then arch=(--arm64); fi
# The `lambda` profile (Cargo.toml): size-optimised, stripped, fat LTO, one codegen unit,
# abort on panic. Each function links only the SDK clients it calls.
cargo lambda build --profile lambda --locked --output-format zip -p orderly-lambda "${arch[@]}"
# The size budget of a zip: a bigger one loads and starts slower.
MAX_ZIP_BYTES=${ORDERLY_MAX_ZIP_BYTES:-5000000}
for f in api relay intake saga-step events dlq-replay; do
  zip="target/lambda/orderly-$f/bootstrap.zip"
  [ -s "$zip" ] || { echo "missing $zip" >&2; exit 1; }
  size=$(stat -c %s "$zip")
  echo "$zip $size bytes"
  if [ "$size" -gt "$MAX_ZIP_BYTES" ]; then
    echo "$zip is $size bytes, over the budget of $MAX_ZIP_BYTES" >&2
    exit 1
  fi
done
