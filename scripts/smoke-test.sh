#!/usr/bin/env bash
# Smoke test of a deployed function: GET <base-url>/redis-health until it
# answers 200 with "status":"healthy", or give up.
#   scripts/smoke-test.sh https://tebra-debug-abc-uc.a.run.app [attempts]
# The functions are private by default, so the request authenticates:
#   SMOKE_ID_TOKEN=1   sends a Google identity token (Cloud Run's IAM check);
#                      SMOKE_AUDIENCE sets its audience (the service URL),
#                      which a service account needs.
#   SMOKE_SIGV4=1      signs with SigV4 for a Lambda Function URL with
#                      AWS_IAM auth, with the AWS credentials of the
#                      environment or of the CLI (aws configure
#                      export-credentials); AWS_REGION or the CLI's region.
# /redis-health is open in the function in every AUTH_MODE; the credential
# is for the platform in front of it. The body is printed; it holds only
# status, ping and latency.
set -euo pipefail

base="${1:?usage: smoke-test.sh <base-url> [attempts]}"
attempts="${2:-10}"
url="${base%/}/redis-health"
auth=()
if [ "${SMOKE_ID_TOKEN:-0}" = "1" ]; then
  if [ -n "${SMOKE_AUDIENCE:-}" ]; then
    # A service account needs an audience; a user account refuses one.
    token=$(gcloud auth print-identity-token --audiences="$SMOKE_AUDIENCE" 2>/dev/null || gcloud auth print-identity-token)
  else
    token=$(gcloud auth print-identity-token)
  fi
  auth=(-H "Authorization: Bearer $token")
fi
if [ "${SMOKE_SIGV4:-0}" = "1" ]; then
  if [ -z "${AWS_ACCESS_KEY_ID:-}" ]; then
    eval "$(aws configure export-credentials --format env)"
  fi
  region="${AWS_REGION:-$(aws configure get region)}"
  auth=(--aws-sigv4 "aws:amz:${region}:lambda" --user "${AWS_ACCESS_KEY_ID}:${AWS_SECRET_ACCESS_KEY}")
  if [ -n "${AWS_SESSION_TOKEN:-}" ]; then
    auth+=(-H "x-amz-security-token: ${AWS_SESSION_TOKEN}")
  fi
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
