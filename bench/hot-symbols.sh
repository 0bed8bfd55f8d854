#!/usr/bin/env bash
# Regenerate .cargo/hot-symbols.txt: the functions `gathm run` executes, which
# build.rs asks LLD to place together at the start of .text (fewer code page
# faults at every start; ARCHITECTURE.md, "Process start"). Run it after a
# toolchain or dependency update, then rebuild and re-run bench/run.sh.
#   bash bench/hot-symbols.sh        # needs perf (Debian: linux-perf)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
cargo build --release --quiet
G="$PWD/target/release/gathm"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export GATHM_HOME="$W/home" NO_COLOR=1
unset GATHM_TOOLS_PATH GATHM_POLICIES GATHM_ROLE
for t in noop cached fail; do mkdir -p "$W/tools/$t"; done
printf '#!/bin/sh\nexit 0\n' > "$W/tools/noop/noop"
printf 'name: noop\nversion: "1.0.0"\ndescription: does nothing\ncategory: utility\ncache: false\n' > "$W/tools/noop/tool.yaml"
printf '#!/bin/sh\necho cached output\n' > "$W/tools/cached/cached"
printf 'name: cached\nversion: "1.0.0"\ndescription: prints a line\ncategory: utility\ncache: true\n' > "$W/tools/cached/tool.yaml"
printf '#!/bin/sh\necho failing >&2\nexit 3\n' > "$W/tools/fail/fail"
printf 'name: fail\nversion: "1.0.0"\ndescription: fails\ncategory: utility\n' > "$W/tools/fail/tool.yaml"
chmod +x "$W"/tools/*/*[!l]
cat > "$W/loop.sh" <<LOOP
for i in \$(seq ${RUNS:-700}); do
  "$G" --tools-dir "$W/tools" run noop
  "$G" --tools-dir "$W/tools" run cached a "b c"
  "$G" --tools-dir "$W/tools" run --json noop
  CB_FAILURE_THRESHOLD=1000000 "$G" --tools-dir "$W/tools" run fail || true
done >/dev/null 2>&1
LOOP
perf record -q -o "$W/perf.data" -F 60000 -- bash "$W/loop.sh" 2>/dev/null
# Every function of the gathm binary sampled in a gathm process, most samples first.
perf script -i "$W/perf.data" --no-demangle -F comm,ip,sym,dso 2>/dev/null |
  awk -v bin="$G" '$1 == "gathm" && $NF == "(" bin ")" {print $3}' |
  sort | uniq -c | sort -rn | awk '{print $2}' > "$W/sampled.txt"
# Functions too short to be sampled still cost a page fault when they sit
# alone in a 64 KiB window: add the functions at the code addresses where a
# run page-faults (run this script twice after a big change to converge).
RUNS=1 bash "$W/loop.sh" # warm the page cache and the parse caches
perf record -q -o "$W/faults.data" -e page-faults -c 1 -d -- bash "$W/loop.sh" 2>/dev/null || true
nm -n --no-demangle "$G" | awk '$2 ~ /^[tTwW]$/ {print $1, $3}' > "$W/nm.txt"
perf script -i "$W/faults.data" -F comm,addr 2>/dev/null | awk '$1 == "gathm" {print $2}' |
  python3 -c '
import bisect, sys
syms = [(int(a, 16), n) for a, n in (l.split() for l in open(sys.argv[1]))]
addrs = [a for a, _ in syms]
seen = set()
for line in sys.stdin:
    a = int(line, 16)
    i = bisect.bisect_right(addrs, a) - 1
    if i >= 0 and a - addrs[i] < 1 << 20 and syms[i][1] not in seen:
        seen.add(syms[i][1])
        print(syms[i][1])
' "$W/nm.txt" > "$W/faulted.txt"
awk '!seen[$0]++' "$W/sampled.txt" "$W/faulted.txt" > .cargo/hot-symbols.txt
echo "$(wc -l < .cargo/hot-symbols.txt) symbols in .cargo/hot-symbols.txt"
