#!/usr/bin/env bash
# The offline checks of the AWS stack (deploy/terraform), runnable without AWS access or
# provider downloads:
#   1. terraform fmt -check -recursive
#   2. checkov (zero failed checks; every skip is inline with its reason)
#   3. statelint on the state machine definition
#   4. check_terraform.py: the stack against orderly.manifest.json (generated from the code)
#   5. check_terraform.py --self-test: mutated stacks must fail
#   6. terraform validate, only where a local provider mirror exists
#      ($TF_PLUGIN_MIRROR, default /opt/tf-plugins); skipped otherwise
# Usage: deploy/checks/run.sh [--require-zips target/lambda]
# Ends with "aws-stack: N passed, M failed"; exits 1 if any step failed.
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1
# Offline means offline: no version checks (terraform's checkpoint, checkov's PyPI lookup)
# and no policy-mapping download (scripts/test.sh runs this under strace and fails on any
# packet off the machine).
export CHECKPOINT_DISABLE=1 CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE
cd "$(dirname "$0")/../.."

TF_DIR=deploy/terraform
bash scripts/tools.sh stack || { echo "scripts/tools.sh stack failed" >&2; exit 1; }
TOOLS="${ORDERLY_TOOLS_DIR:-$HOME/.cache/orderly}"
BIN="$TOOLS/venv-stack/bin"
tfrc="$(mktemp)"
export TF_CLI_CONFIG_FILE="$tfrc"  # no ~/.terraformrc here; an empty one keeps terraform quiet
scratch=""
trap 'rm -f "$tfrc"; [ -n "$scratch" ] && rm -rf "$scratch"' EXIT

passed=0
failed=0
step() {
  local name="$1"
  shift
  echo "== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "FAILED: $name"
    failed=$((failed + 1))
  fi
}

validate() {
  local mirror="${TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
  if [ ! -d "$mirror/registry.terraform.io/hashicorp/aws" ]; then
    echo "skipped: no provider mirror at $mirror (providers cannot be downloaded here)"
    return 0
  fi
  scratch="$(mktemp -d)"
  cp -r "$TF_DIR/." "$scratch/"
  rm -rf "$scratch/.terraform" "$scratch/.terraform.lock.hcl"
  (cd "$scratch" && terraform init -backend=false -input=false -plugin-dir="$mirror" >/dev/null &&
    terraform validate -no-color)
}

step "terraform fmt" terraform fmt -check -recursive "$TF_DIR"
step "checkov" "$TOOLS/venv-checkov/bin/checkov" --skip-download -d "$TF_DIR" --compact --quiet
step "statelint" "$BIN/statelint" "$TF_DIR/saga.asl.json"
step "check_terraform.py" "$BIN/python" deploy/checks/check_terraform.py "$@"
step "check_terraform.py --self-test" "$BIN/python" deploy/checks/check_terraform.py --self-test
step "terraform validate" validate

echo "aws-stack: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
