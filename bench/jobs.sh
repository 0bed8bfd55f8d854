#!/usr/bin/env bash
# Benchmark the job store (issue 13; PRODUCT.md §8):
#   1. JOBS no-op jobs submitted over HTTP (CONNS keep-alive connections)
#      and finished: total time, submission rate overall and of the first
#      and last 1,000 (bench/jobload.rs)
#   2. the store in process with STORED jobs: seeding rate, get and
#      list-page latency (examples/jobstore.rs)
#   3. the same store behind `gathm serve`: server-side time of
#      GET /api/v1/jobs/{id} and of a list page, from the access log's `ms`
# Usage: bench/jobs.sh   (env: JOBS=10000 CONNS=32 STORED=100000 MAXC=4, the
# server's GATHM_MAX_CONCURRENCY; PARTS="1 2 3")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-10000}
CONNS=${CONNS:-32}
STORED=${STORED:-100000}
MAXC=${MAXC:-4}
PARTS=${PARTS:-1 2 3}
cargo build --release --quiet --bin gathm --example jobstore
rustc -O --edition 2021 bench/jobload.rs -o target/jobload
BIN=$ROOT/target/release/gathm

WORK=$(mktemp -d)
GPID=
cleanup() {
  [ -n "$GPID" ] && kill "$GPID" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/tools"
cp -r tests/fixtures/tools/noop "$WORK/tools/"

start() { # GATHM_HOME
  rm -f "$WORK/out"
  GATHM_HOME=$1 GATHM_TOOLS_PATH=$WORK/tools GATHM_MAX_QUEUE_DEPTH=$((JOBS + 100)) \
    GATHM_MAX_CONCURRENCY=$MAXC GATHM_LOG_LEVEL=INFO "$BIN" serve --port 0 >"$WORK/out" 2>"$WORK/err" &
  GPID=$!
  for _ in $(seq 400); do
    grep -q listening "$WORK/out" 2>/dev/null && break
    sleep 0.05
  done
  ADDR=$(head -1 "$WORK/out" | sed 's|listening on http://||')
}
stop() {
  kill "$GPID"
  wait "$GPID" 2>/dev/null || true
  GPID=
}
quantiles() { # name < numbers
  sort -g | awk -v n="$1" '{v[NR]=$1} END {printf "%s: median %.3f ms, p99 %.3f ms (%d requests)\n", n, v[int((NR+1)/2)], v[int(NR*0.99)], NR}'
}

if [[ " $PARTS " == *" 1 "* ]]; then
  echo "== 1. $JOBS no-op jobs over HTTP ($CONNS connections, $MAXC running at once)"
  mkdir -p "$WORK/h1"
  start "$WORK/h1"
  "$ROOT/target/jobload" "$ADDR" "$JOBS" "$CONNS" noop
  stop
fi
[[ " $PARTS " == *" 2 "* ]] || exit 0

echo "== 2. the store in process, $STORED jobs"
mkdir -p "$WORK/h2"
"$ROOT/target/release/examples/jobstore" "$STORED" "$WORK/h2"

echo "== 3. $STORED jobs stored, server side (access log)"
start "$WORK/h2"
IDS=$(curl -s "http://$ADDR/api/v1/jobs?limit=500&status=awaiting_approval" | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4)
for id in $IDS; do curl -s -o /dev/null "http://$ADDR/api/v1/jobs/$id"; done
NEXT=
for _ in $(seq 200); do
  NEXT=$(curl -s "http://$ADDR/api/v1/jobs?limit=50${NEXT:+&after=$NEXT}" | grep -o '"next":"[0-9a-f]*"' | cut -d'"' -f4 || true)
done
for _ in $(seq 200); do curl -s -o /dev/null "http://$ADDR/api/v1/jobs?limit=50&tool=tool7"; done
sleep 1.5
LOG=$WORK/h2/logs/gathm.log
grep '"route":"/api/v1/jobs/{id}"' "$LOG" | grep -o '"ms":[0-9.e-]*' | cut -d: -f2 | quantiles "GET /api/v1/jobs/{id}"
grep '"route":"/api/v1/jobs"' "$LOG" | grep -o '"ms":[0-9.e-]*' | cut -d: -f2 | quantiles "GET /api/v1/jobs (limit 50: 200 pages deep, and by tool)"
stop
