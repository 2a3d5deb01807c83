#!/usr/bin/env bash
# Smoke test of one published Lambda version before it gets traffic: invokes
# FUNCTION:VERSION directly with a Function URL event for GET /redis-health
# and expects statusCode 200 with "status":"healthy" in the body.
#   scripts/smoke-test-lambda.sh tebra_debug 42
set -euo pipefail

function_name="${1:?usage: smoke-test-lambda.sh <function> <version>}"
version="${2:?usage: smoke-test-lambda.sh <function> <version>}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

for i in 1 2 3 4 5; do
  if aws lambda invoke --function-name "$function_name" --qualifier "$version" \
      --cli-binary-format raw-in-base64-out \
      --payload "fileb://$here/lambda/redis-health-event.json" "$out" >/dev/null; then
    if python3 - "$out" <<'PY'
import json, sys
reply = json.load(open(sys.argv[1]))
body = reply.get("body") or ""
sys.exit(0 if reply.get("statusCode") == 200 and '"status":"healthy"' in body else 1)
PY
    then
      echo "smoke test passed: $function_name:$version -> $(cat "$out")"
      exit 0
    fi
  fi
  echo "attempt $i/5: $function_name:$version -> $(cat "$out" 2>/dev/null)" >&2
  sleep 3
done
echo "smoke test FAILED: $function_name:$version never answered healthy" >&2
exit 1
