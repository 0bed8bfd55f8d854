#!/usr/bin/env bash
# Create target/py-venv with the real clients the integration tests drive:
# the Python `mcp` SDK (tests/it/mcp.rs, tests/mcp/*.py) and the `openai`
# package (tests/it/openai.rs, tests/openai/scenarios.py). Idempotent: an
# existing venv that can import both is kept. Called by .ci/run before
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/py-venv
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import mcp, openai' 2>/dev/null; then
    exit 0
fi
mkdir -p target
rm -rf "$venv"
if ! python3 -m venv "$venv"; then
    # Debian's python3 keeps venv (and ensurepip) in a separate package.
    rm -rf "$venv"
    apt-get update -qq && apt-get install -y -qq python3-venv
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check 'mcp>=2,<3' 'openai>=1,<3'
"$venv/bin/python" -c 'import mcp, openai; print("mcp SDK and openai ready in target/py-venv")'
