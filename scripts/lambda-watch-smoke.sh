#!/usr/bin/env bash
# The real function binary in Lambda mode under `cargo lambda watch`, the
# Lambda emulator of cargo-lambda (installed from PyPI into a private venv):
# /redis-health answers 200 "healthy" through a Function URL invocation while
# a throwaway redis-server runs, and through an HTTP API event on the named
# stage `prod` (rawPath /prod/redis-health, with a query) and a REST API
# event (stage `prod`) sent to the invoke endpoint;
# then 503 with error type "connect" once Redis is stopped. The tests also run every binary in Lambda mode against the test
# kit's own Runtime API emulator; this checks the same against AWS's tooling.
#
# usage: scripts/lambda-watch-smoke.sh [function]   (default: tebra_debug)
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:-tebra_debug}
version=1.9.2
venv=${OPS_TOOLS:-$HOME/.cache/redis-functions-ops}/cargo-lambda-$version
if ! "$venv/bin/cargo-lambda" lambda --version >/dev/null 2>&1; then
  echo "installing cargo-lambda $version from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "cargo-lambda==$version"
fi
export PATH="$venv/bin:$PATH"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
redis_port=$(free_port)
invoke_port=$(free_port)
work=$(mktemp -d)
redis_pid=""
watch_pid=""
cleanup() {
  [[ -n "$watch_pid" ]] && kill -- "-$watch_pid" 2>/dev/null || true
  [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!

# Its own process group, so that the function it spawns goes with it.
setsid cargo lambda watch --package "$name" --bin "$name" \
  --invoke-address 127.0.0.1 --invoke-port "$invoke_port" \
  --env-var "REDIS_URL=redis://127.0.0.1:$redis_port" \
  --env-var "LOG_LEVEL=warn" >"$work/watch.log" 2>&1 &
watch_pid=$!

url="http://127.0.0.1:$invoke_port/lambda-url/$name/redis-health"
fetch() { curl -s -o "$work/body" -w '%{http_code}' --max-time 5 "$url" || true; }

echo "cargo lambda watch: building and starting $name (the first build takes a while)"
deadline=$((SECONDS + 900))
code=$(fetch)
while [[ "$code" != 200 ]]; do
  if ((SECONDS > deadline)) || ! kill -0 "$watch_pid" 2>/dev/null; then
    echo "FAIL: $name never answered 200 under cargo lambda watch (last: ${code:-none})" >&2
    tail -n 40 "$work/watch.log" >&2
    exit 1
  fi
  sleep 2
  code=$(fetch)
done
grep -q '"status":"healthy"' "$work/body" || {
  echo "FAIL: unexpected body: $(cat "$work/body")" >&2
  exit 1
}
echo "ok: 200 $(cat "$work/body")"

# Events in the shapes API Gateway sends, through the invoke endpoint: the
# answer is the Lambda response document ({"statusCode": ..., "body": ...}).
invoke_url="http://127.0.0.1:$invoke_port/2015-03-31/functions/$name/invocations"
for event in named-stage-event rest-api-event; do
  curl -s --max-time 10 -o "$work/answer" -H 'content-type: application/json' \
    --data-binary "@scripts/lambda/$event.json" "$invoke_url" || true
  if ! python3 - "$work/answer" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
body = json.loads(answer.get("body") or "null") or {}
ok = answer.get("statusCode") == 200 and body.get("status") == "healthy"
sys.exit(0 if ok else 1)
PY
  then
    echo "FAIL: $event: expected 200 healthy, got $(cat "$work/answer")" >&2
    tail -n 20 "$work/watch.log" >&2
    exit 1
  fi
  echo "ok: $event 200 healthy"
done

kill "$redis_pid"
wait "$redis_pid" 2>/dev/null || true
redis_pid=""
code=$(fetch)
if [[ "$code" != 503 ]] || ! grep -q '"type":"connect"' "$work/body"; then
  echo "FAIL: with Redis stopped expected 503 type connect, got $code $(cat "$work/body")" >&2
  exit 1
fi
echo "ok: 503 $(cat "$work/body")"
echo "PASS: $name under cargo lambda watch"
