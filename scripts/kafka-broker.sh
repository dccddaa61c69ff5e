#!/usr/bin/env bash
# Installs the Kafka-protocol broker the Kafka tests start on loopback: tansu (crates.io,
# Apache-2.0), built once with SQLite storage only (`--features libsql`: records survive a broker
# restart, which the broker-restart test needs) into ./.tools/bin/tansu. Idempotent, offline after
# the first run. Needs cargo, a C compiler and libclang (bindgen for SQLite), installed here
# when missing. Run `scripts/kafka-broker.sh run DIR PORT` to start a broker by hand.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${NEPTUNE_TOOLS_DIR:-$ROOT/.tools}"
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"

need_apt() {
  local pkg="$1"
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    echo "kafka-broker: installing $pkg"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
    fi
  fi
}

install_tansu() {
  if [ -x "$TOOLS/bin/tansu" ] && "$TOOLS/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return
  fi
  command -v cc >/dev/null 2>&1 || need_apt build-essential
  need_apt libclang-dev
  echo "kafka-broker: building tansu $TANSU_VERSION (SQLite storage) into $TOOLS/bin (several minutes, once)"
  local start=$SECONDS
  # A test broker, not a production one: built like the `ci` profile (opt-level 1, no LTO, many
  # codegen units, build scripts and proc macros at 0) instead of tansu's release profile.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=true CARGO_PROFILE_RELEASE_BUILD_OVERRIDE_OPT_LEVEL=0 \
    cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features libsql \
    --root "$TOOLS" --quiet
  echo "kafka-broker: tansu built in $((SECONDS - start)) s"
}

case "${1:-install}" in
  install)
    install_tansu
    "$TOOLS/bin/tansu" --version
    ;;
  run)
    # run DIR PORT: a broker on 127.0.0.1:PORT keeping its data in DIR/tansu.db.
    install_tansu
    dir="$2" port="$3"
    mkdir -p "$dir"
    cd "$dir"
    exec "$TOOLS/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "sqlite://tansu.db"
    ;;
  *)
    echo "usage: $0 [install | run DIR PORT]" >&2
    exit 2
    ;;
esac
