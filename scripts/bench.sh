#!/usr/bin/env bash
# The benchmark series of BENCHMARKS.md, on one machine, with fresh servers:
#   1. the HTTP ceiling: GET /health of `orderly serve` (rate limits lifted), closed loop c 64;
#   2. a closed-loop run (c 64): create throughput, end to end, writer work per order;
#   3. an open-loop run at BENCH_RATE orders/s: create latency and end-to-end latency.
# Each run's JSON report goes to OUT/<name>.json; a summary goes to OUT/summary.txt.
#
#   scripts/bench.sh [OUT]     (default target/bench/<date>)
# Env: ORDERLY_BIN (default target/release/orderly; build it with
#      `cargo build --release --locked -p orderly --bins`), BENCH_ORDERS (30000),
#      BENCH_OPEN_ORDERS (20000), BENCH_RATE (2000), BENCH_HEALTH (200000),
#      BENCH_SERVER_ARGS (extra `orderly serve` flags, e.g. "--workers 16").
# Every load loop is bounded by its order count; the servers listen on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
BIN=${ORDERLY_BIN:-target/release/orderly}
ORDERS=${BENCH_ORDERS:-30000}
OPEN=${BENCH_OPEN_ORDERS:-20000}
RATE=${BENCH_RATE:-2000}
HEALTH=${BENCH_HEALTH:-200000}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release --locked -p orderly --bins" >&2; exit 2; }
mkdir -p "$OUT"
TMP=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # start NAME: a fresh server on a fresh data dir
  local dir=$TMP/$1
  mkdir -p "$dir"
  PORT=$(free_port)
  "$BIN" serve --data-dir "$dir" --addr "127.0.0.1:$PORT" --log warn --egress loopback \
    --rate-limit-rps 1000000 --rate-limit-burst 1000000 \
    --global-rate-limit-rps 1000000 --global-rate-limit-burst 1000000 \
    --max-concurrent-per-credential 1000000 \
    ${BENCH_SERVER_ARGS:-} >"$OUT/$1.server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    [ -s "$dir/admin.key" ] && curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  KEY=$dir/admin.key
}

stop() { # stop NAME: record peak RSS, stop the server
  grep VmHWM "/proc/$PID/status" | awk '{print $2/1024 " MB"}' >"$OUT/$1.rss" || true
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

start health
"$BIN" bench --raw-get "http://127.0.0.1:$PORT/health" --orders "$HEALTH" --concurrency 64 \
  --no-progress --json >"$OUT/health.json"
stop health

start closed
"$BIN" bench --url "http://127.0.0.1:$PORT" --api-key-file "$KEY" --restock 1000000 \
  --orders "$ORDERS" --concurrency 64 --no-progress --json >"$OUT/closed.json"
stop closed

start open
"$BIN" bench --url "http://127.0.0.1:$PORT" --api-key-file "$KEY" --restock 1000000 \
  --orders "$OPEN" --rate "$RATE" --no-progress --json >"$OUT/open.json"
stop open

python3 - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, sys, os
out = sys.argv[1]
r = {n: json.load(open(os.path.join(out, n + ".json"))) for n in ("health", "closed", "open")}
rss = {n: open(os.path.join(out, n + ".rss")).read().strip() for n in ("health", "closed", "open")}
h = r["health"]["throughput"]
c, o = r["closed"], r["open"]
sc, so = c["settlement"], o["settlement"]
print(f"GET /health            {h:,.0f}/s  p99 {r['health']['latency']['p99_ms']:.2f} ms")
print(f"POST /orders (c 64)    {c['throughput']:,.0f}/s = {c['throughput']/h:.3f}x health  p99 {c['latency']['p99_ms']:.2f} ms")
print(f"end to end (c 64)      {sc['sagas_per_sec']:,.0f} sagas/s = {sc['sagas_per_sec']/h:.3f}x health  e2e p50 {sc['end_to_end']['p50_ms']:.0f} ms p99 {sc['end_to_end']['p99_ms']:.0f} ms  lost {sc['lost']}  conserved {sc['conserved']}")
w = c.get("store")
if w:
    print(f"writer work (c 64)     {w['write_ops_per_order']:.2f} ops and {w['commits_per_order']:.3f} commits per terminal order; {w['write_ops_per_fulfilled']:.2f} / {w['commits_per_fulfilled']:.3f} per fulfilled")
print(f"open loop {o['target_rate']:.0f}/s       create p50 {o['latency']['p50_ms']:.2f} ms p99 {o['latency']['p99_ms']:.2f} ms  e2e p50 {so['end_to_end']['p50_ms']:.0f} ms p99 {so['end_to_end']['p99_ms']:.0f} ms  {so['sagas_per_sec']:,.0f} sagas/s  lost {so['lost']}")
w = o.get("store")
if w:
    print(f"writer work (open)     {w['write_ops_per_order']:.2f} ops and {w['commits_per_order']:.3f} commits per terminal order")
print(f"peak RSS               health {rss['health']}, closed {rss['closed']}, open {rss['open']}")
PY
