#!/usr/bin/env bash
# Builds the Lambda functions of apps/orderly-lambda as zips with cargo-lambda (installed
# into ${ORDERLY_TOOLS_DIR:-~/.cache/orderly}/venv-lambda by scripts/tools.sh, with the Zig
# toolchain it links with):
#   target/lambda/orderly-<function>/bootstrap.zip   for api, relay, worker, saga-step,
#                                                    events and dlq-replay
# Usage: scripts/lambda-build.sh [--arm64]
# x86_64 is the default. --arm64 needs the aarch64-unknown-linux-gnu standard library
# (`rustup target add aarch64-unknown-linux-gnu`), which this build machine does not have.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/tools.sh lambda
export PATH="${ORDERLY_TOOLS_DIR:-$HOME/.cache/orderly}/venv-lambda/bin:$PATH"
arch=()
if [ "${1:-}" = "--arm64" ]; then arch=(--arm64); fi
cargo lambda build --release --locked --output-format zip -p orderly-lambda "${arch[@]}"
for f in api relay worker saga-step events dlq-replay; do
  zip="target/lambda/orderly-$f/bootstrap.zip"
  [ -s "$zip" ] || { echo "missing $zip" >&2; exit 1; }
  echo "$zip"
done
