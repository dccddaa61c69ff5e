#!/usr/bin/env bash
# Kubernetes checks that need no cluster: CRD drift (generator == crds/ == chart), helm lint,
# helm template (default and all-features values), and kubernetes-validate --strict on the CRD,
# the operator's golden files, the examples' plain objects (e.g. wordcount's ConfigMap) and every
# rendered manifest, for the oldest supported Kubernetes.
# Installs helm/kubectl/kubernetes-validate into ./.tools on first use.
# Usage: scripts/k8s-checks.sh   (env: OLDEST_K8S=1.28.0, CARGO_PROFILE=dev, CARGO_TARGET_DIR)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OLDEST_K8S="${OLDEST_K8S:-1.28.0}"
CHART="charts/neptune-operator"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# CI shares the workspace's target dir; developers default to a separate one so the check does not
# wait on their other builds. CARGO_PROFILE picks the profile (e.g. the Makefile's `ci`).
if [ -n "${CI:-}" ]; then export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"; fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-k8s}"
CARGO_PROFILE="${CARGO_PROFILE:-dev}"
fail=0
step() { printf '\n== %s\n' "$*"; }

# shellcheck source=k8s-tools.sh
source "$ROOT/scripts/k8s-tools.sh"
KV="$TOOLS/venv/bin/kubernetes-validate"

step "CRD generator output equals crds/streambatchapp.yaml and the chart's CRD"
cargo run --quiet --profile "$CARGO_PROFILE" -p neptune-crds --bin crdgen > "$OUT/crd.yaml"
for committed in crds/streambatchapp.yaml "$CHART/crds/streambatchapp.yaml"; do
  if ! diff -u "$committed" "$OUT/crd.yaml"; then
    echo "FAIL: $committed is stale; run: cargo run -p neptune-crds --bin crdgen > crds/streambatchapp.yaml && cp crds/streambatchapp.yaml $CHART/crds/"
    fail=1
  else
    echo "ok: $committed"
  fi
done

step "helm lint"
helm lint --strict "$CHART"
helm lint --strict "$CHART" -f "$CHART/ci/all-features-values.yaml"

step "helm template"
helm template neptune "$CHART" --namespace neptune-system --include-crds > "$OUT/default.yaml"
helm template neptune "$CHART" --namespace neptune-system --include-crds \
  -f "$CHART/ci/all-features-values.yaml" > "$OUT/all-features.yaml"
grep -q 'grafana_dashboard: "1"' "$OUT/default.yaml" || { echo "FAIL: no dashboard ConfigMap"; fail=1; }
for kind in PodMonitor ServiceMonitor Role RoleBinding; do
  grep -q "^kind: $kind\$" "$OUT/all-features.yaml" || { echo "FAIL: all-features render lacks $kind"; fail=1; }
done
echo "ok: rendered $(grep -c '^kind:' "$OUT/default.yaml") objects (default), $(grep -c '^kind:' "$OUT/all-features.yaml") (all features)"

step "kubernetes-validate --strict for Kubernetes $OLDEST_K8S"
# Split multi-document files and drop objects of kinds the tool has no schema for (CRs).
"$TOOLS/venv/bin/python" - "$OUT" crds/streambatchapp.yaml operator/tests/golden/*.yaml examples/k8s/*.yaml "$OUT/default.yaml" "$OUT/all-features.yaml" <<'PY'
import os, sys, yaml
out, files = sys.argv[1], sys.argv[2:]
skip = {"PodMonitor", "ServiceMonitor", "StreamBatchApp"}
os.makedirs(f"{out}/docs", exist_ok=True)
n = 0
for f in files:
    for i, doc in enumerate(d for d in yaml.safe_load_all(open(f)) if d):
        kind = doc.get("kind")
        if kind in skip:
            print(f"skip: {os.path.basename(f)}#{i} {kind} (a custom resource; no schema offline)")
            continue
        n += 1
        with open(f"{out}/docs/{n:03d}-{kind}-{os.path.basename(f)}", "w") as w:
            yaml.safe_dump(doc, w)
print(f"validating {n} objects")
PY
if ! "$KV" --strict --quiet -k "$OLDEST_K8S" "$OUT"/docs/*; then
  echo "FAIL: kubernetes-validate"
  fail=1
else
  echo "ok: every object is valid for Kubernetes $OLDEST_K8S"
fi

if [ "$fail" != 0 ]; then
  echo; echo "k8s-checks: FAILED"; exit 1
fi
echo; echo "k8s-checks: all passed"
