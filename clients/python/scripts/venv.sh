#!/usr/bin/env bash
# Makes (or refreshes) the virtual environment the Python tests run in:
# $VENV (default clients/python/.venv), from PyPI only, with sessions-adk
# installed editable. Prints the venv's directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$here/.venv}"
stamp="$venv/.sessions-adk-requirements"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv" >&2
fi
if ! cmp -s "$here/requirements-test.txt" "$stamp" 2>/dev/null; then
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -r "$here/requirements-test.txt" >&2
  "$venv/bin/pip" install -q -e "$here" >&2
  cp "$here/requirements-test.txt" "$stamp"
fi
echo "$venv"
