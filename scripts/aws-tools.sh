#!/usr/bin/env bash
# Installs the Python tools the AWS tests and builds use into a virtualenv (cached between
# runs): moto[server] (the local AWS emulator) and cargo-lambda (Lambda zips).
# Usage: scripts/aws-tools.sh   -> prints the venv's bin directory
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${ORDERLY_TOOLS_VENV:-$HOME/.cache/orderly/venv}"
MOTO_VERSION="5.2.5"
CARGO_LAMBDA_VERSION="1.9.2"
stamp="$VENV/.orderly-tools-moto-$MOTO_VERSION-cargo-lambda-$CARGO_LAMBDA_VERSION"

if [ ! -f "$stamp" ]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" >&2
  touch "$stamp"
fi
echo "$VENV/bin"
