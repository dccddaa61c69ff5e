#!/usr/bin/env bash
# Installs the Kafka-protocol broker the Kafka tests (and `neptune bench --source kafka`) start on
# loopback: tansu (crates.io, Apache-2.0), built with SQLite storage only (`--features libsql`:
# records survive a broker restart, which the broker-restart test needs). Built once per machine
# into a cache outside the clone (like the cargo registry and the apt packages the tests use):
# ${NEPTUNE_TANSU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/neptune}/tansu-VERSION/bin/tansu, linked
# from ./.tools/bin/tansu, where the tests and the bench look. Building takes ~11 min of both CPUs
# (1,243 s CPU, measured 2026-12-01), so `make test` starts it first, at the lowest priority, beside
# the workspace build; a second caller waits for the first (flock) instead of building it again.
# Idempotent, offline after the first run. Needs cargo, a C compiler and libclang (bindgen for
# SQLite), installed here when missing. Run `scripts/kafka-broker.sh run DIR PORT` to start a
# broker by hand.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${NEPTUNE_TOOLS_DIR:-$ROOT/.tools}"
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
if [ -n "${NEPTUNE_TANSU_CACHE:-}" ]; then
  CACHE="$NEPTUNE_TANSU_CACHE"
elif [ -n "${XDG_CACHE_HOME:-}" ] || [ -n "${HOME:-}" ]; then
  CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/neptune"
else
  CACHE="$TOOLS/cache"
fi
PREFIX="$CACHE/tansu-$TANSU_VERSION"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt() {
  local pkg="$1" try
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    echo "kafka-broker: installing $pkg"
    # `make test` runs this beside scripts/install-test-tools.sh, whose apt-get may hold the
    # package lock for a while: try again rather than fail.
    for try in $(seq 30); do
      if as_root apt-get update -qq >/dev/null 2>&1 &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null; then
        return
      fi
      echo "kafka-broker: apt-get failed (attempt $try; another apt may hold the lock); retrying in 10 s"
      sleep 10
    done
    echo "kafka-broker: cannot install $pkg" >&2
    exit 1
  fi
}

have_tansu() {
  [ -x "$PREFIX/bin/tansu" ] && "$PREFIX/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"
}

install_tansu() {
  mkdir -p "$PREFIX" "$TOOLS/bin"
  if ! have_tansu; then
    # One build per machine: a caller that finds another building waits for it.
    exec 9>"$PREFIX.lock"
    flock 9
    if ! have_tansu; then
      command -v cc >/dev/null 2>&1 || need_apt build-essential
      need_apt libclang-dev
      echo "kafka-broker: building tansu $TANSU_VERSION (SQLite storage) into $PREFIX (~11 min of both CPUs, once per machine)"
      local start=$SECONDS
      # A test broker, not a production one: built like the `ci` profile (opt-level 1, no LTO,
      # many codegen units, build scripts and proc macros at 0) instead of tansu's release profile.
      CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false \
        CARGO_PROFILE_RELEASE_STRIP=true CARGO_PROFILE_RELEASE_BUILD_OVERRIDE_OPT_LEVEL=0 \
        cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features libsql \
        --root "$PREFIX" --quiet
      echo "kafka-broker: tansu built in $((SECONDS - start)) s"
    fi
    flock -u 9
  fi
  ln -sfn "$PREFIX/bin/tansu" "$TOOLS/bin/tansu"
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
