#!/usr/bin/env bash
# Per sync execute of a no-op tool under load (wrk -t2 -c32, 4 s after a
# 2 s warm-up), from /proc of the server: user and system CPU, context
# switches (all threads), minor faults, and the number of threads at the end.
#   bash bench/serve-probe.sh                 # gathm serve (ordinary build)
#   BUILD=dist bash bench/serve-probe.sh      # the release build
#   bash bench/serve-probe.sh floor [async|blocking]   # examples/exec_floor
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release --quiet --bin gathm --example exec_floor
BIN=$PWD/target/release/gathm
[ "${BUILD:-release}" = dist ] && BIN=$PWD/$(bash dist/build.sh --quiet | tail -1)
. bench/lib.sh   # $WORK, PIDS, cleanup at exit
mkdir -p "$WORK/tools" "$WORK/home"
cp -r tests/fixtures/tools/noop "$WORK/tools/"
printf 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n' >"$WORK/post.lua"
port=$(free_port)
if [ "${1:-gathm}" = floor ]; then
  target/release/examples/exec_floor "$port" "$WORK/tools/noop/noop" "${2:-async}" >/dev/null &
  url=http://127.0.0.1:$port/
else
  GATHM_HOME=$WORK/home GATHM_TOOLS_PATH=$WORK/tools "$BIN" serve --port "$port" >/dev/null 2>&1 &
  url=http://127.0.0.1:$port/api/v1/tools/noop/execute
fi
P=$!; PIDS+=($P)
for _ in $(seq 50); do curl -sf -XPOST -d '{}' "$url" >/dev/null && break; sleep 0.1; done
wrk -t2 -c32 -d2s -s "$WORK/post.lua" "$url" >/dev/null
snap() {
  local cs=0 t
  for t in /proc/"$P"/task/*/status; do
    cs=$((cs + $(awk '/ctxt_switches/ {s += $2} END {print s}' "$t")))
  done
  echo "$(awk '{print $10, $14, $15}' /proc/"$P"/stat) $cs $(ls /proc/"$P"/task | wc -l)"
}
a=$(snap)
n=$(wrk -t2 -c32 -d4s -s "$WORK/post.lua" "$url" | awk '/requests in/ {print $1}')
b=$(snap)
echo "$a $b $n" | awk -v T="$(getconf CLK_TCK)" '{n = $11; printf "requests %d  user %.0f µs  system %.0f µs  context switches %.2f  faults %.2f  (per execute)  threads %d\n", n, ($7-$2)*1e6/T/n, ($8-$3)*1e6/T/n, ($9-$4)/n, ($6-$1)/n, $10}'
