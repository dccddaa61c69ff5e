#!/usr/bin/env bash
# End-to-end suite on kind (needs Docker, kind, and network access to pull base images).
# One command: e2e/run.sh   (KEEP_CLUSTER=1 keeps the cluster; KIND_NODE_IMAGE=kindest/node:v1.28.x
# picks the Kubernetes version; IMAGE=neptune:e2e names the image it builds).
#
# Creates a kind cluster, builds and loads the image, installs the chart, applies
# examples/k8s/fraud-detection.yaml, waits for phase Running with DriverReady and ExecutorsReady,
# scrapes the driver's metrics and sees stream micro-batches completing, scales executors up and
# down, deletes an executor pod and sees it replaced, deletes the app and sees every child gone,
# uninstalls. Not part of the default test run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLUSTER="${CLUSTER:-neptune-e2e}"
IMAGE="${IMAGE:-neptune:e2e}"
NS="${NS:-neptune-e2e}"
OP_NS="neptune-system"
APP="fraud-detection"
TIMEOUT="${TIMEOUT:-300}"

source "$ROOT/scripts/k8s-tools.sh"   # helm + kubectl into ./.tools
for tool in docker kind; do
  command -v "$tool" >/dev/null || { echo "e2e: '$tool' is required (see docs/kubernetes.md)"; exit 2; }
done

log() { printf '\n[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
k() { kubectl --context "kind-$CLUSTER" "$@"; }

# Polls `cmd` until it prints `want` (or times out).
wait_for() {
  local what="$1" want="$2"; shift 2
  local deadline=$((SECONDS + TIMEOUT)) got=""
  while [ $SECONDS -lt $deadline ]; do
    got="$("$@" 2>/dev/null || true)"
    [ "$got" = "$want" ] && { echo "ok: $what ($got)"; return 0; }
    sleep 3
  done
  echo "FAIL: $what: wanted '$want', last saw '$got'"; return 1
}

diagnose() {
  log "diagnostics"
  k get sba,pods,svc -A -o wide || true
  k describe sba -n "$NS" || true
  k get events -n "$NS" --sort-by=.lastTimestamp | tail -40 || true
  k logs -n "$OP_NS" deploy/neptune-operator --tail=200 || true
  k logs -n "$NS" "$APP-driver" --tail=100 || true
}

cleanup() {
  local rc=$?
  [ $rc -ne 0 ] && diagnose
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
  exit $rc
}
trap cleanup EXIT

log "kind cluster $CLUSTER"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
fi

log "build and load $IMAGE"
docker buildx build --load -t "$IMAGE" "$ROOT"   # --load: a buildx builder keeps images out of the engine otherwise
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "helm install"
helm --kube-context "kind-$CLUSTER" upgrade --install neptune-operator charts/neptune-operator \
  --namespace "$OP_NS" --create-namespace --wait --timeout 180s \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=IfNotPresent
k get crd streambatchapps.neptune.dev >/dev/null

log "apply examples/k8s/$APP.yaml"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f -
sed "s|image: neptune:dev|image: $IMAGE|" "examples/k8s/$APP.yaml" | k apply -n "$NS" -f -

log "wait for Running, DriverReady and ExecutorsReady"
wait_for "phase" Running k get sba "$APP" -n "$NS" -o 'jsonpath={.status.phase}'
k wait -n "$NS" "sba/$APP" --for=condition=DriverReady --timeout="${TIMEOUT}s"
k wait -n "$NS" "sba/$APP" --for=condition=ExecutorsReady --timeout="${TIMEOUT}s"
k get sba -n "$NS"

log "driver metrics: stream micro-batches complete"
runs() {
  k get --raw "/api/v1/namespaces/$NS/pods/$APP-driver:4040/proxy/metrics" \
    | awk '/^neptune_driver_job_runs_total\{/ && /kind="stream"/ { s += $NF } END { print s + 0 }'
}
first="$(runs)"; sleep 15; second="$(runs)"
echo "stream runs: $first -> $second"
awk -v a="$first" -v b="$second" 'BEGIN { exit !(b > a) }' || { echo "FAIL: no micro-batches completed"; exit 1; }

log "scale executors 2 -> 3 -> 1"
executors() { k get pods -n "$NS" -l "neptune.dev/app=$APP,neptune.dev/role=executor" --no-headers 2>/dev/null | grep -c Running || true; }
k scale -n "$NS" "sba/$APP" --replicas=3
wait_for "3 executors ready" 3 k get sba "$APP" -n "$NS" -o 'jsonpath={.status.executors.ready}'
k scale -n "$NS" "sba/$APP" --replicas=1
wait_for "1 executor running" 1 executors
wait_for "1 executor ready" 1 k get sba "$APP" -n "$NS" -o 'jsonpath={.status.executors.ready}'

log "delete an executor pod and see it replaced"
old_uid="$(k get pod -n "$NS" "$APP-executor-0" -o 'jsonpath={.metadata.uid}')"
k delete pod -n "$NS" "$APP-executor-0" --wait=false
new_uid() { k get pod -n "$NS" "$APP-executor-0" -o 'jsonpath={.metadata.uid}' | grep -v "^$old_uid\$" | sed 's/.*/replaced/'; }
wait_for "executor-0 recreated" replaced new_uid
k wait -n "$NS" pod/"$APP-executor-0" --for=condition=Ready --timeout="${TIMEOUT}s"
wait_for "ExecutorsReady again" True k get sba "$APP" -n "$NS" -o 'jsonpath={.status.conditions[?(@.type=="ExecutorsReady")].status}'

log "delete the app; every child goes"
k delete sba -n "$NS" "$APP" --wait=true
children() { k get pods,svc -n "$NS" -l "neptune.dev/app=$APP" --no-headers 2>/dev/null | wc -l | tr -d ' '; }
wait_for "no children left" 0 children

log "helm uninstall"
helm --kube-context "kind-$CLUSTER" uninstall neptune-operator --namespace "$OP_NS" --wait
log "e2e: all passed"
