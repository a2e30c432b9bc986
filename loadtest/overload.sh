#!/usr/bin/env bash
# Overload: one server (core 0, one runtime thread, default audit trail) with a small
# max_concurrent_decisions. On core 1, h2load (a C client cheap enough to out-send one
# server core) floods it with Check calls in open loop, while portcullis-loadtest probes
# at a low open-loop rate and reports what a caller sees: admitted calls' latency and how
# fast refusals come back.
#  1. capacity C: h2load closed loop with LIMIT calls in flight, calls/s;
#  2. flood at 0.5, 1, 1.5, 2 and 3 times C (h2load --rps), probe at 200 calls/s;
#  3. a flood of slow calls (min_version far ahead: each waits consistency_wait, holding
#     its permit), 256 in flight against the limit: the probe's calls are refused, fast.
# Needs h2load (Debian's nghttp2-client). Usage: bash loadtest/overload.sh [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-32}
command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 1; }
cargo build --release --bins -q
dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
port=50593
printf 'max_concurrent_decisions = %s\nmetrics_listen = "127.0.0.1:50594"\n' "$limit" >"$dir/config.toml"
TOKIO_WORKER_THREADS=1 taskset -c 0 ./target/release/portcullis serve --data-dir "$dir/data" \
  --listen 127.0.0.1:$port --bundle examples/clinic-portal.yaml --admin-token overload \
  --config "$dir/config.toml" >"$dir/server.log" 2>&1 &
server=$!
sleep 1.5
# The flood's request: an anonymous Check of a public leaflet (R19), gRPC-framed protobuf.
# The slow one asks for snapshot version 2^30 (field 6, min_version), which never comes.
python3 - "$dir/check.bin" "$dir/slow.bin" <<'PY'
import struct, sys
def field(n, payload):  # length-delimited field, payloads under 128 bytes
    return bytes([n << 3 | 2, len(payload)]) + payload
def frame(message):
    return b"\0" + struct.pack(">I", len(message)) + message
resource = field(1, b"education_leaflet") + field(2, b"leaflet-1")
message = field(2, b"read") + field(3, resource)
open(sys.argv[1], "wb").write(frame(message))
open(sys.argv[2], "wb").write(frame(message + bytes([6 << 3, 0x80, 0x80, 0x80, 0x80, 0x04])))
PY
flood() { # body, clients, streams per client, extra h2load flags...
  local body=$1 clients=$2 streams=$3; shift 3
  taskset -c 1 h2load -c "$clients" -m "$streams" -d "$dir/$body.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' "$@" \
    "http://127.0.0.1:$port/portcullis.v1.AuthorizationService/Check"
}
shed() { curl -s http://127.0.0.1:50594/metrics | awk '/^portcullis_shed_total/ {print $2}'; }
flood check 4 64 -D 8 --warm-up-time 1 >"$dir/capacity.txt"
capacity=$(awk '/^finished in/ {gsub(/,/, ""); print int($4)}' "$dir/capacity.txt")
echo "capacity: $capacity calls/s (h2load, closed loop, 4 x 64 in flight)"
echo "columns: flood, flood calls/s, shed, probe calls, probe admitted p50 p90 p99 p99.9 max (ms), errors"
under_flood() { # label, flood arguments...
  local label=$1; shift
  local before; before=$(shed)
  flood "$@" -D 10 >"$dir/flood.txt" &
  local flooding=$!
  sleep 0.5
  local probe; probe=$(TOKIO_WORKER_THREADS=1 taskset -c 1 ./target/release/portcullis-loadtest \
    --target http://127.0.0.1:$port --bundle examples/clinic-portal.yaml --duration 8s \
    --warmup 1s --connections 1 --concurrency 16 --rate 200 --max-error-rate 1 2>/dev/null |
    awk '/^check/ {sub(/^check +/, ""); print}')
  wait "$flooding"
  local sent; sent=$(awk '/^finished in/ {gsub(/,/, ""); print int($4)}' "$dir/flood.txt")
  printf '%-5s %7s/s %8s  %s\n' "$label" "$sent" "$(( $(shed) - before ))" "$probe"
}
for x in 0.5 1 1.5 2 3; do
  under_flood "${x}x" check 4 64 --rps "$(python3 -c "print(max(1, int($capacity * $x / 4)))")"
done
under_flood slow slow 4 64
