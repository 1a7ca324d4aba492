#!/usr/bin/env bash
# Runs a command under strace and fails if it, or any process it starts, sent anything off
# the machine: every connect(), sendto(), sendmsg() and sendmmsg() is recorded with its
# socket, and scripts/egress_check.py reports TCP connections to addresses outside
# loopback, datagrams sent outside loopback, and DNS queries (anything sent to port 53).
# The command's own exit status is kept otherwise.
#
# Usage: scripts/egress.sh LABEL COMMAND [ARGS...]
# Prints "egress LABEL: N destinations traced, all loopback, no DNS query" on success.
# ORDERLY_EGRESS_TRACE_DIR keeps the trace (default: a temporary directory, removed unless
# the check fails). A command run this way cannot itself use strace (ptrace does not nest).
set -uo pipefail
cd "$(dirname "$0")/.."

label="$1"
shift
command -v strace > /dev/null 2>&1 || { echo "egress: strace is missing (scripts/tools.sh strace)" >&2; exit 1; }
dir="${ORDERLY_EGRESS_TRACE_DIR:-}"
keep=yes
if [ -z "$dir" ]; then
  dir="$(mktemp -d)"
  keep=""
fi
mkdir -p "$dir"
trace="$dir/egress-$label.trace"
# --seccomp-bpf: only the traced calls stop a process, so tracing costs little.
# -yy: each socket with its protocol and, once connected, both ends.
strace -f -qq -yy --seccomp-bpf -e trace=connect,sendto,sendmsg,sendmmsg -e signal=none \
  -o "$trace" -- "$@"
status=$?
[ -f "$trace" ] || { echo "egress $label: strace wrote no trace" >&2; exit 1; }
if ! python3 scripts/egress_check.py "$label" "$trace"; then
  echo "(trace kept: $trace)" >&2
  [ "$status" -ne 0 ] || status=1
  keep=yes
fi
[ -n "$keep" ] || rm -rf "$dir"
exit "$status"
