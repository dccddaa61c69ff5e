#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo, idempotently, on a fresh Debian machine:
#   promtool (Debian package `prometheus`) for the metrics exposition test;
#   kubectl and helm in .tools/bin (scripts/k8s-tools.sh) for the cluster twin's tests.
set -euo pipefail

if ! command -v promtool >/dev/null 2>&1; then
  echo "install-test-tools: installing promtool (Debian package prometheus)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a Prometheus server where systemd runs; we only want the binary.
  (systemctl stop prometheus 2>/dev/null || service prometheus stop 2>/dev/null || true) >/dev/null 2>&1
fi
promtool --version 2>&1 | head -1

# kubectl and helm for the cluster twin's tests (twin/tests), which run before the Kubernetes
# checks in `make test`.
bash "$(dirname "${BASH_SOURCE[0]}")/k8s-tools.sh"
