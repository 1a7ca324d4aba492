#!/usr/bin/env bash
# Fuzzes the REST API against its OpenAPI document (openapi.json) with schemathesis:
# starts `orderly serve` on a fresh data directory and a free loopback port, reads the
# admin API key the server writes on first start, and runs every schemathesis check with a
# bounded, seeded number of examples. Exits non-zero on any failure (a server error, an
# answer that breaks the document, a valid request refused, an invalid one accepted, ...).
#
# Usage: scripts/fuzz-api.sh
# The server runs with `--egress loopback`, and the whole run (server and fuzzer) under
# strace (scripts/egress.sh): it fails if anything was sent off the machine or any name
# looked up. The fuzzer registers webhooks for generated URLs (public addresses, names
# such as hooks.example.com); the server must refuse them without a packet or a lookup.
#
# Environment:
#   ORDERLY_BIN            a built `orderly` binary to test (default: build the workspace's
#                          test binaries, as scripts/test.sh does, and use its `orderly`)
#   ORDERLY_TOOLS_DIR      where the schemathesis virtualenv is cached
#                          (default: ~/.cache/orderly; the venv is <dir>/venv-fuzz)
#   FUZZ_MAX_EXAMPLES      test cases per operation and phase (default 30)
#   FUZZ_SEED              the generator's seed (default 20261122: the same run every time)
#   FUZZ_PHASES            schemathesis phases (default examples,coverage,fuzzing,stateful)
#   FUZZ_REPORT_DIR        where the JUnit report and the failing cases' cassette go
#                          (default: a temporary directory, removed on exit)
set -euo pipefail
cd "$(dirname "$0")/.."
# Untraced: the tools and the binary (these may download). Then this script again, traced.
if [ -z "${ORDERLY_EGRESS_TRACED:-}" ]; then
  bash scripts/tools.sh fuzz strace
  if [ -z "${ORDERLY_BIN:-}" ]; then
    echo "== cargo test --workspace --no-run (the test build's orderly binary)" >&2
    cargo test --workspace --locked --no-run >&2
    ORDERLY_BIN="${CARGO_TARGET_DIR:-target}/debug/orderly"
  fi
  exec env ORDERLY_EGRESS_TRACED=1 ORDERLY_BIN="$ORDERLY_BIN" bash scripts/egress.sh fuzz bash "$0" "$@"
fi

TOOLS_DIR="${ORDERLY_TOOLS_DIR:-$HOME/.cache/orderly}"
VENV="$TOOLS_DIR/venv-fuzz"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-30}"
SEED="${FUZZ_SEED:-20261122}"
PHASES="${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}"

bin="$ORDERLY_BIN"
[ -x "$bin" ] || { echo "fuzz-api: $bin is not an executable" >&2; exit 1; }

work="$(mktemp -d)"
report_dir="${FUZZ_REPORT_DIR:-$work/report}"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
data="$work/data"
log="$work/server.log"
# The fuzzer sends requests as fast as one worker can, many of them without credentials
# (the ignored-auth check): lift the per-credential and the failed-authentication limits
# so that none of its answers is a 429 (rate limiting has tests of its own). Payments are
# never declined by chance, so answers do not depend on luck.
"$bin" serve --data-dir "$data" --addr "127.0.0.1:$port" --log-format json --log warn \
  --rate-limit-rps 100000 --rate-limit-burst 100000 \
  --failed-auth-rps 100000 --failed-auth-burst 100000 \
  --payment-decline-percent 0 --egress loopback >"$log" 2>&1 &
server_pid=$!

echo "== waiting for $base/ready" >&2
for _ in $(seq 1 150); do
  if curl -fs -o /dev/null "$base/ready"; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$log" >&2
    echo "fuzz-api: the server exited before it was ready" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fs -o /dev/null "$base/ready" || { cat "$log" >&2; echo "fuzz-api: $base/ready never answered 200" >&2; exit 1; }

key_file="$data/admin.key"
if [ ! -s "$key_file" ]; then
  echo "fuzz-api: the server is ready but wrote no admin API key to $key_file" >&2
  echo "(orderly serve creates <data-dir>/admin.key on first start; without it nothing" >&2
  echo " behind authentication can be tested)" >&2
  exit 1
fi
key="$(head -n 1 "$key_file" | tr -d '\r\n')"

echo "== $("$VENV/bin/schemathesis" --version 2>/dev/null | sed -n 1p): phases $PHASES, $MAX_EXAMPLES examples, seed $SEED" >&2
mkdir -p "$report_dir"
status=0
# All checks but use_after_free, which expects a resource to be gone after a successful
# DELETE: DELETE /orders/{orderId} CANCELS the order and, as the API contract says, the
# record stays (GET answers 200 with status CANCELLED). Which answers count as accepting
# valid data is in scripts/schemathesis.toml.
"$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run openapi.json \
  --url "$base" \
  -H "x-api-key: $key" \
  --checks all \
  --exclude-checks use_after_free \
  --phases "$PHASES" \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --workers 1 \
  --request-timeout 10 \
  --max-response-time 5 \
  --no-color \
  --report junit,vcr --report-dir "$report_dir" \
  || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "fuzz-api: the server died during the run; its log:" >&2
  cat "$log" >&2
  status=1
fi
echo "== egress: $(grep -c 'egress policy' "$log" || true) webhook attempts refused by the policy" >&2
if grep -q '"level":"ERROR"' "$log"; then
  echo "fuzz-api: the server logged errors during the run:" >&2
  grep -m 20 '"level":"ERROR"' "$log" >&2 || true
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "fuzz-api: FAILED (reports in $report_dir)" >&2
  if [ -z "${FUZZ_REPORT_DIR:-}" ]; then
    echo "(set FUZZ_REPORT_DIR to keep them)" >&2
  fi
fi
exit "$status"
