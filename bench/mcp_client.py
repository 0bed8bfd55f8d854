"""Time `tools/call` of one tool over stdio against a warm `gathm mcp`.

A bare JSON-RPC client (no SDK, so the client's own cost stays small):
initialize (2025-11-25), then WARMUP + RUNS sequential calls, each timed
from writing the request to reading its response.
Usage: python3 bench/mcp_client.py GATHM TOOLS_DIR TOOL RUNS WARMUP
Prints one JSON object: median, mean, p90 and min in milliseconds.
"""

import json
import statistics
import subprocess
import sys
import time

gathm, tools_dir, tool, runs, warmup = sys.argv[1:6]
runs, warmup = int(runs), int(warmup)
p = subprocess.Popen(
    [gathm, "--tools-dir", tools_dir, "mcp"],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    bufsize=0,
)


def send(obj):
    p.stdin.write((json.dumps(obj) + "\n").encode())


def recv(want_id):
    while True:
        line = p.stdout.readline()
        if not line:
            raise SystemExit("server closed stdout")
        msg = json.loads(line)
        if msg.get("id") == want_id:
            return msg


send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "bench", "version": "0"}}})
recv(0)
send({"jsonrpc": "2.0", "method": "notifications/initialized"})
times = []
for i in range(1, warmup + runs + 1):
    t0 = time.perf_counter_ns()
    send({"jsonrpc": "2.0", "id": i, "method": "tools/call",
          "params": {"name": tool, "arguments": {}}})
    r = recv(i)
    dt = (time.perf_counter_ns() - t0) / 1e6
    if r.get("result", {}).get("isError"):
        raise SystemExit(f"call failed: {r}")
    if i > warmup:
        times.append(dt)
p.stdin.close()
p.wait(timeout=10)
times.sort()
print(json.dumps({
    "runs": runs,
    "median_ms": round(statistics.median(times), 3),
    "mean_ms": round(statistics.mean(times), 3),
    "p90_ms": round(times[int(len(times) * 0.9)], 3),
    "min_ms": round(times[0], 3),
}))
