#!/usr/bin/env bash
# `gathm parallel` fan-out overhead (PRODUCT.md §6, §8): N = 1, 8 and 32
# no-op tools through `gathm parallel -j N` versus the same N no-op scripts
# exec'd one after another, fanned out with `xargs -P N`, and N sequential
# `gathm run` calls. Quote ratios: the machine is shared and noisy.
#   bash bench/parallel.sh        # needs hyperfine (apt-get install hyperfine)
#   RUNS=20 bash bench/parallel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
cargo build --release --quiet
G="$PWD/target/release/gathm"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export GATHM_HOME="$W/home" NO_COLOR=1
unset GATHM_TOOLS_PATH GATHM_POLICIES GATHM_ROLE
mkdir -p "$W/tools/noop"
printf '#!/bin/sh\nexit 0\n' > "$W/tools/noop/noop"
printf 'name: noop\nversion: "1.0.0"\ndescription: does nothing\ncategory: utility\nrequires_internet: false\ncache: false\n' > "$W/tools/noop/tool.yaml"
chmod +x "$W/tools/noop/noop"
NOOP="$W/tools/noop/noop"
RUNS=${RUNS:-50}

for n in 1 8 32; do
  argv="noop"; seq_cmd="$NOOP"; runs_cmd="$G --tools-dir $W/tools run noop"
  for _ in $(seq 2 "$n"); do
    argv="$argv ::: noop"
    seq_cmd="$seq_cmd; $NOOP"
    runs_cmd="$runs_cmd; $G --tools-dir $W/tools run noop"
  done
  echo "== N=$n"
  hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$W/parallel-$n.json" \
    -n "gathm parallel -j $n" "$G --tools-dir $W/tools parallel -j $n -- $argv" \
    -n "sequential exec" "sh -c '$seq_cmd'" \
    -n "xargs -P $n" "sh -c 'seq $n | xargs -P $n -n 1 $NOOP'" \
    -n "sequential gathm run" "sh -c '$runs_cmd'"
done

# Medians are steadier than means on a shared machine.
echo "== medians (ms)"
python3 - "$W" <<'PY'
import json, sys
print(f"{'N':>3}  {'gathm parallel':>15}  {'sequential exec':>15}  {'xargs -P N':>11}  {'N x gathm run':>13}  {'per item':>9}")
for n in (1, 8, 32):
    r = json.load(open(f"{sys.argv[1]}/parallel-{n}.json"))["results"]
    m = [x["median"] * 1000 for x in r]
    print(f"{n:>3}  {m[0]:>15.1f}  {m[1]:>15.1f}  {m[2]:>11.1f}  {m[3]:>13.1f}  {m[0] / n:>9.2f}")
PY
