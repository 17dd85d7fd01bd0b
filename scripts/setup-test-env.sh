#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine. Safe to run again: it skips what is there.
set -euo pipefail
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
