#!/usr/bin/env bash
# Installs what building and testing rill needs beyond the pinned Rust toolchain
# (rust-toolchain.toml). Idempotent; safe to run on every CI start.
set -euo pipefail
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install rustup, which reads rust-toolchain.toml" >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
echo "setup: toolchain $(rustc --version)"
