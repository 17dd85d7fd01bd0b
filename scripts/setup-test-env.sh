#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine. Safe to run again: it skips what is there.
set -euo pipefail
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
# The `highs` crate (kluis-sdc's LP audit) builds the HiGHS solver from source: it needs cmake, a C++
# compiler and libclang (bindgen).
if ! dpkg -s cmake g++ libclang-dev >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update
  $sudo_cmd apt-get install -y cmake g++ libclang-dev
fi
# The HTML report test (crates/kluis/tests/report.rs) opens `kluis report`'s page in headless
# Chromium.
if ! dpkg -s chromium >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update
  $sudo_cmd apt-get install -y chromium
fi
