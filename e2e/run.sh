#!/usr/bin/env bash
# End-to-end suite on kind: the shared scenarios (`neptune-e2e`, the same list `make twin` runs
# on the cluster twin) against a real cluster. Needs Docker, kind and a Rust toolchain; helm and
# kubectl are installed into ./.tools by scripts/k8s-tools.sh.
# One command: e2e/run.sh   (KEEP_CLUSTER=1 keeps the cluster; KIND_NODE_IMAGE=kindest/node:v1.28.x
# picks the Kubernetes version; IMAGE=neptune:e2e names the image it builds; ONLY=a,b runs some
# scenarios or groups; PARALLEL=N groups at once; REPORT=path of the JSON report).
#
# Creates a kind cluster (one control plane, two workers: the node-loss scenario stops one),
# builds the image and loads it (also as <IMAGE>-b, for the image-edit scenario), builds
# neptune-e2e and runs it: helm install, fraud-detection to Running, micro-batches, scaling,
# killed executor and driver, spec edits, suspend/resume, an invalid spec, a lost node, TTL
# after finish, delete, the wordcount example. Failed scenarios leave their diagnostics next to
# the report (<report>.d/). Not part of the default test run (`make twin` is).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLUSTER="${CLUSTER:-neptune-e2e}"
IMAGE="${IMAGE:-neptune:e2e}"
REPORT="${REPORT:-target/kind-report.json}"
# Kind nodes share the host's CPUs and the apps request whole cores: one group at a time.
PARALLEL="${PARALLEL:-1}"

source "$ROOT/scripts/k8s-tools.sh"   # helm + kubectl into ./.tools
for tool in docker kind cargo; do
  command -v "$tool" >/dev/null || { echo "e2e: '$tool' is required (see docs/kubernetes.md)"; exit 2; }
done

log() { printf '\n[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
WORK="$(mktemp -d)"

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    log "diagnostics"
    kubectl --context "kind-$CLUSTER" get sba,pods,svc,nodes -A -o wide || true
  fi
  rm -rf "$WORK"
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
  exit $rc
}
trap cleanup EXIT

log "kind cluster $CLUSTER (1 control plane, 2 workers)"
cat > "$WORK/kind.yaml" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
  - role: worker
EOF
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config "$WORK/kind.yaml" \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 180s
fi

log "build and load $IMAGE and $IMAGE-b"
# --load: with docker/setup-buildx-action the builder is docker-container, whose images stay in
# its cache unless loaded into the engine, where `kind load docker-image` looks for them.
docker buildx build --load -t "$IMAGE" "$ROOT"
docker tag "$IMAGE" "$IMAGE-b"
kind load docker-image "$IMAGE" "$IMAGE-b" --name "$CLUSTER"

log "build the scenarios"
cargo build --release --locked -p neptune-e2e

log "run the scenarios"
target/release/neptune-e2e kind --context "kind-$CLUSTER" --image "$IMAGE" \
  --kubectl "$TOOLS/bin/kubectl" --helm "$TOOLS/bin/helm" \
  --report "$REPORT" --parallel "$PARALLEL" ${ONLY:+--only "$ONLY"}
log "e2e: all passed"
