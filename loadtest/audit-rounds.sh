#!/usr/bin/env bash
# What the default audit trail costs, in alternating rounds (issue #11): on core 0, one
# runtime thread each, a `--no-audit` server of the first binary and a default-audit
# server of every binary given; on core 1, h2load replaying one checked request body per
# RPC (written by portcullis-loadtest), 5 s after 1 s of warm-up, each server in turn,
# ROUNDS times, the order rotating by one server each round (use a multiple of the number
# of servers). Prints calls/s per round and calls per second of the server's own CPU time
# (user + system over the 6 s, warm-up included, so time the VM gives to others does not
# count), then each audited server's records written,
# refused and dropped (a refused record is a decision turned into a deny, which is cheap:
# a run with refusals overstates the trail's speed) and its `audit verify`.
# Usage: bash loadtest/audit-rounds.sh BODY RPC STREAMS_PER_CONNECTION ROUNDS BINARY...
#   e.g. bash loadtest/audit-rounds.sh resources CheckResources 8 5 ./target/release/portcullis
#   BODY: check, batch, resources or filter; 4 connections, so 8 streams = 32 in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
body=$1 rpc=$2 streams=$3 rounds=$4
shift 4
bins=("$@")
[ ${#bins[@]} -gt 0 ] || { echo "give at least one portcullis binary" >&2; exit 2; }
command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 1; }
cargo build --release -q -p portcullis-loadtest
data=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$data"' EXIT
serve() { # binary, dir, port, flags...
  local bin=$1 dir=$2 port=$3
  shift 3
  TOKIO_WORKER_THREADS=1 taskset -c 0 "$bin" serve --data-dir "$dir" --listen 127.0.0.1:"$port" \
    --bundle examples/clinic-portal.yaml --admin-token perf --http-listen off "$@" >"$dir.log" 2>&1 &
  pids+=($!)
}
ports=(50601)
serve "${bins[0]}" "$data/plain" 50601 --no-audit
for i in "${!bins[@]}"; do
  port=$((50611 + i))
  ports+=("$port")
  serve "${bins[$i]}" "$data/audited-$i" "$port" --metrics-listen 127.0.0.1:$((port + 100))
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do
    "${bins[0]}" check --server http://127.0.0.1:"$port" --action read --type education_leaflet >/dev/null 2>&1 && break
    sleep 0.1
  done
done
./target/release/portcullis-loadtest --target http://127.0.0.1:50601 --bundle examples/clinic-portal.yaml \
  --batch-size 100 --write-bodies "$data/bodies" >/dev/null 2>&1
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "round server calls/s calls/cpu-s"
n=${#ports[@]}
for round in $(seq 1 "$rounds"); do
  # Each round starts one server later: a server's place in the round changes what it
  # measures (seen at several points), so over rounds every server takes every place.
  for j in $(seq 0 $((n - 1))); do
    i=$(((j + round - 1) % n))
    port=${ports[$i]} pid=${pids[$i]}
    name=plain
    [ "$port" = 50601 ] || name="audited-${bins[$((port - 50611))]}"
    before=$(cpu "$pid")
    calls=$(taskset -c 1 h2load -c 4 -m "$streams" -D 5 --warm-up-time 1 -d "$data/bodies/$body.bin" \
      -H 'content-type: application/grpc' -H 'te: trailers' \
      "http://127.0.0.1:$port/portcullis.v1.AuthorizationService/$rpc" | awk '/^finished in/ {print $4}')
    used=$(( $(cpu "$pid") - before ))
    echo "$round $name $calls $(awk -v c="$calls" -v u="$used" -v t="$tick" 'BEGIN { printf "%.0f", (u > 0 ? c * 6 * t / u : 0) }')"
  done
done
for i in "${!bins[@]}"; do
  port=$((50611 + i))
  echo "${bins[$i]}: $(curl -s http://127.0.0.1:$((port + 100))/metrics | grep '^portcullis_audit_records_total' | tr '\n' ' ')"
done
kill "${pids[@]}"
wait 2>/dev/null || true
pids=()
for i in "${!bins[@]}"; do
  "${bins[0]}" audit verify "$data/audited-$i/audit"
done
