#!/usr/bin/env bash
# Installs the Python tools the AWS tests and builds use into a virtualenv (cached between
# runs): moto[server] (the local AWS emulator), cargo-lambda (Lambda zips), python-hcl2
# (deploy/checks/check_terraform.py) and statelint (the generated state machine), plus
# checkov (the Terraform security scan). checkov lives in a virtualenv of its own, linked
# into the main one's bin directory: it depends on bc-python-hcl2, a fork that installs
# the same `hcl2` package as python-hcl2 (one venv would hold a mix of both), and pins an
# older boto3 than moto's.
# Usage: scripts/aws-tools.sh   -> prints the venv's bin directory
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${ORDERLY_TOOLS_VENV:-$HOME/.cache/orderly/venv}"
CHECKOV_VENV="$VENV-checkov"
MOTO_VERSION="5.2.5"
CARGO_LAMBDA_VERSION="1.9.2"
PYTHON_HCL2_VERSION="8.1.4"
STATELINT_VERSION="3.1.0"
CHECKOV_VERSION="3.3.30"
stamp="$VENV/.orderly-tools-moto-$MOTO_VERSION-cargo-lambda-$CARGO_LAMBDA_VERSION-hcl2-$PYTHON_HCL2_VERSION-statelint-$STATELINT_VERSION-checkov-$CHECKOV_VERSION"

if [ ! -f "$stamp" ]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" \
    "python-hcl2==$PYTHON_HCL2_VERSION" "statelint==$STATELINT_VERSION" >&2
  python3 -m venv "$CHECKOV_VENV" >&2
  "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "checkov==$CHECKOV_VERSION" >&2
  ln -sf "$CHECKOV_VENV/bin/checkov" "$VENV/bin/checkov"
  touch "$stamp"
fi
echo "$VENV/bin"
