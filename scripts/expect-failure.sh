#!/usr/bin/env bash
# Runs a checker on fixtures it must reject: succeeds only when the command
# fails and reports exactly the expected number of failed checks ("Failed
# checks: N"), so a policy that silently stops matching is noticed.
#   scripts/expect-failure.sh <expected failures> <command>...
set -uo pipefail

expected="${1:?usage: expect-failure.sh <expected failures> <command>...}"
shift
output="$("$@" 2>&1)"
status=$?
if [ "$status" -eq 0 ]; then
  echo "$output"
  echo "expected the checker to reject the fixtures, but it passed: $*" >&2
  exit 1
fi
if ! grep -q "Failed checks: $expected," <<<"$output"; then
  echo "$output"
  echo "expected $expected failed checks on the fixtures" >&2
  exit 1
fi
echo "ok: the policies reject all $expected fixtures"
