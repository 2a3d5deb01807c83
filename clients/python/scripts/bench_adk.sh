#!/usr/bin/env bash
# make bench-adk: ADK session services timed from Python (bench/bench_adk.py),
# then the table, ratios and charts (the bench crate's adk_report).
#
#   SESSIONS_BIN=target/release/sessions clients/python/scripts/bench_adk.sh
#
# The benchmark runs in its own virtual environment (BENCH_VENV, default
# clients/python/.venv-bench), made from PyPI with requirements-bench.txt;
# ADK_BENCH_* knobs: see bench/bench_adk.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${BENCH_VENV:-$here/.venv-bench}"
stamp="$venv/.sessions-adk-bench-requirements"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$here/requirements-bench.txt" "$stamp" 2>/dev/null; then
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$here/requirements-bench.txt"
  "$venv/bin/pip" install -q -e "$here"
  cp "$here/requirements-bench.txt" "$stamp"
fi
if [[ -z "${SESSIONS_BIN:-}" ]]; then
  (cd "$repo" && cargo build -q --release -p sessions)
  export SESSIONS_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/sessions"
fi
cd "$repo"
"$venv/bin/python" "$here/bench/bench_adk.py"
cargo run -q --release -p bench --bin adk_report
