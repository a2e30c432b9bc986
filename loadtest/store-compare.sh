#!/usr/bin/env bash
# Per-replica Check throughput with the file store and with the PostgreSQL store, alternated
# so drift on a shared machine hits both: one server pinned to core 0, the load tester to
# core 1, the clinic example, no audit (the trail is local in both cases).
# Usage: bash loadtest/store-compare.sh postgres://USER@HOST:PORT/DB [ROUNDS]
set -euo pipefail
export TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-1}
cd "$(dirname "$0")/.."
pg=${1:?usage: store-compare.sh postgres://USER@HOST:PORT/DB [ROUNDS]}
rounds=${2:-3}
cargo build --release --bins -q
data=$(mktemp -d)
trap 'rm -rf "$data" "$data".*' EXIT
results=$data.results
: >"$results"
for round in $(seq 1 "$rounds"); do
  for store in file postgres; do
    rm -rf "${data:?}"/*
    flags=()
    [ "$store" = postgres ] && flags=(--store "$pg")
    taskset -c 0 ./target/release/portcullis serve "${flags[@]}" --data-dir "$data" --listen 127.0.0.1:50592 \
      --bundle examples/clinic-portal.yaml --admin-token compare --no-audit >"$data.log" 2>&1 &
    server=$!
    sleep 1.5
    printf '%-8s round %s: ' "$store" "$round"
    taskset -c 1 ./target/release/portcullis-loadtest --target http://127.0.0.1:50592 \
      --bundle examples/clinic-portal.yaml --duration 8s --warmup 1s --concurrency 32 2>/dev/null |
      awk '/^check/ {print $3 " calls/s, p50 " $5 " ms, p99 " $7 " ms"}' | tee -a "$results"
    echo "$store $(tail -1 "$results" | cut -d' ' -f1)" >>"$results.sum"
    kill -TERM "$server"
    wait "$server" || true
  done
done
awk '{sum[$1] += $2; n[$1]++} END {
  f = sum["file"] / n["file"]; p = sum["postgres"] / n["postgres"]
  printf "mean: file %.0f calls/s, postgres %.0f calls/s, postgres/file %.3f\n", f, p, p / f }' "$results.sum"
