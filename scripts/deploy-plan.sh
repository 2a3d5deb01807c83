#!/usr/bin/env bash
# Which functions and clouds a deployment covers, as GitHub step outputs:
#   scripts/deploy-plan.sh <function|all> <gcp|aws|all>
# prints functions=["tebra_debug",...], gcp=true|false, aws=true|false.
# Refuses a function that is not a crate under functions/ (the input comes
# from a person: it is validated, never interpolated into a command).
set -euo pipefail
cd "$(dirname "$0")/.."

function="${1:-all}"
target="${2:-all}"

mapfile -t all < <(find functions -mindepth 2 -maxdepth 2 -name Cargo.toml -printf '%h\n' | sed 's|^functions/||' | sort)
if [ "$function" = "all" ]; then
  selected=("${all[@]}")
elif [[ "$function" =~ ^[a-z][a-z0-9_]*$ ]] && [ -f "functions/$function/Cargo.toml" ]; then
  selected=("$function")
else
  echo "unknown function '$function'; one of: all ${all[*]}" >&2
  exit 2
fi
case "$target" in
  all) gcp=true aws=true ;;
  gcp) gcp=true aws=false ;;
  aws) gcp=false aws=true ;;
  *) echo "unknown target '$target'; one of: all gcp aws" >&2; exit 2 ;;
esac

json=$(printf '"%s",' "${selected[@]}")
echo "functions=[${json%,}]"
echo "gcp=$gcp"
echo "aws=$aws"
