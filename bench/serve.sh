#!/usr/bin/env bash
# Benchmark `gathm serve` against Debian's `webhook`, side by side on
# 127.0.0.1 in one session (PRODUCT.md §8):
#   1. GET /api/v1/ping            vs a webhook hook that runs nothing
#   2. sync execute of a no-op tool vs a webhook hook running the same script
#      and returning its output
#   3. 10,000 no-op jobs submitted and finished (rate of the first and last 1,000)
#   4. idle RSS of the server (from /proc)
#   5. RSS with STREAMS (1,000) open SSE streams on a running job
# The machine may be shared, so gathm and webhook runs alternate (ROUNDS
# times each) and the medians are compared.
# Usage: bench/serve.sh   (env: DURATION=10s CONNS=32 THREADS=2 JOBS=10000 ROUNDS=3 STREAMS=1000
#                         BUILD=release|dist: the ordinary build (default) or
#                         the release build of dist/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
JOBS=${JOBS:-10000}
ROUNDS=${ROUNDS:-3}
STREAMS=${STREAMS:-1000}
# Streams and their connections need descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need webhook; then
  apt-get install -y wrk webhook >/dev/null
fi
if [ "${BUILD:-release}" = dist ]; then
  BIN=$ROOT/$(bash dist/build.sh --quiet | tail -1)
else
  cargo build --release --quiet
  BIN=$ROOT/target/release/gathm
fi
rustc -O --edition 2021 bench/jobload.rs -o target/jobload
echo "gathm: $BIN"

. bench/lib.sh   # $WORK, PIDS, cleanup at exit

mkdir -p "$WORK/home" "$WORK/tools"
cp -r tests/fixtures/tools/noop tests/fixtures/tools/slow "$WORK/tools/"
NOOP=$WORK/tools/noop/noop

# gathm: no keys (loopback, admin role: no rate limit), a queue big enough for the job run.
start_gathm() {
  rm -f "$WORK/gathm.out"
  GATHM_HOME=$WORK/home GATHM_TOOLS_PATH=$WORK/tools GATHM_MAX_QUEUE_DEPTH=$((JOBS + 100)) \
    GATHM_MAX_STREAMS=$((STREAMS + 100)) GATHM_MAX_STREAMS_PER_CLIENT=$((STREAMS + 100)) \
    GATHM_LOG_LEVEL=${GATHM_LOG_LEVEL:-INFO} \
    "$BIN" serve --port 0 >"$WORK/gathm.out" 2>"$WORK/gathm.err" &
  GPID=$!
  PIDS+=("$GPID")
  for _ in $(seq 100); do
    [ -s "$WORK/gathm.out" ] && grep -q listening "$WORK/gathm.out" && break
    sleep 0.05
  done
  GADDR=$(head -1 "$WORK/gathm.out" | sed 's|listening on http://||')
}

cat >"$WORK/hooks.json" <<EOF
[
  {"id": "empty", "execute-command": "$NOOP",
   "trigger-rule": {"match": {"type": "value", "value": "never",
                              "parameter": {"source": "header", "name": "X-Never"}}}},
  {"id": "noop", "execute-command": "$NOOP", "include-command-output-in-response": true}
]
EOF
# A free port: a webhook left on a fixed one would answer with other hooks.
WPORT=$(free_port)
webhook -hooks "$WORK/hooks.json" -ip 127.0.0.1 -port "$WPORT" >"$WORK/webhook.log" 2>&1 &
PIDS+=($!)
start_gathm
sleep 0.5
RSS_IDLE=$(awk '/VmRSS/ {print $2}' /proc/"$GPID"/status)

cat >"$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
EOF

rate() { # wrk args... -> requests/s
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "$@" 2>&1 | tee -a "$WORK/wrk.log" | awk '/Requests\/sec/ {print $2}'
}
non2xx() { grep -c 'Non-2xx' "$WORK/wrk.log" || true; }

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
pair() { # label gathm-args... -- webhook-args...  (alternating rounds, medians)
  local label=$1; shift
  local gargs=() wargs=() side=g
  for a in "$@"; do
    if [ "$a" = "--" ]; then side=w; continue; fi
    if [ $side = g ]; then gargs+=("$a"); else wargs+=("$a"); fi
  done
  local gs=() ws=()
  for _ in $(seq "$ROUNDS"); do
    gs+=("$(rate "${gargs[@]}")")
    ws+=("$(rate "${wargs[@]}")")
  done
  G=$(median "${gs[@]}"); W=$(median "${ws[@]}")
  echo "$label: gathm ${gs[*]} -> median $G req/s; webhook ${ws[*]} -> median $W req/s; ratio $(echo "scale=2; $G / $W" | bc)"
}

echo "== 1. ping vs webhook empty hook (wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS alternating rounds)"
curl -sf "http://$GADDR/api/v1/ping" >/dev/null
curl -sf http://127.0.0.1:$WPORT/hooks/empty >/dev/null
pair ping "http://$GADDR/api/v1/ping" -- http://127.0.0.1:$WPORT/hooks/empty
G_PING=$G; W_EMPTY=$W

echo "== 2. sync execute of a no-op tool vs webhook running the same script"
curl -sf -XPOST -d '{}' "http://$GADDR/api/v1/tools/noop/execute" >/dev/null
curl -sf http://127.0.0.1:$WPORT/hooks/noop >/dev/null
pair execute -s "$WORK/post.lua" "http://$GADDR/api/v1/tools/noop/execute" -- -s "$WORK/post.lua" http://127.0.0.1:$WPORT/hooks/noop
G_EXEC=$G; W_EXEC=$W
echo "non-2xx lines in wrk output (expect 0): $(non2xx)"
# CPU per request, from /proc/PID/stat (utime+stime of the server itself, and
# of its reaped children): the rate above is bounded by the children (the same
# script for both servers), so this is what separates the two servers.
WPID=$(pgrep -f "webhook -hooks $WORK/hooks.json" | head -1)
cpu_per_req() { # pid url -> "server_us child_us" per request
  local a b n
  a=$(awk '{print $14+$15, $16+$17}' /proc/"$1"/stat)
  n=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "$2" | awk '/requests in/ {print $1}')
  b=$(awk '{print $14+$15, $16+$17}' /proc/"$1"/stat)
  local tck; tck=$(getconf CLK_TCK)
  echo "$a $b" | awk -v n="$n" -v t="$tck" '{printf "%.0f %.0f", ($3-$1)*1e6/t/n, ($4-$2)*1e6/t/n}'
}
# ROUNDS alternating runs, medians (one round moves by up to ±15% on a shared machine).
gs=(); gc=(); ws=(); wc=()
for _ in $(seq "$ROUNDS"); do
  read -r a b <<<"$(cpu_per_req "$GPID" "http://$GADDR/api/v1/tools/noop/execute")"; gs+=("$a"); gc+=("$b")
  read -r a b <<<"$(cpu_per_req "$WPID" http://127.0.0.1:$WPORT/hooks/noop)"; ws+=("$a"); wc+=("$b")
done
G_SELF=$(median "${gs[@]}"); G_CHILD=$(median "${gc[@]}"); W_SELF=$(median "${ws[@]}"); W_CHILD=$(median "${wc[@]}")
echo "CPU per execute request: gathm ${gs[*]} -> median ${G_SELF} µs (tool processes ${G_CHILD} µs); webhook ${ws[*]} -> median ${W_SELF} µs (tool processes ${W_CHILD} µs); ratio $(echo "scale=3; $G_SELF / $W_SELF" | bc)"
# The spread: each round's ratio (gathm's round over webhook's round after
# it, both under the same load of the machine). The figure to quote is the
# ratio of the medians above; this line shows how far one round can move it.
prs=(); for i in "${!gs[@]}"; do prs+=("$(echo "scale=3; ${gs[$i]} / ${ws[$i]}" | bc)"); done
echo "CPU ratio per round: ${prs[*]} -> median $(median "${prs[@]}")"

echo "== 3. $JOBS no-op jobs (fresh server and store)"
kill "$GPID"; wait "$GPID" 2>/dev/null || true
rm -rf "$WORK/home"; mkdir -p "$WORK/home"
start_gathm
JOBLINE=$("$ROOT/target/jobload" "$GADDR" "$JOBS" "$CONNS" noop)
echo "$JOBLINE"
RSS_AFTER=$(awk '/VmRSS/ {print $2}' /proc/"$GPID"/status)

echo "== 4. memory"
echo "idle RSS: ${RSS_IDLE} kB; after $JOBS jobs: ${RSS_AFTER} kB"

echo "== 5. $STREAMS open SSE streams on one running job (fresh server)"
kill "$GPID"; wait "$GPID" 2>/dev/null || true
rm -rf "$WORK/home"; mkdir -p "$WORK/home"
start_gathm
JOB=$(curl -sf -XPOST -H 'Content-Type: application/json' -d '{"tool": "slow", "args": ["120"]}' \
  "http://$GADDR/api/v1/jobs" | sed 's/.*"id":"\([^"]*\)".*/\1/')
STREAMLINE=$(python3 - "$GADDR" "$JOB" "$STREAMS" "$GPID" <<'EOF'
import socket, sys, time
addr, job, n, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
host, port = addr.rsplit(":", 1)
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
socks = []
for _ in range(n):
    s = socket.create_connection((host, int(port)))
    s.sendall(f"GET /api/v1/jobs/{job}/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
    socks.append(s)
ok = 0
for s in socks:
    s.settimeout(10)
    if s.recv(4096).startswith(b"HTTP/1.1 200"):
        ok += 1
time.sleep(1)
t = time.time()
probe = socket.create_connection((host, int(port)))
probe.sendall(f"GET /api/v1/ping HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n".encode())
probe.recv(4096)
ping_ms = (time.time() - t) * 1000
print(f"streams_open={ok} rss_kb={rss()} ping_ms={ping_ms:.1f}")
EOF
)
echo "$STREAMLINE"

echo
echo "SUMMARY ping_ratio=$(echo "scale=2; $G_PING / $W_EMPTY" | bc) exec_ratio=$(echo "scale=2; $G_EXEC / $W_EXEC" | bc) exec_cpu_us gathm=$G_SELF webhook=$W_SELF children=$G_CHILD/$W_CHILD idle_rss_kb=$RSS_IDLE $JOBLINE $STREAMLINE"
