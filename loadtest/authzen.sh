#!/usr/bin/env bash
# The yardstick and AuthZEN, same run: a bare tonic health server (portcullis-reference,
# the transport's ceiling), Portcullis's health, gRPC Check and AuthZEN over HTTP/1.1
# keep-alive, every figure also as a ratio to the bare server. Same decision for Check and
# AuthZEN (Dr Ann reads a record of her clinic, R2). Both servers pinned to core 0 with one
# runtime thread each and loaded one at a time; h2load (a neutral client, Debian's
# nghttp2-client) on core 1.
# Usage: bash loadtest/authzen.sh [IN_FLIGHT] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
inflight=${1:-32}
secs=${2:-10}
command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 1; }
cargo build --release --bins -q
dir=$(mktemp -d)
trap 'kill "$server" "$reference" 2>/dev/null || true; rm -rf "$dir"' EXIT
port=50595
http=51595
ref=50599
TOKIO_WORKER_THREADS=1 taskset -c 0 ./target/release/portcullis-reference 127.0.0.1:$ref 2>"$dir/reference.log" &
reference=$!
TOKIO_WORKER_THREADS=1 taskset -c 0 ./target/release/portcullis serve --data-dir "$dir/data" \
  --listen 127.0.0.1:$port --http-listen 127.0.0.1:$http --bundle examples/clinic-portal.yaml \
  --admin-token authzen --no-audit >"$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$http/.well-known/authzen-configuration" >/dev/null && break
  sleep 0.1
done
# The same request both ways: gRPC-framed protobuf, and AuthZEN JSON.
python3 - "$dir/check.bin" "$dir/evaluation.json" <<'PY'
import json, struct, sys, time
now = int(time.time())
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
def text(n, s):
    return bytes([n << 3 | 2]) + varint(len(s)) + s
def number(n, v):
    return bytes([n << 3]) + varint(v)
resource = text(1, b"patient_record") + text(2, b"p-1") + text(3, b"clinic-north")
session = number(1, now - 600) + number(2, now - 60)
message = text(1, b"dr-ann") + text(2, b"read") + text(3, resource) + text(4, session)
open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", len(message)) + message)
json.dump({
    "subject": {"type": "user", "id": "dr-ann"},
    "action": {"name": "read"},
    "resource": {"type": "patient_record", "id": "p-1", "properties": {"tenant": "clinic-north"}},
    "context": {"authenticated_at": now - 600, "last_activity": now - 60},
}, open(sys.argv[2], "w"))
PY
answer=$(curl -s "http://127.0.0.1:$http/access/v1/evaluation" -H 'content-type: application/json' -d @"$dir/evaluation.json")
echo "evaluation answers: $answer"
echo "$answer" | grep -q '"decision":true' || { echo "the evaluation did not allow" >&2; exit 1; }
rate() { awk '/^finished in/ {gsub(/,/, ""); print $4}' "$1"; }
latency() { awk '/^time for request:/ {print "mean " $6 ", sd " $7 ", max " $5}' "$1"; }
printf '\0\0\0\0\0' >"$dir/health.bin" # an empty HealthCheckRequest, gRPC-framed
grpc_load() { # body, url, output
  taskset -c 1 h2load -c 4 -m $((inflight / 4)) -D "$secs" --warm-up-time 1 -d "$dir/$1" \
    -H 'content-type: application/grpc' -H 'te: trailers' "$2" >"$dir/$3"
}
run_grpc() {
  grpc_load health.bin "http://127.0.0.1:$ref/grpc.health.v1.Health/Check" reference.txt
  grpc_load health.bin "http://127.0.0.1:$port/grpc.health.v1.Health/Check" health.txt
  grpc_load check.bin "http://127.0.0.1:$port/portcullis.v1.AuthorizationService/Check" grpc.txt
}
run_http() {
  taskset -c 1 h2load --h1 -c "$inflight" -m 1 -D "$secs" --warm-up-time 1 -d "$dir/evaluation.json" \
    -H 'content-type: application/json' "http://127.0.0.1:$http/access/v1/evaluation" >"$dir/http.txt"
}
# Alternate twice so drift on a shared machine hits both alike.
for round in 1 2; do
  run_grpc
  run_http
  r=$(rate "$dir/reference.txt")
  echo "round $round, $inflight in flight (ratio to the bare tonic health server):"
  for f in reference health grpc http; do
    v=$(rate "$dir/$f.txt")
    case $f in
      reference) name="bare tonic health";; health) name="Portcullis health";;
      grpc) name="Portcullis Check";; http) name="AuthZEN evaluation";;
    esac
    printf '  %-20s %10s calls/s  %5s  (%s)\n' "$name" "$v" "$(python3 -c "print(round($v / $r, 3))")" "$(latency "$dir/$f.txt")"
  done
  printf '  AuthZEN / gRPC Check: %s\n' "$(python3 -c "print(round($(rate "$dir/http.txt") / $(rate "$dir/grpc.txt"), 3))")"
  grep -hE "^status codes" "$dir"/{reference,health,grpc,http}.txt | sed 's/^/  /'
done
