#!/usr/bin/env bash
# Server CPU per sync execute (from /proc/PID/stat, as bench/serve.sh), side
# by side in one session, alternating rounds, medians:
#   gathm serve                      (the product)
#   webhook                          (the peer of issue 12's target: <= 0.6x)
#   examples/exec_floor blocking     (bare server, run on the blocking pool: gathm's design)
#   examples/exec_floor async        (bare server, run awaited on the worker)
# The two exec_floor designs share all code but the wait: their difference
# is the cost of the hand-off; gathm minus `blocking` is its bookkeeping.
# Usage: bench/exec-floor.sh   (env: DURATION=5s CONNS=32 THREADS=2 ROUNDS=3 BUILD=release|dist)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
command -v wrk >/dev/null && command -v webhook >/dev/null || apt-get install -y wrk webhook >/dev/null
cargo build --release --quiet --bin gathm --example exec_floor
BIN=$PWD/target/release/gathm
# BUILD=dist: gathm's release build (dist/build.sh) instead of the ordinary one.
[ "${BUILD:-release}" = dist ] && BIN=$PWD/$(bash dist/build.sh --quiet | tail -1)
FLOOR=$PWD/target/release/examples/exec_floor
. bench/lib.sh   # $WORK, PIDS, cleanup at exit
mkdir -p "$WORK/home" "$WORK/tools"
cp -r tests/fixtures/tools/noop "$WORK/tools/"
NOOP=$WORK/tools/noop/noop
cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
LUA
cat >"$WORK/hooks.json" <<JSON
[{"id": "noop", "execute-command": "$NOOP", "include-command-output-in-response": true}]
JSON
GP=$(free_port); WP=$(free_port); AP=$(free_port); BP=$(free_port)
GATHM_HOME=$WORK/home GATHM_TOOLS_PATH=$WORK/tools "$BIN" serve --port "$GP" >/dev/null 2>&1 &
G=$!; PIDS+=($G)
webhook -hooks "$WORK/hooks.json" -ip 127.0.0.1 -port "$WP" >/dev/null 2>&1 &
W=$!; PIDS+=($W)
"$FLOOR" "$AP" "$NOOP" async >/dev/null &
A=$!; PIDS+=($A)
"$FLOOR" "$BP" "$NOOP" blocking >/dev/null &
B=$!; PIDS+=($B)
GURL=http://127.0.0.1:$GP/api/v1/tools/noop/execute
WURL=http://127.0.0.1:$WP/hooks/noop
AURL=http://127.0.0.1:$AP/
BURL=http://127.0.0.1:$BP/
for u in "$GURL" "$WURL" "$AURL" "$BURL"; do
  for _ in $(seq 50); do curl -sf -XPOST -d '{}' "$u" >/dev/null && break; sleep 0.1; done
done
cpu() { # pid url -> server µs per request
  local a b n
  a=$(awk '{print $14+$15}' /proc/"$1"/stat)
  n=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "$2" | awk '/requests in/ {print $1}')
  b=$(awk '{print $14+$15}' /proc/"$1"/stat)
  echo "$a $b $n $(getconf CLK_TCK)" | awk '{printf "%.0f", ($2-$1)*1e6/$4/$3}'
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
gs=(); ws=(); as=(); bs=()
for _ in $(seq "$ROUNDS"); do
  gs+=("$(cpu $G "$GURL")"); ws+=("$(cpu $W "$WURL")")
  as+=("$(cpu $A "$AURL")"); bs+=("$(cpu $B "$BURL")")
done
g=$(median "${gs[@]}"); w=$(median "${ws[@]}"); a=$(median "${as[@]}"); b=$(median "${bs[@]}")
echo "server CPU per execute (µs; rounds, median, ÷ webhook):"
echo "  gathm serve            ${gs[*]} -> $g  $(echo "scale=2; $g / $w" | bc)"
echo "  webhook                ${ws[*]} -> $w  1.00"
echo "  exec_floor blocking    ${bs[*]} -> $b  $(echo "scale=2; $b / $w" | bc)"
echo "  exec_floor async       ${as[*]} -> $a  $(echo "scale=2; $a / $w" | bc)"
