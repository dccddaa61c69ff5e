#!/usr/bin/env bash
# Shuffle throughput on a local cluster: a RECORDS-record `reduce_by_key` (the `shuffle` app) on
# 2 executors × 2 cores; prints records/s, shuffle MB/s and each executor's peak RSS (VmHWM).
#
# Usage: scripts/shuffle-throughput.sh [RECORDS] [KEYS]   (defaults 10000000 10000000)
# Needs a release build (`cargo build --release -p neptune`). Linux (/proc) only.
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-10000000}
keys=${2:-$records}
bin=target/release/neptune
[ -x "$bin" ] || { echo "build it first: cargo build --release -p neptune" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin" local --app shuffle --executors 2 --cores 2 --quiet --report "$out/report.json" \
  --set "shuffle.records=$records" --set "shuffle.keys=$keys" 2> "$out/stderr" &
local_pid=$!

# Executors announce themselves on stderr; their VmHWM is the peak RSS so far, so the last value
# read before they exit is their peak.
declare -A peak
while kill -0 "$local_pid" 2>/dev/null; do
  while read -r id pid; do
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$hwm" ] && peak[$id]=$hwm
  done < <(sed -n 's/^neptune local: executor \(exec-[0-9]*\) pid \([0-9]*\)$/\1 \2/p' "$out/stderr")
  sleep 0.05
done
wait "$local_pid"

python3 - "$out/report.json" "$records" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
records = int(sys.argv[2])
job = next(j for j in r["jobs"] if j["name"] == "sum")
secs = r["duration_s"]
mb = job["shuffle_write_bytes"] / 1e6
print(f"records: {records}  keys: result {job['result']['keys']}  total {job['result']['total']}")
print(f"wall (jobs started -> committed): {secs:.2f} s")
print(f"throughput: {records / secs / 1e6:.2f} M records/s")
print(f"shuffle written: {mb:.1f} MB  ->  {mb / secs:.1f} MB/s")
EOF
for id in "${!peak[@]}"; do
  echo "peak RSS $id: $((peak[$id] / 1024)) MiB"
done
