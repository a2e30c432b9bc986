#!/usr/bin/env bash
# Overload: one server (core 0, one runtime thread, no audit) with a small
# max_concurrent_decisions, driven by the load tester (core 1) below and far above it.
# Prints the admitted calls' latency and how fast refusals came back.
# Usage: bash loadtest/overload.sh [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-32}
cargo build --release --bins -q
dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
printf 'max_concurrent_decisions = %s\n' "$limit" >"$dir/config.toml"
TOKIO_WORKER_THREADS=1 taskset -c 0 ./target/release/portcullis serve --data-dir "$dir/data" \
  --listen 127.0.0.1:50593 --bundle examples/clinic-portal.yaml --admin-token overload --no-audit \
  --config "$dir/config.toml" >"$dir/server.log" 2>&1 &
server=$!
sleep 1.5
for inflight in 16 "$limit" 128 512; do
  printf 'in flight %4s (limit %s): ' "$inflight" "$limit"
  taskset -c 1 ./target/release/portcullis-loadtest --target http://127.0.0.1:50593 \
    --bundle examples/clinic-portal.yaml --duration 8s --warmup 1s --concurrency "$inflight" \
    --connections 4 --max-error-rate 1 2>/dev/null | awk '/^check/ {sub(/^check +/, ""); print}'
done
