#!/usr/bin/env bash
# Runs every client example against a real server on the patient-portal example: curl
# (AuthZEN), Python (grpcio, stubs generated from proto/ at run time, in a virtualenv), and
# the Rust records service (Check on a route, FilterRows on a list). CI runs this.
# Usage: bash examples/clients/run.sh   (from anywhere; builds what it needs)
set -euo pipefail
cd "$(dirname "$0")/../.."
# The same selection as CI's build step, so features unify the same way and nothing rebuilds.
cargo build -q --workspace --all-targets
work=$(mktemp -d)
# Ports below Linux's ephemeral range (32768-60999), so no outgoing connection holds one.
grpc=20561
http=21561
service=20562
./target/debug/portcullis serve --data-dir "$work/data" --listen 127.0.0.1:$grpc \
  --http-listen 127.0.0.1:$http --bundle examples/patient-portal.yaml --admin-token clients \
  >"$work/server.log" 2>&1 &
server=$!
./target/debug/portcullis-example-service --portcullis http://127.0.0.1:$grpc \
  --listen 127.0.0.1:$service >"$work/service.log" 2>&1 &
records=$!
trap 'kill "$server" "$records" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$http/.well-known/authzen-configuration" >/dev/null && break
  sleep 0.1
done

echo "== curl (AuthZEN)"
bash examples/clients/curl/evaluate.sh "http://127.0.0.1:$http"

echo "== Python (grpcio)"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q grpcio grpcio-tools
"$work/venv/bin/python" examples/clients/python/check.py --server 127.0.0.1:$grpc

echo "== Rust service (Check on a route, FilterRows on a list)"
get() { curl -sS -o "$work/body" -w '%{http_code}' -H "x-user: $1" "http://127.0.0.1:$service$2"; }
expect() { # what, got, wanted
  if [ "$2" = "$3" ]; then echo "ok    $1: $2"; else echo "WRONG $1: $2 (wanted $3): $(cat "$work/body")"; exit 1; fi
}
for _ in $(seq 1 50); do curl -s "http://127.0.0.1:$service/records" >/dev/null && break; sleep 0.1; done
expect "pat-ann GET /records/r-1" "$(get pat-ann /records/r-1)" 200
expect "pat-ann GET /records/r-2 (pat-bob's, R17)" "$(get pat-ann /records/r-2)" 404
expect "pat-ann GET /records" "$(get pat-ann /records)" 200
expect "pat-ann's list" "$(python3 -c "import json; print(' '.join(r['id'] for r in json.load(open('$work/body'))['records']))")" "r-1 r-3"
expect "dr-carol GET /records (her clinic)" "$(get dr-carol /records)" 200
expect "dr-carol's list" "$(python3 -c "import json; print(' '.join(r['id'] for r in json.load(open('$work/body'))['records']))")" "r-1 r-3 r-4"

echo "== Rust service on PostgreSQL (FilterRows' SQL run with its bind parameters)"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL is not installed: apt-get install -y postgresql" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg" && chmod 755 "$work"
as_pg "$pgbin/initdb -A trust -U portcullis --no-sync -D $work/pg/data" >/dev/null
as_pg "$pgbin/pg_ctl -D $work/pg/data -o '-p 20563 -k $work/pg -c listen_addresses=127.0.0.1' -w start" >/dev/null
stop_pg() { as_pg "$pgbin/pg_ctl -D $work/pg/data -m immediate stop" >/dev/null 2>&1 || true; }
trap 'kill "$server" "$records" "${sql_records:-}" 2>/dev/null || true; stop_pg; rm -rf "$work"' EXIT
sql_service=20564
./target/debug/portcullis-example-service --portcullis http://127.0.0.1:$grpc --listen 127.0.0.1:$sql_service \
  --database postgres://portcullis@127.0.0.1:20563/postgres 2>"$work/sql-service.log" &
sql_records=$!
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$sql_service/records" >/dev/null && break; sleep 0.1; done
kill -0 "$sql_records" 2>/dev/null || { echo "the records service on PostgreSQL did not start:"; cat "$work/sql-service.log"; exit 1; }
service=$sql_service
expect "pat-ann GET /records (SQL)" "$(get pat-ann /records)" 200
expect "pat-ann's rows from PostgreSQL" "$(python3 -c "import json; print(' '.join(r['id'] for r in json.load(open('$work/body'))['records']))")" "r-1 r-3"
expect "dr-carol's rows from PostgreSQL" "$(get dr-carol /records >/dev/null; python3 -c "import json; print(' '.join(r['id'] for r in json.load(open('$work/body'))['records']))")" "r-1 r-3 r-4"
echo "every client example answered as the policy says"
