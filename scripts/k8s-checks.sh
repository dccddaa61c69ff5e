#!/usr/bin/env bash
# Kubernetes checks that need no cluster: CRD drift (generator == crds/ == chart), helm lint,
# helm template (default and all-features values), bad values that the chart's schema must refuse,
# the monitors' and PrometheusRule's wiring, `promtool check rules` and `promtool test rules` on the
# alerts, and kubernetes-validate --strict on the CRD, the operator's golden files, the examples'
# plain objects (e.g. wordcount's ConfigMap) and every rendered manifest, for the oldest supported
# Kubernetes.
# Installs helm/kubectl/kubernetes-validate into ./.tools on first use, promtool via
# scripts/install-test-tools.sh when missing.
# Usage: scripts/k8s-checks.sh   (env: OLDEST_K8S=1.28.0, CARGO_PROFILE=dev, CARGO_TARGET_DIR,
#   CRDGEN=path of a built crdgen binary: `make test` passes the one its build made, so this
#   script compiles nothing)
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
if [ -n "${CRDGEN:-}" ]; then "$CRDGEN" > "$OUT/crd.yaml"
else cargo run --quiet --profile "$CARGO_PROFILE" -p neptune-crds --bin crdgen > "$OUT/crd.yaml"; fi
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

step "bad values are refused (values.schema.json) by helm lint and helm template"
# Each case must fail both commands with a message naming the offending key.
bad_values=(
  "replicas|--set replicas=two"
  "replicaz|--set replicaz=2"
  "enabeld|--set metrics.serviceMonitor.enabeld=true"
  "pullPolicy|--set image.pullPolicy=Sometimes"
  "port|--set metrics.port=70000"
  "interval|--set apps.podMonitor.interval=fast"
  "leaseDurationSeconds|--set leaderElection.leaseDurationSeconds=1"
  "replicas|--set leaderElection.enabled=false --set replicas=2"
  "operatr|--set-json tolerations=[{\"key\":\"a\",\"operatr\":\"Equal\"}]"
  "watchNamespaces|--set watchNamespaces[0]=Not_A_Namespace"
  "cpu|--set resources.requests.cpu=lots"
)
for case in "${bad_values[@]}"; do
  want="${case%%|*}"
  read -r -a args <<< "${case#*|}"
  for cmd in lint template; do
    if [ "$cmd" = lint ]; then out="$(helm lint --strict "$CHART" "${args[@]}" 2>&1)" && rc=0 || rc=$?
    else out="$(helm template neptune "$CHART" "${args[@]}" 2>&1)" && rc=0 || rc=$?; fi
    if [ "$rc" = 0 ]; then
      echo "FAIL: helm $cmd accepted ${case#*|}"; fail=1
    elif ! grep -q "$want" <<< "$out"; then
      echo "FAIL: helm $cmd refused ${case#*|} without naming $want:"; echo "$out"; fail=1
    else
      echo "ok: helm $cmd refuses ${case#*|} ($(grep -m1 -o "at '[^']*'.*" <<< "$out"))"
    fi
  done
done

step "every value in values.yaml is documented in values.schema.json"
"$TOOLS/venv/bin/python" - "$CHART" <<'PY' || fail=1
import json, sys, yaml
chart = sys.argv[1]
values = yaml.safe_load(open(f"{chart}/values.yaml"))
schema = json.load(open(f"{chart}/values.schema.json"))
missing = []
def walk(v, s, path):
    if not s.get("description"):
        missing.append(f"{path or '(root)'}: no description")
    if isinstance(v, dict) and "properties" in s:
        for k, sub in v.items():
            if k not in s["properties"]:
                missing.append(f"{path}.{k}: not in the schema")
            else:
                walk(sub, s["properties"][k], f"{path}.{k}" if path else k)
walk(values, schema, "")
for m in missing:
    print(f"FAIL: {m}")
if missing:
    sys.exit(1)
print("ok: every key of values.yaml has a schema entry with a description")
PY

step "helm template"
helm template neptune "$CHART" --namespace neptune-system --include-crds > "$OUT/default.yaml"
helm template neptune "$CHART" --namespace neptune-system --include-crds \
  -f "$CHART/ci/all-features-values.yaml" > "$OUT/all-features.yaml"
grep -q 'grafana_dashboard: "1"' "$OUT/default.yaml" || { echo "FAIL: no dashboard ConfigMap"; fail=1; }
for kind in PodMonitor ServiceMonitor Role RoleBinding; do
  grep -q "^kind: $kind\$" "$OUT/all-features.yaml" || { echo "FAIL: all-features render lacks $kind"; fail=1; }
done
for kind in PodMonitor ServiceMonitor PrometheusRule; do
  if grep -q "^kind: $kind\$" "$OUT/default.yaml"; then echo "FAIL: default render has a $kind"; fail=1; fi
done
echo "ok: rendered $(grep -c '^kind:' "$OUT/default.yaml") objects (default), $(grep -c '^kind:' "$OUT/all-features.yaml") (all features)"
# A ServiceMonitor without the Service it selects would scrape nothing: not rendered.
helm template neptune "$CHART" --set metrics.serviceMonitor.enabled=true --set metrics.service.enabled=false \
  > "$OUT/no-service.yaml"
if grep -q '^kind: ServiceMonitor$' "$OUT/no-service.yaml"; then
  echo "FAIL: ServiceMonitor rendered without the metrics Service"; fail=1
else
  echo "ok: no ServiceMonitor without the metrics Service"
fi

step "monitors select what the chart and the operator create; the PrometheusRule is the rules file"
"$TOOLS/venv/bin/python" - "$OUT/all-features.yaml" "$CHART/rules/neptune.rules.yaml" operator/tests/golden/*.yaml <<'PY' || fail=1
import sys, yaml
rendered, rules_file, goldens = sys.argv[1], sys.argv[2], sys.argv[3:]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
by_kind = lambda k: [d for d in docs if d["kind"] == k]
errors = []
def matches(sel, labels):
    ok = all(labels.get(k) == v for k, v in sel.get("matchLabels", {}).items())
    for e in sel.get("matchExpressions", []):
        assert e["operator"] == "In", e
        ok = ok and labels.get(e["key"]) in e["values"]
    return ok
# ServiceMonitor -> the metrics Service, by labels and port name.
(sm,), (svc,) = by_kind("ServiceMonitor"), [s for s in by_kind("Service") if s["metadata"]["name"].endswith("-metrics")]
if not matches(sm["spec"]["selector"], svc["metadata"]["labels"]):
    errors.append("the ServiceMonitor's selector does not match the metrics Service")
if {e["port"] for e in sm["spec"]["endpoints"]} - {p["name"] for p in svc["spec"]["ports"]}:
    errors.append("the ServiceMonitor scrapes a port the Service does not name")
# PodMonitor -> the driver and executor pods the operator builds (its golden files).
(pm,) = by_kind("PodMonitor")
pods = [d for f in goldens for d in yaml.safe_load_all(open(f)) if d and d.get("kind") == "Pod"]
roles = set()
for pod in pods:
    labels = pod["metadata"]["labels"]
    if not matches(pm["spec"]["selector"], labels):
        errors.append(f"the PodMonitor does not select pod {pod['metadata']['name']}")
        continue
    roles.add(labels.get("neptune.dev/role"))
    ports = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    for ep in pm["spec"]["podMetricsEndpoints"]:
        if ep["port"] not in ports:
            errors.append(f"pod {pod['metadata']['name']} has no port named {ep['port']}")
    for l in pm["spec"]["podTargetLabels"]:
        if l not in labels:
            errors.append(f"pod {pod['metadata']['name']} lacks the podTargetLabel {l}")
if roles != {"driver", "executor"}:
    errors.append(f"the golden pods cover roles {roles}, expected driver and executor")
if any(ep.get("honorLabels") for ep in pm["spec"]["podMetricsEndpoints"]):
    errors.append("the PodMonitor honours labels; Neptune's series no longer need it (neptune_job)")
# PrometheusRule -> exactly the rule groups of the shared rules file.
(pr,) = by_kind("PrometheusRule")
if pr["spec"] != yaml.safe_load(open(rules_file)):
    errors.append("the PrometheusRule's spec differs from rules/neptune.rules.yaml")
for e in errors:
    print(f"FAIL: {e}")
if errors:
    sys.exit(1)
print(f"ok: ServiceMonitor -> metrics Service; PodMonitor -> {len(pods)} golden driver/executor pods; PrometheusRule == rules file")
PY

step "promtool check rules and promtool test rules"
command -v promtool >/dev/null 2>&1 || bash "$ROOT/scripts/install-test-tools.sh"
if promtool check rules "$CHART/rules/neptune.rules.yaml" && promtool test rules "$CHART/rules/neptune.rules.test.yaml"; then
  echo "ok: alerting rules check and pass their unit tests"
else
  echo "FAIL: promtool on $CHART/rules"; fail=1
fi

step "kubernetes-validate --strict for Kubernetes $OLDEST_K8S"
# Split multi-document files and drop objects of kinds the tool has no schema for (CRs).
"$TOOLS/venv/bin/python" - "$OUT" crds/streambatchapp.yaml operator/tests/golden/*.yaml examples/k8s/*.yaml "$OUT/default.yaml" "$OUT/all-features.yaml" <<'PY'
import os, sys, yaml
out, files = sys.argv[1], sys.argv[2:]
skip = {"PodMonitor", "ServiceMonitor", "PrometheusRule", "StreamBatchApp"}
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
