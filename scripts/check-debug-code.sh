#!/usr/bin/env bash
# Fails on debugging leftovers in non-test Rust code: dbg!, todo!,
# unimplemented!, println!/print!/eprintln!/eprint!. Test modules
# (after `#[cfg(test)]`) and the tests/ folders are exempt. Clippy denies the
# same macros; this check also runs without a build (pre-commit, editors).
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || pwd)"

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  mapfile -t files < <(git ls-files '*.rs' 2>/dev/null || find . -name '*.rs' -not -path './target/*')
fi

status=0
for f in "${files[@]}"; do
  case "$f" in
    */tests/*|tests/*|*/benches/*) continue ;;
    *.rs) ;;
    *) continue ;;
  esac
  [ -f "$f" ] || continue
  hits=$(awk '/#\[cfg\(test\)\]/ { exit } /^[[:space:]]*\/\// { next }
              /(^|[^A-Za-z_])(dbg|todo|unimplemented|println|print|eprintln|eprint)!\(/ { printf "%s:%d: %s\n", FILENAME, NR, $0 }' "$f")
  if [ -n "$hits" ]; then
    echo "$hits"
    status=1
  fi
done
[ $status -eq 0 ] || echo "debugging code outside tests (see above): remove it or move it into a test" >&2
exit $status
