#!/usr/bin/env bash
# Fails if a file holds a private key. The pattern is assembled so that this
# script does not match itself.
set -euo pipefail
marker="PRIVATE"" KEY-----"
status=0
for f in "$@"; do
  [ -f "$f" ] || continue
  if grep -Iq -- "-----BEGIN [A-Z ]*$marker" "$f"; then
    echo "$f: contains a private key" >&2
    status=1
  fi
done
exit $status
