#!/usr/bin/env bash
# The Python conformance suite (clients/python/tests) against the sessions
# function on each backend, started by the tests themselves on free ports:
#
#   clients/python/scripts/run_conformance.sh [BACKEND...] [-- PYTEST_ARGS...]
#
# BACKEND: redis, memory, postgres, mariadb, or all (default: all). The
# function is built first unless SESSIONS_BIN is set; VENV names the virtual
# environment (made from PyPI by scripts/venv.sh, default clients/python/.venv).
# SESSIONS_API=current skips the tests of the proposed HTTP API changes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
backends=()
while [[ $# -gt 0 && "$1" != "--" ]]; do backends+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
[[ ${#backends[@]} -eq 0 ]] && backends=(all)
venv="$("$here/scripts/venv.sh")"
if [[ -z "${SESSIONS_BIN:-}" ]]; then
  (cd "$repo" && cargo build -q -p sessions)
  export SESSIONS_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/sessions"
fi
list="$(IFS=,; echo "${backends[*]}")"
cd "$here"
SESSIONS_BACKENDS="$list" exec "$venv/bin/python" -m pytest tests -q -rfE "$@"
