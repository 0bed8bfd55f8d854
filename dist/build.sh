#!/usr/bin/env bash
# The release build of gathm for distribution and benchmarks: a static PIE
# (no dynamic loader, no shared libraries to map at start, ASLR kept), with
# the `dist` profile (fat LTO, one codegen unit). Linux only.
#
#   bash dist/build.sh            # -> target/<host triple>/dist/gathm
#
# Needs glibc's static archive (Debian: libc6-dev), installed when missing.
# `cargo build --release` is the ordinary build (a dynamically linked PIE in
# target/release/gathm); this script is the only place the flags live.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
  *-linux-gnu) ;;
  *) echo "dist/build.sh: static PIE builds are set up for *-linux-gnu hosts, not $host" >&2; exit 2 ;;
esac
if [ "$(cc -print-file-name=libc.a)" = libc.a ]; then
  apt-get update -qq && apt-get install -y -qq libc6-dev
fi
# Only the target's code gets the flags (build scripts and proc-macros are
# built for the host without them, because --target is given).
# getrandom's default Linux backend looks `getrandom` up with dlsym, which
# finds nothing in a static binary, and falls back to polling /dev/random and
# reading /dev/urandom (four system calls more per run): call glibc's directly.
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=pie --cfg getrandom_backend=\"linux_getrandom\""
cargo build --locked --profile dist --target "$host" "$@"
bin="target/$host/dist/gathm"
if ! file "$bin" 2>/dev/null | grep -q 'static-pie\|pie executable'; then
  command -v file >/dev/null && { echo "dist/build.sh: $bin is not a static PIE" >&2; file "$bin" >&2; exit 1; }
fi
echo "$bin"
