#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo, idempotently, on a fresh Debian or Ubuntu machine
# (as root, or with sudo):
#   the Debian package `prometheus`, for promtool (the metrics exposition test, the alerting-rule
#   checks in scripts/k8s-checks.sh) and the `prometheus` server (neptune/tests/integration/prometheus.rs
#   scrapes a local cluster with it).
#   kubectl and helm in .tools/bin (scripts/k8s-tools.sh) for the cluster twin's tests.
#   cargo-nextest in .tools/bin (scripts/install-nextest.sh), the runner of `make unit`.
# Not tansu, the Kafka-protocol broker of neptune/tests/integration/kafka/: scripts/kafka-broker.sh
# builds it once per machine (~11 min), and `make test` starts it beside the build.
# The Kubernetes checks install their own tools (scripts/k8s-tools.sh).
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "install-test-tools: installing promtool and prometheus (Debian package prometheus)"
  as_root apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a Prometheus server where systemd runs; the tests start their own.
  (as_root systemctl stop prometheus 2>/dev/null || as_root service prometheus stop 2>/dev/null || true) >/dev/null 2>&1
fi
for tool in promtool prometheus; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-test-tools: $tool is still missing"; exit 1; }
  "$tool" --version 2>&1 | head -1
done

# kubectl and helm for the cluster twin's tests (twin/tests), which run before the Kubernetes
# checks in `make test`.
bash "$(dirname "${BASH_SOURCE[0]}")/k8s-tools.sh"

# cargo-nextest, which runs the tests in `make unit` (after k8s-tools.sh: it shares its venv).
bash "$(dirname "${BASH_SOURCE[0]}")/install-nextest.sh"
