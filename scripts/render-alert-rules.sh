#!/usr/bin/env bash
# Renders terraform/modules/alerting-core (through terraform/tests/render)
# into the files the contract test and promtool read:
#   terraform/tests/rendered/alerts.json     every alert's expression, threshold, route, runbook
#   terraform/tests/rendered/gcp-rules.yaml  the Cloud Monitoring PromQL as a Prometheus rule file
# The module needs no provider, so this runs offline with the Terraform of
# `make setup` (TERRAFORM to use another). --check fails when the committed
# files differ from a fresh render (make ops-check runs it that way).
#   scripts/render-alert-rules.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."

terraform="${TERRAFORM:-$HOME/.cache/redis-functions-ops/bin/terraform}"
out=terraform/tests/rendered
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

export TF_DATA_DIR="$work/data" TF_IN_AUTOMATION=1
"$terraform" -chdir=terraform/tests/render init -backend=false -input=false >"$work/init.log" 2>&1 ||
  { cat "$work/init.log" >&2; exit 1; }
"$terraform" -chdir=terraform/tests/render apply -auto-approve -input=false -state="$work/render.tfstate" >"$work/apply.log" 2>&1 ||
  { cat "$work/apply.log" >&2; exit 1; }
mkdir -p "$work/out"
"$terraform" -chdir=terraform/tests/render output -state="$work/render.tfstate" -raw catalogue |
  python3 -m json.tool --sort-keys >"$work/out/alerts.json"
"$terraform" -chdir=terraform/tests/render output -state="$work/render.tfstate" -raw gcp_prometheus_rules >"$work/out/gcp-rules.yaml"
rm -f terraform/tests/render/.terraform.lock.hcl

if [ "${1:-}" = "--check" ]; then
  if ! diff -ru "$out" "$work/out"; then
    echo "terraform/tests/rendered is stale: run scripts/render-alert-rules.sh and commit the result" >&2
    exit 1
  fi
  echo "ok: terraform/tests/rendered matches alerting-core"
else
  mkdir -p "$out"
  cp "$work/out/alerts.json" "$work/out/gcp-rules.yaml" "$out/"
  echo "rendered $out/alerts.json and $out/gcp-rules.yaml"
fi
