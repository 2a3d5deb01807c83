#!/usr/bin/env bash
# make run NAME=<function>: runs a function as a local server against a real
# Redis: $REDIS_URL if set, else a Redis answering on 127.0.0.1:6379, else a
# throwaway redis-server started here (and stopped on exit).
set -euo pipefail

name="${1:-}"
functions=$(ls functions)
if [ -z "$name" ] || [ ! -d "functions/$name" ]; then
  # The unquoted echo joins the names on one line.
  # shellcheck disable=SC2086,SC2116
  echo "usage: make run NAME=<function>   (one of: $(echo $functions))" >&2
  exit 2
fi
port="${PORT:-8080}"

redis_answers() { # host port
  { exec 3<>"/dev/tcp/$1/$2" && printf 'PING\r\n' >&3 && IFS= read -r -t 1 reply <&3 && exec 3>&-; } 2>/dev/null || return 1
  [[ "$reply" == +PONG* || "$reply" == -NOAUTH* ]]
}

tmp=""
redis_pid=""
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  [ -n "$tmp" ] && rm -rf "$tmp" || true
}
trap cleanup EXIT

if [ -n "${REDIS_URL:-}" ]; then
  echo "==> using REDIS_URL from the environment"
elif redis_answers 127.0.0.1 6379; then
  export REDIS_URL=redis://127.0.0.1:6379
  echo "==> using the Redis answering on 127.0.0.1:6379"
else
  command -v redis-server >/dev/null || { echo "no Redis found and redis-server is not installed: run 'make setup'" >&2; exit 1; }
  tmp=$(mktemp -d)
  rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do redis_answers 127.0.0.1 "$rport" && break; sleep 0.05; done
  export REDIS_URL="redis://127.0.0.1:$rport"
  echo "==> started a throwaway redis-server at $REDIS_URL (stopped when this exits)"
fi

# A local run has no platform to authenticate callers: anonymous access
# unless AUTH_MODE says otherwise (the function warns at start).
export AUTH_MODE="${AUTH_MODE:-none}"
if [ "$AUTH_MODE" = "none" ]; then
  echo "==> AUTH_MODE=none: every caller reaches every tenant (set AUTH_MODE=jwt to try tokens)"
fi

cargo build --quiet -p "$name" --bin "$name"
echo "==> $name on http://localhost:$port  (Ctrl-C to stop)"
echo "    curl -s http://localhost:$port/redis-health"
PORT="$port" "./target/debug/$name" &
fn_pid=$!
trap 'kill -TERM $fn_pid 2>/dev/null; wait $fn_pid 2>/dev/null; cleanup' INT TERM
wait "$fn_pid"
