#!/usr/bin/env bash
# Installs the tools the tests and builds use, by group, each once: a group's stamp file
# names its pinned versions, so a second run (or a run after a version bump) knows whether
# to install. Everything lands under ${ORDERLY_TOOLS_DIR:-$HOME/.cache/orderly}, except
# Debian packages (apt-get, as root or through sudo).
#
# Usage: scripts/tools.sh GROUP...
#   moto     venv-moto: moto[server], the local AWS emulator
#   stack    venv-stack: python-hcl2 and statelint; venv-checkov: checkov (the offline
#            Terraform checks). checkov has its own venv: it depends on bc-python-hcl2, a
#            fork installing the same `hcl2` package as python-hcl2, and pins an older boto3.
#   lambda   venv-lambda: cargo-lambda and the Zig linker it brings (the Lambda zips)
#   fuzz     venv-fuzz: schemathesis
#   browser  Debian's chromium and chromium-driver (if /usr/bin/chromium is missing) and
#            playwright-core (pinned by e2e/package-lock.json, `npm ci`) in e2e/
#   strace   Debian's strace (if missing): the egress test traces the server's connections
# Prints nothing on success but the installs' own progress lines on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${ORDERLY_TOOLS_DIR:-$HOME/.cache/orderly}"
MOTO_VERSION="5.2.5"
CARGO_LAMBDA_VERSION="1.9.2"
PYTHON_HCL2_VERSION="8.1.4"
STATELINT_VERSION="3.1.0"
CHECKOV_VERSION="3.3.30"
SCHEMATHESIS_VERSION="4.32.5"
mkdir -p "$TOOLS"

say() { echo "== tools: $*" >&2; }

# venv NAME STAMP PACKAGE...: a virtualenv at $TOOLS/NAME holding PACKAGE..., unless its
# stamp says it already does. `--no-compile`: no .pyc files (less CPU while cargo builds).
venv() {
  local name="$1" stamp="$2"
  shift 2
  local dir="$TOOLS/$name"
  if [ -f "$dir/.orderly-$stamp" ]; then return 0; fi
  say "installing $* into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-compile "$@"
  touch "$dir/.orderly-$stamp"
}

# apt PACKAGE...: installs Debian packages as root or through sudo.
apt() {
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo > /dev/null 2>&1 || { echo "tools: need root or sudo to install $*" >&2; return 1; }
    sudo=(sudo)
  fi
  say "installing Debian packages: $*"
  # apt-get may run from several groups at once: take turns on a lock of our own.
  (
    flock 9
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
  ) 9> "$TOOLS/.apt.lock"
}

group() {
  case "$1" in
    moto) venv venv-moto "moto-$MOTO_VERSION" "moto[server]==$MOTO_VERSION" ;;
    stack)
      venv venv-stack "hcl2-$PYTHON_HCL2_VERSION-statelint-$STATELINT_VERSION" \
        "python-hcl2==$PYTHON_HCL2_VERSION" "statelint==$STATELINT_VERSION"
      venv venv-checkov "checkov-$CHECKOV_VERSION" "checkov==$CHECKOV_VERSION"
      ;;
    lambda) venv venv-lambda "cargo-lambda-$CARGO_LAMBDA_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" ;;
    fuzz) venv venv-fuzz "schemathesis-$SCHEMATHESIS_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" ;;
    browser)
      if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
        apt chromium chromium-driver
      fi
      command -v node > /dev/null 2>&1 || { echo "tools: Node.js 20 or later is needed (apt-get install nodejs npm)" >&2; return 1; }
      local e2e="$TOOLS/e2e"
      mkdir -p "$e2e"
      if ! cmp -s e2e/package-lock.json "$e2e/package-lock.json" ||
        ! cmp -s e2e/package.json "$e2e/package.json" ||
        [ ! -f "$e2e/node_modules/playwright-core/package.json" ]; then
        say "installing playwright-core into $e2e (npm ci)"
        cp e2e/package.json e2e/package-lock.json "$e2e/"
        (cd "$e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --silent)
      fi
      ;;
    strace) command -v strace > /dev/null 2>&1 || apt strace ;;
    *)
      echo "tools: unknown group $1 (moto, stack, lambda, fuzz, browser, strace)" >&2
      return 2
      ;;
  esac
}

[ "$#" -gt 0 ] || { sed -n '2,19p' "$0" >&2; exit 2; }
for g in "$@"; do group "$g"; done
