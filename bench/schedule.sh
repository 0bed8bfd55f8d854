#!/usr/bin/env bash
# Scheduler overhead (issue 16): `gathm serve` with 1,000 schedules loaded,
# none due during the measurement; its CPU time over IDLE seconds, from
# /proc/PID/stat (utime + stime), as a share of one core.
#   bash bench/schedule.sh            # GATHM_BIN=path to use another binary
#   IDLE=30 bash bench/schedule.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GATHM_BIN:-}
if [ -z "$BIN" ]; then cargo build --release --quiet; BIN=$PWD/target/release/gathm; fi
IDLE=${IDLE:-20}
W=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/tools/noop" "$W/home"
printf '#!/bin/sh\nexit 0\n' > "$W/tools/noop/noop"
printf 'name: noop\nversion: "1.0.0"\ndescription: does nothing\ncategory: utility\nrequires_internet: false\n' > "$W/tools/noop/tool.yaml"
chmod +x "$W/tools/noop/noop"
# 1,000 daily schedules at 03:00-ish UTC in minutes that are not now.
{
  echo "schedules:"
  for i in $(seq 1 1000); do
    printf '  - {name: s%d, cron: "%d %d * * *", tool: noop}\n' "$i" $((i % 60)) $(( (i / 60 + $(date -u +%H) + 2) % 24 ))
  done
} > "$W/gathm.yaml"
GATHM_HOME="$W/home" GATHM_TOOLS_PATH="$W/tools" GATHM_CONFIG="$W/gathm.yaml" \
  "$BIN" serve --port 0 > "$W/out" 2>&1 &
PID=$!
for _ in $(seq 1 100); do grep -q listening "$W/out" 2>/dev/null && break; sleep 0.1; done
sleep 3   # the first pass claims (looks at) every schedule once
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
c0=$(cpu); sleep "$IDLE"; c1=$(cpu)
python3 - "$c0" "$c1" "$tick" "$IDLE" <<'PY'
import sys
c0, c1, tick, idle = (float(x) for x in sys.argv[1:])
used = (c1 - c0) / tick
print(f"1,000 schedules, idle {idle:.0f} s: {used*1000:.0f} ms CPU = {100*used/idle:.2f} % of a core (target < 1 %)")
PY
