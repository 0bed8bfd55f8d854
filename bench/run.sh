#!/usr/bin/env bash
# CLI benchmarks (PRODUCT.md §8): run overhead vs exec'ing the tool directly
# (and `just`) for both builds side by side (the ordinary `cargo build
# --release` and the release build of dist/build.sh, a static PIE), a cache
# hit as a whole process, `gathm list` over 100 and 1,000 manifests, and the
# bookkeeping microbenchmark. Ratios are what to quote: the machine is shared
# and noisy.
#   bash bench/run.sh            # needs hyperfine (apt-get install hyperfine)
#   BENCH_JUST=0 bash bench/run.sh   # skip building `just` for the comparison
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
cargo build --release --quiet
cargo build --release --quiet --example bookkeeping --example groupslot
OUT="$PWD/target/release"
GO="$OUT/gathm"                       # the ordinary build
G=$(bash dist/build.sh --quiet | tail -1)   # the release build (static PIE)
G="$PWD/$G"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# Time copies, as an installed binary is: the linker writes its output
# through a mapping, and a binary whose page cache came from there takes
# about a dozen more page faults per start than a copied one.
cp "$G" "$W/gathm-release" && G="$W/gathm-release"
cp "$GO" "$W/gathm" && GO="$W/gathm"
export GATHM_HOME="$W/home" NO_COLOR=1
unset GATHM_TOOLS_PATH GATHM_POLICIES GATHM_ROLE
mkdir -p "$W/tools/noop" "$W/tools/cached"
printf '#!/bin/sh\nexit 0\n' > "$W/tools/noop/noop"
printf 'name: noop\nversion: "1.0.0"\ndescription: does nothing\ncategory: utility\nrequires_internet: false\ncache: false\n' > "$W/tools/noop/tool.yaml"
printf '#!/bin/sh\necho cached output\n' > "$W/tools/cached/cached"
printf 'name: cached\nversion: "1.0.0"\ndescription: prints a line\ncategory: utility\nrequires_internet: false\ncache: true\n' > "$W/tools/cached/tool.yaml"
chmod +x "$W/tools/noop/noop" "$W/tools/cached/cached"
printf 'noop:\n\t@%s\n' "$W/tools/noop/noop" > "$W/justfile"
JUST=""
if command -v just >/dev/null; then JUST=just;
elif [ "${BENCH_JUST:-1}" = 1 ]; then
  root="$PWD/target/bench-tools"; [ -x "$root/bin/just" ] || cargo install --quiet --locked --root "$root" just >/dev/null 2>&1; [ -x "$root/bin/just" ] && JUST="$root/bin/just"
fi

echo "== run overhead (no-op tool, cache off)"
cmds=("$W/tools/noop/noop" "$G --tools-dir $W/tools run noop" "$GO --tools-dir $W/tools run noop")
[ -n "$JUST" ] && cmds+=("$JUST --justfile $W/justfile noop")
hyperfine -N --warmup 50 --runs 1000 --export-json "$W/run.json" "${cmds[@]}"
python3 - "$W/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["median"] * 1000
for x in r:
    m = x["median"] * 1000
    name = x['command'].split()[0]
    name = 'gathm (release: static PIE)' if name.endswith('/gathm-release') else 'gathm (ordinary build)' if name.endswith('/gathm') else name.rsplit('/', 1)[-1]
    print(f"median {m:.3f} ms  (overhead over the script {m - base:+.3f} ms)  {name}")
PY

echo "== run overhead, interleaved (robust to load drift: the figure to quote)"
echo "   1: the script   2: release build (static PIE)   3: ordinary build${JUST:+   4: just}"
rustc -O --edition 2021 bench/interleave.rs -o target/interleave
target/interleave 20 50 -- "$W/tools/noop/noop" -- "$G" --tools-dir "$W/tools" run noop \
  -- "$GO" --tools-dir "$W/tools" run noop ${JUST:+-- $JUST --justfile $W/justfile noop}

echo "== cache hit as a whole process"
"$G" --tools-dir "$W/tools" run cached >/dev/null
hyperfine -N --warmup 50 --runs 1000 "$G --tools-dir $W/tools run cached"

echo "== gathm list over generated manifests"
for n in 100 1000; do
  mkdir -p "$W/many$n"
  for i in $(seq 1 $n); do
    d="$W/many$n/tool$i"; mkdir -p "$d"
    printf 'name: tool%s\nversion: "1.0.0"\ndescription: "generated tool %s: does things"\ncategory: [utility, data]\ndependencies:\n  system: [sh]\ntags: [a, b, c]\nfallback_tool: null\n' "$i" "$i" > "$d/tool.yaml"
  done
done
hyperfine -N --warmup 5 --runs 100 "$G --tools-dir $W/many100 list" "$G --tools-dir $W/many1000 list"

echo "== bookkeeping (library, in-process)"
"$OUT/examples/bookkeeping" 20000

echo "== concurrency-group slot and schedule next-fire times (library, in-process)"
"$OUT/examples/groupslot" 20000
