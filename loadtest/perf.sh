#!/usr/bin/env bash
# Server-side figures for PERFORMANCE.md: one server pinned to core 0, the load tester
# pinned to core 1, the clinic example. Usage: bash loadtest/perf.sh [OUTDIR]
set -euo pipefail
# One core each: one runtime worker each, so the OS never time-slices two workers on one core.
export TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-2}
cd "$(dirname "$0")/.."
out=${1:-/tmp/portcullis-perf}
mkdir -p "$out"
cargo build --release --bins -q
P=./target/release/portcullis
LT=./target/release/portcullis-loadtest
bundle=examples/clinic-portal.yaml
port=50591
data=$(mktemp -d)

start() {
  taskset -c 0 "$P" serve --data-dir "$data" --listen 127.0.0.1:$port --bundle $bundle --admin-token perf "$@" >"$out/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    "$P" check --server http://127.0.0.1:$port --action read --type education_leaflet >/dev/null 2>&1 && return
    sleep 0.1
  done
}
stop() { kill -TERM "$server"; wait "$server" || true; }
load() { # name, extra flags...
  local name=$1; shift
  echo "== $name"
  taskset -c 1 "$LT" --target http://127.0.0.1:$port --bundle $bundle --token perf --connections 4 \
    --json "$out/$name.json" "$@" 2>/dev/null
}
# CPU seconds the server used (user + system), from /proc.
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$server/stat"; }

start --no-audit
for mix in health check batch; do
  before=$(cpu)
  load "saturation-$mix" --duration 10s --warmup 2s --concurrency 64 --mix $mix=1
  echo "server CPU: $(echo "$(cpu) - $before" | bc) s over 12 s"
done
check_rate=$(python3 -c "import json; print(json.load(open('$out/saturation-check.json'))['total']['check']['calls_per_s'])")
half=$(python3 -c "print(int($check_rate / 2))")
load "half-no-push" --duration 15s --warmup 2s --concurrency 64 --rate "$half" --mix check=1
load "half-push-1s" --duration 15s --warmup 2s --concurrency 64 --rate "$half" --mix check=1 --push-every 1s --plot "$out/half-push-1s.svg"
stop
rm -rf "$data"
echo "results in $out"
