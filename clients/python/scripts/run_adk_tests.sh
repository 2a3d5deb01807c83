#!/usr/bin/env bash
# ADK's own session-service tests against HttpSessionService, run from a
# checkout of google/adk-python outside this repository; nothing of it is
# copied into the repository.
#
#   ADK_CHECKOUT=/path/to/adk-python clients/python/scripts/run_adk_tests.sh [BACKEND...] [-- PYTEST_ARGS...]
#
# BACKEND: redis, postgres, mariadb, memory (default: redis postgres mariadb).
# For each, the sessions function is built (unless SESSIONS_BIN is set) and
# started on that backend by the adk_http_service pytest plugin, on free
# ports, with servers of the run's own. ADK's test file is copied next to
# itself with HttpSessionService added to its parametrisation
# (scripts/adk_parametrize.py prints the diff), run, and removed.
# Only the HTTP cases run unless ADK_TESTS_ALL=1 (then ADK's in-memory and
# SQLite cases run too).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
checkout="${ADK_CHECKOUT:?set ADK_CHECKOUT to a checkout of google/adk-python}"
test_file="${ADK_TEST_FILE:-tests/unittests/sessions/test_session_service.py}"
[[ -f "$checkout/$test_file" ]] || { echo "no $test_file in $checkout" >&2; exit 2; }

backends=()
while [[ $# -gt 0 && "$1" != "--" ]]; do backends+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
[[ ${#backends[@]} -eq 0 ]] && backends=(redis postgres mariadb)

venv="$("$here/scripts/venv.sh")"
if [[ -z "${SESSIONS_BIN:-}" ]]; then
  (cd "$repo" && cargo build -q -p sessions)
  export SESSIONS_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/sessions"
fi

patched="$checkout/$(dirname "$test_file")/test_session_service__sessions_fn.py"
trap 'rm -f "$patched"' EXIT
echo "==> ADK checkout $(git -C "$checkout" rev-parse HEAD 2>/dev/null || echo '(not a git checkout)'), google-adk $("$venv/bin/python" -c 'import google.adk; print(google.adk.__version__)')"
"$venv/bin/python" "$here/scripts/adk_parametrize.py" "$checkout/$test_file" "$patched"

select=(-k HTTP)
[[ "${ADK_TESTS_ALL:-0}" == 1 ]] && select=()
status=0
for backend in "${backends[@]}"; do
  echo "==> ADK's session tests, HttpSessionService on the $backend backend"
  (
    cd "$checkout"
    ADK_HTTP_BACKEND="$backend" \
    PYTHONPATH="$here/scripts:$here/tests${PYTHONPATH:+:$PYTHONPATH}" \
      "$venv/bin/python" -m pytest -p adk_http_service -o asyncio_mode=auto \
      "${select[@]}" -q -rfE "$patched" "$@"
  ) || status=1
done
exit $status
