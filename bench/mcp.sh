#!/usr/bin/env bash
# MCP overhead (issue 18): `tools/call` of a no-op tool over stdio on a warm
# `gathm mcp` against `gathm run` of the same tool (a new process per run)
# and exec'ing the tool directly. Target: the MCP call costs at most 1 ms
# more than `gathm run`. Ratios are what to quote: the machine is shared.
#   bash bench/mcp.sh              # release build (cargo build --release)
#   BENCH_PROFILE=debug bash bench/mcp.sh
#   RUNS=1000 WARMUP=50 bash bench/mcp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
profile=${BENCH_PROFILE:-release}
if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
G="$PWD/target/$profile/gathm"
RUNS=${RUNS:-1000}
WARMUP=${WARMUP:-50}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export GATHM_HOME="$W/home" NO_COLOR=1
unset GATHM_TOOLS_PATH GATHM_POLICIES GATHM_ROLE
mkdir -p "$W/tools/noop"
printf '#!/bin/sh\nexit 0\n' > "$W/tools/noop/noop"
printf 'name: noop\nversion: "1.0.0"\ndescription: does nothing\ncategory: utility\nrequires_internet: false\ncache: false\n' > "$W/tools/noop/tool.yaml"
chmod +x "$W/tools/noop/noop"
echo "== gathm run noop and the bare script ($profile build, hyperfine -N)"
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$W/run.json" \
  "$W/tools/noop/noop" "$G --tools-dir $W/tools run noop"
echo "== tools/call noop over stdio, warm server"
python3 bench/mcp_client.py "$G" "$W/tools" noop "$RUNS" "$WARMUP" > "$W/mcp.json"
python3 - "$W/run.json" "$W/mcp.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["results"]
mcp = json.load(open(sys.argv[2]))
script, run = (r["median"] * 1e3 for r in runs)
call = mcp["median_ms"]
print(f"script (exec)          median {script:.3f} ms")
print(f"gathm run noop         median {run:.3f} ms")
print(f"MCP tools/call noop    median {call:.3f} ms (mean {mcp['mean_ms']}, p90 {mcp['p90_ms']}, min {mcp['min_ms']})")
print(f"MCP call - gathm run:  {call - run:+.3f} ms  (target <= +1 ms: {'met' if call - run <= 1 else 'missed'})")
print(f"MCP call - script:     {call - script:+.3f} ms  (what gathm adds to the tool on a warm server)")
PY
