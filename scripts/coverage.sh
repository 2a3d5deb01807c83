#!/usr/bin/env bash
# make coverage: line coverage of `shared` and the functions, measured with
# every Rust test (the real-server tests included), by cargo-tarpaulin's LLVM
# engine (source-based coverage from rustc; no LLVM tools to download).
#
# Prints line coverage per crate and the total, and writes under
# target/coverage/: an HTML report, lcov.info, and uncovered.txt (the lines
# no test reaches, per file, as ranges).
set -euo pipefail
cd "$(dirname "$0")/.."

TARPAULIN_VERSION=0.37.5
out=target/coverage

if ! cargo tarpaulin --version 2>/dev/null | grep -q "$TARPAULIN_VERSION"; then
  echo "==> installing cargo-tarpaulin $TARPAULIN_VERSION (crates.io)"
  cargo install --locked --quiet cargo-tarpaulin --version "$TARPAULIN_VERSION"
fi
scripts/setup.sh test

started=$(date +%s)
echo "==> measuring (an instrumented build, then every test; tens of minutes on 2 cores)"
# bench is programs, not tests; the test kit and the test-only binary are
# test code.
cargo tarpaulin --engine llvm --workspace --exclude bench \
  --skip-clean --target-dir "$out/build" \
  --exclude-files 'shared/src/testkit/*' --exclude-files 'shared/src/bin/*' \
  --exclude-files 'bench/*' --exclude-files '*/tests/*' \
  --timeout 600 --no-fail-fast \
  --out Html --out Lcov --output-dir "$out" >"$out/tarpaulin.log" 2>&1 || {
  tail -40 "$out/tarpaulin.log" >&2
  echo "tarpaulin failed; the whole log is $out/tarpaulin.log" >&2
  exit 1
}

# Per crate, from lcov.info: LF is lines found, LH lines hit, per file (SF).
awk -F: '
  /^SF:/ { file = $2; sub(".*/work/[^/]*/", "", file); n = split(file, p, "/");
           crate = (p[1] == "functions") ? p[2] : p[1] }
  /^LF:/ { found[crate] += $2; total_found += $2 }
  /^LH:/ { hit[crate] += $2; total_hit += $2 }
  END {
    printf "%-14s %8s %8s %7s\n", "crate", "lines", "covered", "%"
    for (c in found) printf "%-14s %8d %8d %6.1f%%\n", c, found[c], hit[c], 100 * hit[c] / found[c]
    printf "%-14s %8d %8d %6.1f%%\n", "total", total_found, total_hit, 100 * total_hit / total_found
  }' "$out/lcov.info" | tee "$out/summary.txt"

# The lines no test reached, as ranges per file.
awk -F'[:,]' '
  /^SF:/ { if (file != "" && ranges != "") print file ": " ranges; file = $2; sub(".*/work/[^/]*/", "", file); ranges = ""; start = -1 }
  /^DA:/ && $3 == 0 { line = $2 + 0
         if (start >= 0 && line == last + 1) { last = line; next }
         if (start >= 0) ranges = ranges (start == last ? start : start "-" last) " "
         start = line; last = line; next }
  /^end_of_record/ { if (start >= 0) ranges = ranges (start == last ? start : start "-" last) " "
         if (ranges != "") print file ": " ranges; ranges = ""; start = -1; file = "" }
' "$out/lcov.info" >"$out/uncovered.txt"

echo "==> done in $(( $(date +%s) - started )) s: $out/tarpaulin-report.html, $out/lcov.info, $out/uncovered.txt"
