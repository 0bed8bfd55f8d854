#!/usr/bin/env bash
# Added latency of `gathm run` with the shared state on Redis (loopback)
# over the embedded default (issue 17: ≤ 0.5 ms, median, side by side).
# Both sides run through `env` (GATHM_STATE_URL empty = embedded), so the
# only difference is the backend: the breaker gate and record and the
# rate-limit admission as Lua scripts on a private redis-server (AOF,
# appendfsync always), started here on a free port and stopped at the end.
#   bash bench/fleet-run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
cargo build --release --quiet
G="$PWD/target/release/gathm"
W=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync "${FSYNC:-always}" \
  --dir "$W" --daemonize yes --pidfile "$W/redis.pid" >/dev/null
trap 'kill "$(cat "$W/redis.pid")" 2>/dev/null; rm -rf "$W"' EXIT
URL="redis://127.0.0.1:$PORT/0"
export GATHM_HOME="$W/home" NO_COLOR=1
unset GATHM_TOOLS_PATH GATHM_POLICIES GATHM_ROLE GATHM_STATE_FALLBACK
mkdir -p "$W/tools/noop"
printf '#!/bin/sh\nexit 0\n' > "$W/tools/noop/noop"
printf 'name: noop\nversion: "1.0.0"\ndescription: does nothing\ncategory: utility\nrequires_internet: false\ncache: false\n' > "$W/tools/noop/tool.yaml"
chmod +x "$W/tools/noop/noop"
# The shipped policies limit the role (a rate-limit admission per run).
for _ in 1 2 3; do sleep 0.1; redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; done
env GATHM_STATE_URL="$URL" "$G" --tools-dir "$W/tools" run noop
rustc -O --edition 2021 bench/interleave.rs -o target/interleave
echo "   1: embedded state (files under GATHM_HOME)   2: Redis on loopback ($URL)"
# The role limit of the shipped policies would refuse after 130 calls a
# minute: an unlimited role keeps every run on the same path.
printf 'roles:\n  admin: {permissions: ["*"], rate_limit: 100000000}\nrate_limiting: {enabled: true, window_seconds: 1, default_limit: 100000000, burst_allowance: 0}\n' > "$W/policies.yaml"
export GATHM_POLICIES="$W/policies.yaml"
target/interleave "${ROUNDS:-20}" "${RUNS:-50}" \
  -- env GATHM_STATE_URL= "$G" --tools-dir "$W/tools" run noop \
  -- env GATHM_STATE_URL="$URL" "$G" --tools-dir "$W/tools" run noop
echo "keys in Redis after the runs: $(redis-cli -p "$PORT" dbsize)"
