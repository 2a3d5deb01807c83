#!/usr/bin/env bash
# Smoke test of a deployed function: GET <base-url>/redis-health until it
# answers 200 with "status":"healthy", or give up.
#   scripts/smoke-test.sh https://tebra-debug-abc-uc.a.run.app [attempts]
# SMOKE_ID_TOKEN=1 sends a Google identity token (for Cloud Run services that
# require authentication). The body is printed; it holds no secrets.
set -euo pipefail

base="${1:?usage: smoke-test.sh <base-url> [attempts]}"
attempts="${2:-10}"
url="${base%/}/redis-health"
auth=()
if [ "${SMOKE_ID_TOKEN:-0}" = "1" ]; then
  auth=(-H "Authorization: Bearer $(gcloud auth print-identity-token)")
fi

for i in $(seq "$attempts"); do
  body=$(curl -sS --max-time 5 -w '\n%{http_code}' "${auth[@]}" "$url" || true)
  code="${body##*$'\n'}"
  body="${body%$'\n'*}"
  if [ "$code" = "200" ] && [[ "$body" == *'"status":"healthy"'* ]]; then
    echo "smoke test passed: $url -> $body"
    exit 0
  fi
  echo "attempt $i/$attempts: $url -> HTTP $code $body" >&2
  sleep 3
done
echo "smoke test FAILED: $url never answered healthy" >&2
exit 1
