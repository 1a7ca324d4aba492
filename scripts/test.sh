#!/usr/bin/env bash
# Runs every Orderly test: unit, property, contract and integration tests of all crates,
# the AWS adapters, the Lambda handlers and `orderly serve --backend aws` against the moto
# emulator, which this script installs (into a cached virtualenv, see scripts/aws-tools.sh),
# starts on a free loopback port and stops again; fuzzes the API against openapi.json with
# schemathesis (scripts/fuzz-api.sh); then builds the Lambda zips and checks the AWS stack.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$(bash scripts/aws-tools.sh)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp)"
# DynamoDB requests one at a time: see scripts/moto_serial.py for why.
"$tools/python" scripts/moto_serial.py 127.0.0.1 "$port" > "$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/"; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then cat "$log" >&2; echo "moto failed to start" >&2; exit 1; fi
  sleep 0.2
done
export ORDERLY_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
export MOTO_PORT="$port"

# Each stage's heading shows the disk left: the builds below need several gigabytes.
stage() { echo "== $1 ($(df -h . | awk 'NR==2 {print $4}') free)"; }

stage "workspace tests (the Lambda handlers run against moto)"
cargo test --workspace --exclude orderly-aws --all-targets --locked
stage "AWS adapters, every feature, against moto"
cargo test -p orderly-aws --all-features --all-targets --locked
stage "the API fuzzed against openapi.json (schemathesis, every check)"
bash scripts/fuzz-api.sh
stage "the dashboard in headless Chromium (scripts/e2e-dashboard.sh)"
bash scripts/e2e-dashboard.sh
stage "orderly serve --backend aws against moto"
cargo test -p orderly --features aws --test aws --locked
stage "Lambda zips"
bash scripts/lambda-build.sh
stage "the AWS stack, offline (terraform fmt, checkov, statelint, stack vs code manifest)"
bash deploy/checks/run.sh --require-zips target/lambda
