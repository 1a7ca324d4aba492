#!/usr/bin/env bash
# Runs every Orderly test: the README's test command. Each stage says how long it took, and
# a summary of all of them ends the output (also after a failure).
#
#   tools     installs, in the background while cargo builds, what the later stages use
#             (scripts/tools.sh: moto, schemathesis, Chromium and playwright-core, strace,
#             the stack checkers), each cached under ${ORDERLY_TOOLS_DIR:-~/.cache/orderly}
#   build     the default binary (cargo build -p orderly: no AWS SDK), kept aside for the
#             fuzz and dashboard stages; then cargo test --workspace --no-run: every test
#             binary, one feature set for the whole workspace (the one `cargo test` and
#             `cargo clippy --all-targets` use)
#   moto      the AWS emulator on a free loopback port (stopped on exit)
#   tests     cargo test --workspace -- --include-ignored: unit, property, contract and
#             integration tests of every crate; the ignored ones are those that need moto
#             (AWS adapters, Lambda handlers, Step Functions conformance, serve --backend aws)
#             or the default binary (ORDERLY_DEFAULT_BIN)
#   fuzz      schemathesis against openapi.json and the default binary
#   dashboard the dashboard in headless Chromium
#   stack     the AWS stack, offline (terraform fmt, checkov, statelint, stack vs code)
#
# Nothing a test stage runs may send anything off the machine: every server runs with
# `--egress loopback`, and the tests, moto, the fuzz run, the browser and the stack checks
# run under strace (scripts/egress.sh), which fails the stage on any connection or
# datagram to an address outside loopback and on any DNS query.
# The Lambda zips are built by CI after this script (scripts/lambda-build.sh), not here.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/stages.sh
source scripts/stages.sh

export ORDERLY_TOOLS_DIR="${ORDERLY_TOOLS_DIR:-$HOME/.cache/orderly}"
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
work="$(mktemp -d)"
moto_pid=""
tools_pid=""
# moto_pid is strace's; moto is its child.
stop_moto() {
  if [ -n "$moto_pid" ]; then
    pkill -TERM -P "$moto_pid" 2> /dev/null || true
    kill "$moto_pid" 2> /dev/null || true
    wait "$moto_pid" 2> /dev/null || true
    moto_pid=""
  fi
}
finish() {
  local status=$?
  [ -n "$tools_pid" ] && kill "$tools_pid" 2> /dev/null
  stop_moto
  rm -rf "$work"
  stages_summary
  exit "$status"
}
trap finish EXIT

# --- tools, in the background ------------------------------------------------------------
echo "== tools: installing in the background (log in $work/tools.log)"
(
  t0=$SECONDS
  bash scripts/tools.sh moto fuzz browser strace stack
  echo $((SECONDS - t0)) > "$work/tools.secs"
) > "$work/tools.log" 2>&1 &
tools_pid=$!

# The default binary first (what `cargo run -p orderly` builds: no AWS SDK), kept aside:
# the fuzz and dashboard stages run it, and a test checks that it refuses --backend aws.
# Then every test binary, whose build of `orderly` (same path) has the `aws` feature.
build_default() {
  cargo build -p orderly --locked
  mkdir -p "$target/orderly-default"
  cp "$target/debug/orderly" "$target/orderly-default/orderly"
}
stage "layout: no import cycles between a crate's modules (scripts/module_cycles.py)" \
  bash -c 'python3 scripts/module_cycles.py --self-test && python3 scripts/module_cycles.py'
stage "build: the default orderly binary (cargo build -p orderly)" build_default
stage "build: every test binary (cargo test --workspace --no-run)" cargo test --workspace --locked --no-run
export ORDERLY_DEFAULT_BIN="$target/orderly-default/orderly"

t0=$SECONDS
if ! wait "$tools_pid"; then
  tools_pid=""
  cat "$work/tools.log" >&2
  stage_record "tools (in the background)" $((SECONDS - t0)) "FAILED"
  exit 1
fi
tools_pid=""
cat "$work/tools.log"
stage_record "tools (in the background; waited $((SECONDS - t0)) s after the build)" \
  "$(cat "$work/tools.secs")" "ok"

# --- moto --------------------------------------------------------------------------------
t0=$SECONDS
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# DynamoDB requests one at a time: see scripts/moto_serial.py for why. Traced like the
# tests: the emulator must not reach out either (checked when it stops).
strace -f -qq -yy --seccomp-bpf -e trace=connect,sendto,sendmsg,sendmmsg -e signal=none \
  -o "$work/egress-moto.trace" -- \
  "$ORDERLY_TOOLS_DIR/venv-moto/bin/python" scripts/moto_serial.py 127.0.0.1 "$port" > "$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 150); do
  if curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/"; then break; fi
  if ! kill -0 "$moto_pid" 2> /dev/null; then
    cat "$work/moto.log" >&2
    echo "moto failed to start" >&2
    exit 1
  fi
  sleep 0.2
done
curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/" || { cat "$work/moto.log" >&2; echo "moto did not answer" >&2; exit 1; }
export ORDERLY_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
export MOTO_PORT="$port"
stage_record "moto on 127.0.0.1:$port" $((SECONDS - t0)) "ok"

# --- the stages --------------------------------------------------------------------------
stage "egress check: its own rules (scripts/egress_check.py --self-test)" \
  python3 scripts/egress_check.py --self-test
stage "tests: cargo test --workspace -- --include-ignored" \
  bash scripts/egress.sh tests cargo test --workspace --frozen -- --include-ignored
stop_moto
stage "egress: moto" python3 scripts/egress_check.py moto "$work/egress-moto.trace"
stage "fuzz: schemathesis against openapi.json" \
  env ORDERLY_BIN="$ORDERLY_DEFAULT_BIN" bash scripts/fuzz-api.sh
stage "dashboard: headless Chromium" \
  env ORDERLY_BIN="$ORDERLY_DEFAULT_BIN" bash scripts/e2e-dashboard.sh
stage "stack: the AWS stack, offline" bash scripts/egress.sh stack bash deploy/checks/run.sh
