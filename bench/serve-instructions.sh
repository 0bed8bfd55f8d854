#!/usr/bin/env bash
# Instructions the `gathm serve` process executes per sync execute of a
# no-op tool (valgrind's callgrind: deterministic, whatever the load), with
# keep-alive connections (wrk -c2), and the functions that cost the most.
# Usage: bench/serve-instructions.sh   (env: GATHM_BIN, SECONDS_RUN=5, TOP=40)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null && command -v wrk >/dev/null || apt-get install -y valgrind wrk >/dev/null
[ -n "${GATHM_BIN:-}" ] || cargo build --release --quiet
BIN=${GATHM_BIN:-$PWD/target/release/gathm}
W=$(mktemp -d)
trap 'kill "$VP" 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/home" "$W/tools"
cp -r tests/fixtures/tools/noop "$W/tools/"
printf 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n' >"$W/post.lua"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
GATHM_HOME=$W/home GATHM_TOOLS_PATH=$W/tools valgrind --tool=callgrind \
  --callgrind-out-file="$W/cg.out" "$BIN" serve --port "$PORT" >"$W/out" 2>"$W/err" &
VP=$!
for _ in $(seq 150); do grep -q listening "$W/out" 2>/dev/null && break; sleep 0.2; done
URL=http://127.0.0.1:$PORT/api/v1/tools/noop/execute
wrk -t1 -c2 -d2s -s "$W/post.lua" "$URL" >/dev/null          # warm up
callgrind_control -z "$VP" >/dev/null 2>&1
N=$(wrk -t1 -c2 -d"${SECONDS_RUN:-5}"s -s "$W/post.lua" "$URL" | awk '/requests in/ {print $1}')
callgrind_control -d "$VP" >/dev/null 2>&1
sleep 1
OUT=$(ls "$W"/cg.out.* | head -1)
callgrind_annotate --inclusive=yes "$OUT" 2>/dev/null | grep -E '^ *[0-9,]+ \(' \
  | awk -v n="$N" '{gsub(",","",$1); printf "%9d  %s\n", $1/n, substr($0, index($0,$3))}' \
  | head -"${TOP:-40}" | cut -c1-160
echo "requests: $N (instructions per request in the first column; PROGRAM TOTALS is the figure to quote)"
