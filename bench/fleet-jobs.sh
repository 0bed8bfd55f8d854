#!/usr/bin/env bash
# Benchmark jobs across a fleet (issue 17; PRODUCT.md §8): two `gathm serve`
# instances (separate homes, the same tools) on one redis-server (AOF,
# `appendfsync always`), all on this machine with the client. JOBS no-op
# jobs are submitted over CONNS keep-alive connections spread over both
# instances, then waited for (bench/jobload.rs): total time, submission rate
# overall and of the first and last 1,000.
# Usage: bench/fleet-jobs.sh   (env: JOBS=10000 CONNS=32 MAXC=4, each
# instance's GATHM_MAX_CONCURRENCY; FSYNC=always)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-10000}
CONNS=${CONNS:-32}
MAXC=${MAXC:-4}
FSYNC=${FSYNC:-always}
cargo build --release --quiet --bin gathm
rustc -O --edition 2021 bench/jobload.rs -o target/jobload
BIN=$ROOT/target/release/gathm

. bench/lib.sh   # $WORK, PIDS, cleanup at exit
mkdir -p "$WORK/tools" "$WORK/redis"
cp -r tests/fixtures/tools/noop "$WORK/tools/"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly yes \
  --appendfsync "$FSYNC" --dir "$WORK/redis" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do
  redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
  sleep 0.05
done
echo "redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on port $PORT, appendfsync $FSYNC"

ADDRS=()
for i in 1 2; do
  mkdir -p "$WORK/h$i"
  GATHM_HOME=$WORK/h$i GATHM_TOOLS_PATH=$WORK/tools GATHM_MAX_QUEUE_DEPTH=$((JOBS + 100)) \
    GATHM_MAX_CONCURRENCY=$MAXC GATHM_LOG_LEVEL=INFO GATHM_STATE_URL="redis://127.0.0.1:$PORT/0" \
    "$BIN" serve --port 0 >"$WORK/out$i" 2>"$WORK/err$i" &
  PIDS+=($!)
  for _ in $(seq 400); do
    grep -q listening "$WORK/out$i" 2>/dev/null && break
    sleep 0.05
  done
  ADDRS+=("$(head -1 "$WORK/out$i" | sed 's|listening on http://||')")
done
echo "== $JOBS no-op jobs over HTTP ($CONNS connections over 2 instances, $MAXC running at once on each)"
"$ROOT/target/jobload" "${ADDRS[0]},${ADDRS[1]}" "$JOBS" "$CONNS" noop
for i in 1 2; do
  n=$(grep -c '"route":"/api/v1/jobs"' "$WORK/h$i/logs/gathm.log" 2>/dev/null || true)
  echo "instance $i: ${n:-0} submissions logged; stderr: $(head -c 300 "$WORK/err$i")"
done
echo "redis: $(redis-cli -p "$PORT" info persistence | grep -E 'aof_enabled|aof_last_write_status' | tr -d '\r' | tr '\n' ' ')"
