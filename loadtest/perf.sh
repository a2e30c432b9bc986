#!/usr/bin/env bash
# The same-run server table of PERFORMANCE.md (issue #11). On core 0, one runtime thread
# each, loaded one at a time: portcullis-reference (a bare tonic grpc.health server with
# serve's runtime and HTTP/2 settings: the transport's ceiling), Portcullis without audit,
# and Portcullis with the default audit trail. On core 1: h2load (a neutral client,
# Debian's nghttp2-client) replaying one request per RPC that portcullis-loadtest drew
# from the clinic example and checked, then portcullis-loadtest itself drawing a fresh
# request per call. Every figure is also given as a ratio to the reference server's
# calls/s from the same client and the same number of calls in flight. Last, open-loop
# Check at a quarter of the saturated rate, 3 rounds without and with a push every second.
# Usage: bash loadtest/perf.sh [SECONDS] [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
out=${2:-/tmp/portcullis-perf}
command -v h2load >/dev/null || { echo "h2load not found: apt-get install nghttp2-client" >&2; exit 1; }
cargo build --release --bins -q
P=./target/release/portcullis
LT=./target/release/portcullis-loadtest
bundle=examples/clinic-portal.yaml
batch=100
rm -rf "$out" && mkdir -p "$out"
data=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$data"' EXIT
ref=50599 plain=50591 audited=50592

TOKIO_WORKER_THREADS=1 taskset -c 0 ./target/release/portcullis-reference 127.0.0.1:$ref 2>"$out/reference.log" &
pids+=($!)
for server in plain audited; do
  port=${!server}
  flags=(--admin-token perf --http-listen off)
  [ "$server" = plain ] && flags+=(--no-audit)
  TOKIO_WORKER_THREADS=1 taskset -c 0 "$P" serve --data-dir "$data/$server" --listen 127.0.0.1:$port \
    --bundle $bundle "${flags[@]}" >"$out/$server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    "$P" check --server http://127.0.0.1:$port --action read --type education_leaflet >/dev/null 2>&1 && break
    sleep 0.1
  done
done

results="$out/results.tsv" # client, in flight, run, calls/s, p99 ms (loadtest only)
h2() { # run, port, rpc path, body, in flight
  local conns=$(($5 < 4 ? 1 : 4))
  taskset -c 1 h2load -c $conns -m $(($5 / conns)) -D "$secs" --warm-up-time 1 -d "$out/bodies/$4" \
    -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$2/$3" >"$out/h2-$1-$5.txt"
  grep -q "^status codes: .* 0 4xx, 0 5xx" "$out/h2-$1-$5.txt" || { echo "h2load $1: errors" >&2; exit 1; }
  printf 'h2load\t%s\t%s\t%s\t\n' "$5" "$1" "$(awk '/^finished in/ {gsub(/,/, ""); print $4}' "$out/h2-$1-$5.txt")" >>"$results"
}
lt() { # run, port, mix, in flight, extra flags...
  local name=$1 port=$2 mix=$3 inflight=$4
  shift 4
  TOKIO_WORKER_THREADS=1 taskset -c 1 "$LT" --target http://127.0.0.1:$port --bundle $bundle --token perf \
    --connections $((inflight < 4 ? 1 : 4)) --concurrency "$inflight" --duration "${dur:-${secs}s}" --warmup 1s \
    --mix "$mix=1" --batch-size $batch --json "$out/lt-$name-$inflight.json" "$@" >/dev/null 2>&1
  python3 - "$out/lt-$name-$inflight.json" "$mix" "$name" "$inflight" >>"$results" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["total"][sys.argv[2]]
print(f"loadtest\t{sys.argv[4]}\t{sys.argv[3]}\t{s['calls_per_s']:.0f}\t{s['latency']['p99_ms']}")
PY
}
A=portcullis.v1.AuthorizationService
for inflight in 1 32 256; do
  echo "== $inflight in flight"
  # Fresh bodies each round: their session times are now, and the server owns the clock.
  "$LT" --target http://127.0.0.1:$plain --bundle $bundle --batch-size $batch --write-bodies "$out/bodies"
  h2 reference $ref grpc.health.v1.Health/Check health.bin "$inflight"
  h2 health $plain grpc.health.v1.Health/Check health.bin "$inflight"
  h2 check $plain $A/Check check.bin "$inflight"
  h2 batch $plain $A/BatchCheck batch.bin "$inflight"
  h2 resources $plain $A/CheckResources resources.bin "$inflight"
  h2 filter $plain $A/FilterRows filter.bin "$inflight"
  h2 check-audit $audited $A/Check check.bin "$inflight"
  h2 resources-audit $audited $A/CheckResources resources.bin "$inflight"
  lt reference $ref health "$inflight"
  lt health $plain health "$inflight"
  lt check $plain check "$inflight"
  lt batch $plain batch "$inflight"
  lt resources $plain resources "$inflight"
  lt filter $plain filter "$inflight"
  lt check-audit $audited check "$inflight"
  lt resources-audit $audited resources "$inflight"
done

# A quarter, not half: unpipelined, an open-loop call costs client and server about twice
# what it costs closed loop at 32 in flight, and near saturation p99 measures queueing.
echo "== pushes once a second, open loop at a quarter of the saturated Check rate, 3 rounds"
rate=$(awk -F'\t' '$1 == "loadtest" && $2 == 32 && $3 == "check" {print int($4 / 4)}' "$results")
for round in 1 2 3; do
  dur=10s lt open-no-push-$round $plain check 64 --rate "$rate"
  dur=10s lt open-push-1s-$round $plain check 64 --rate "$rate" --push-every 1s
done

python3 - "$results" "$batch" "$rate" <<'PY' | tee "$out/table.md"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
batch, rate = int(sys.argv[2]), sys.argv[3]
def get(client, inflight, run):
    for c, i, r, v, p99 in rows:
        if (c, i, r) == (client, str(inflight), run):
            return float(v), (float(p99) if p99 else None)
    return None, None
runs = [("reference", "bare tonic health", 1), ("health", "Portcullis health", 1), ("check", "Check", 1),
        ("batch", f"BatchCheck({batch})", batch), ("resources", f"CheckResources({batch})", batch),
        ("filter", "FilterRows", 1), ("check-audit", "Check, default audit", 1),
        ("resources-audit", f"CheckResources({batch}), default audit", batch)]
for client in ("h2load", "loadtest"):
    print(f"\n{client}: calls/s (x ratio to the bare tonic server's calls/s; decisions/s as a ratio for batches)\n")
    print("| run | 1 in flight | 32 in flight | 256 in flight |")
    print("|---|---:|---:|---:|")
    for run, name, per in runs:
        cells = []
        for inflight in (1, 32, 256):
            v, _ = get(client, inflight, run)
            ref, _ = get(client, inflight, "reference")
            if v is None or not ref:
                cells.append("—")
            else:
                cells.append(f"{v:,.0f} ({v * per / ref:.2f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |")
print("\nloadtest p99 at 32 in flight (ms):", ", ".join(
    f"{name} {get('loadtest', 32, run)[1]}" for run, name, _ in runs))
def p99s(run):
    return sorted(get("loadtest", 64, f"{run}-{r}")[1] for r in (1, 2, 3))
quiet, pushed = p99s("open-no-push"), p99s("open-push-1s")
print(f"open loop at {rate} calls/s, Check p99 (ms) of 3 rounds: {quiet} without pushes, {pushed} with a push"
      f" every second; medians {quiet[1]} and {pushed[1]} ({pushed[1] / quiet[1]:.2f}x)")
PY
echo "results in $out"
