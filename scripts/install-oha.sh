#!/usr/bin/env bash
# Installs oha, the HTTP load generator of the benchmarks (bench/src/oha.rs),
# at the pinned version into cargo's own root ($CARGO_HOME/bin, by default
# ~/.cargo/bin) from crates.io. Quick when it is already there: one
# `oha --version`. The features are spelled out: `rustls` only (its default),
# no HTTP/3 or vsock. oha 1.16.0 does not compile with no TLS feature at all,
# and `native-tls` would need OpenSSL's headers; rustls brings aws-lc-sys,
# which builds with the C compiler alone (no cmake) on Linux.
set -euo pipefail

OHA_VERSION=1.16.0
bin="${CARGO_HOME:-$HOME/.cargo}/bin/oha"

say() { printf '==> %s\n' "$*" >&2; }

for candidate in "${OHA:-}" "$bin" "$(command -v oha 2>/dev/null || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] &&
    [ "$("$candidate" --version 2>/dev/null)" = "oha $OHA_VERSION" ]; then
    say "oha: $OHA_VERSION ($candidate)"
    exit 0
  fi
done

say "installing oha $OHA_VERSION (crates.io; builds once, several minutes on 2 cores)"
cargo install --locked --quiet oha --version "$OHA_VERSION" --no-default-features --features rustls
say "oha: $("$bin" --version)"
