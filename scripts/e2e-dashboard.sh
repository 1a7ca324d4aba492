#!/usr/bin/env bash
# End-to-end test of the dashboard (GET /) in headless Chromium:
# - installs Debian's chromium and chromium-driver if /usr/bin/chromium is missing, and
#   playwright-core (pinned by e2e/package-lock.json) with `npm ci` into
#   ${ORDERLY_TOOLS_DIR:-$HOME/.cache/orderly}/e2e (scripts/tools.sh browser);
# - builds the workspace's test binaries unless ORDERLY_BIN names an orderly binary;
# - starts `orderly serve` on a free loopback port with a fresh data directory, payments
#   declined over 50.00, a mail server that refuses (so notifications dead-letter) and
#   outbound requests held to loopback (--egress loopback);
# - runs the unit tests of the dashboard's metrics parsing (e2e/prom.test.mjs), then
#   e2e/dashboard.test.mjs, which drives the page and saves target/e2e/dashboard.png.
# Everything after the installs and the build runs under strace (scripts/egress.sh): the
# run fails if the server, node or Chromium sent anything off the machine.
# Usage: scripts/e2e-dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

# Untraced: the tools and the binary (these may download). Then this script again, traced.
if [ -z "${ORDERLY_EGRESS_TRACED:-}" ]; then
  bash scripts/tools.sh browser strace
  if [ -z "${ORDERLY_BIN:-}" ]; then
    echo "== e2e-dashboard: building the workspace's test binaries (cargo test --no-run), for its orderly"
    cargo test --workspace --locked --no-run
    ORDERLY_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/orderly"
  fi
  exec env ORDERLY_EGRESS_TRACED=1 ORDERLY_BIN="$ORDERLY_BIN" bash scripts/egress.sh e2e bash "$0" "$@"
fi

say() { echo "== e2e-dashboard: $*"; }
die() {
  echo "e2e-dashboard: $*" >&2
  exit 1
}

# --- tools ------------------------------------------------------------------------------
chromium=/usr/bin/chromium
say "browser: $("$chromium" --version 2> /dev/null || echo "$chromium")"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node.js 20 or later is needed, this is $(node --version)"
tools="${ORDERLY_TOOLS_DIR:-$HOME/.cache/orderly}/e2e"
say "playwright-core $(node -p "require('$tools/node_modules/playwright-core/package.json').version")"

# --- the server -------------------------------------------------------------------------
bin="$ORDERLY_BIN"
[ -x "$bin" ] || die "no orderly binary at $bin"

free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
port="$(free_port)"
# Nothing listens here: every mail delivery is refused, so notifications dead-letter.
mail_port="$(free_port)"
data="$(mktemp -d)"
log="$data/server.log"
server_pid=""
cleanup() {
  local status=$?
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$log" ]; then
    echo "--- last lines of the server log ($log):" >&2
    tail -n 40 "$log" >&2 || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

say "starting $bin serve on 127.0.0.1:$port (data in $data)"
"$bin" serve \
  --data-dir "$data" \
  --addr "127.0.0.1:$port" \
  --payment-decline-over 50.00 \
  --smtp-url "smtp://127.0.0.1:$mail_port" \
  --visibility-timeout-secs 2 \
  --egress loopback \
  --redelivery-base-ms 200 \
  --log-format json > "$log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 150); do
  if curl -fs -o /dev/null "http://127.0.0.1:$port/ready"; then
    ready=yes
    break
  fi
  kill -0 "$server_pid" 2> /dev/null || die "the server exited before it was ready"
  sleep 0.2
done
[ -n "$ready" ] || die "the server was not ready within 30 s"
[ -s "$data/admin.key" ] || die "the server wrote no $data/admin.key"
say "server ready; admin key read from $data/admin.key"
customer_key="$("$bin" keys create --role customer --user e2e-customer --data-dir "$data" 2> /dev/null)" \
  || die "orderly keys create --role customer failed"

# --- the tests --------------------------------------------------------------------------
say "unit tests of the dashboard's metrics parsing (node --test)"
node --test e2e/prom.test.mjs

say "the dashboard in headless Chromium"
mkdir -p "$root/target/e2e"
ORDERLY_URL="http://127.0.0.1:$port" \
  ORDERLY_ADMIN_KEY="$(cat "$data/admin.key")" \
  ORDERLY_CUSTOMER_KEY="$customer_key" \
  ORDERLY_E2E_MODULES="$tools" \
  ORDERLY_E2E_OUT="$root/target/e2e" \
  CHROMIUM="$chromium" \
  timeout 240 node e2e/dashboard.test.mjs
say "passed; screenshot: target/e2e/dashboard.png"
