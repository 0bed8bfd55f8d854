"""MCP scenarios against `gathm mcp` with the official Python SDK as the client.

Usage: python scenarios.py GATHM_BIN SCENARIO [MODE]
MODE: "legacy" (initialize handshake, 2025-11-25) or "2026-07-28" (default: both
where it matters). The environment (GATHM_HOME, GATHM_TOOLS_PATH, GATHM_ROLE,
...) is passed to the server. Prints "PASS <scenario>" and exits 0, or raises.
With MCP_URL set (and MCP_TOKEN, a bearer token), the client talks streamable
HTTP to `gathm serve` at that URL instead of starting `gathm mcp`; the token's
role plays GATHM_ROLE's part. Run by tests/it/mcp.rs and tests/it/mcp_http.rs.
"""

from __future__ import annotations

import os
import sys
import time

from contextlib import asynccontextmanager

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

BIN = sys.argv[1]
SCENARIO = sys.argv[2]
MODES = [sys.argv[3]] if len(sys.argv) > 3 else ["legacy", "2026-07-28"]
EXPECTED_VERSION = {"legacy": "2025-11-25", "2026-07-28": "2026-07-28"}


URL = os.environ.get("MCP_URL")
HTTP = URL is not None


@asynccontextmanager
async def http_transport(url: str):
    headers = {"Authorization": f"Bearer {os.environ['MCP_TOKEN']}"} if os.environ.get("MCP_TOKEN") else {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


def client(mode: str, *extra: str, **kw) -> Client:
    if HTTP:
        assert not extra, "over HTTP the server is already running"
        return Client(http_transport(URL), mode=mode, **kw)
    params = StdioServerParameters(command=BIN, args=["mcp", *extra], env=dict(os.environ))
    return Client(params, mode=mode, **kw)


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False


async def list_role(mode: str) -> None:
    # GATHM_ROLE=user: "fa*" blocked, "primary" requires approval.
    async with client(mode) as c:
        assert c.protocol_version == EXPECTED_VERSION[mode], c.protocol_version
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert "ok" in tools and "primary" in tools, sorted(tools)
        assert "fail" not in tools, "blocked tool listed"
        ok = tools["ok"]
        assert ok.input_schema["properties"]["args"]["type"] == "array", ok.input_schema
        assert ok.output_schema is not None and "run_id" in ok.output_schema["properties"]
        assert ok.description.startswith("Prints its argv")
        assert ok.title == "Ok", ok.title
        assert ok.annotations is not None and ok.annotations.open_world_hint is False
        meta = tools["primary"].meta or {}
        assert meta.get("gathm/requiresApproval") is True, meta
        assert (ok.meta or {}).get("gathm/requiresApproval") is False


async def call_ok(mode: str) -> None:
    async with client(mode) as c:
        r = await c.call_tool("ok", {"args": ["a", "b c"]})
        assert not r.is_error, r
        assert text_of(r).strip() == '["a", "b c"]', text_of(r)
        env = r.structured_content
        assert env["status"] == "success" and env["exit_code"] == 0, env
        assert len(env["run_id"]) == 32  # a UUID v7 as 32 hex digits


async def call_fail(mode: str) -> None:
    async with client(mode) as c:
        r = await c.call_tool("fail", {"args": ["3"]})
        assert r.is_error, r
        env = r.structured_content
        assert env["status"] == "error" and env["exit_code"] == 3, env
        assert "exited 3" in text_of(r), text_of(r)
        r = await c.call_tool("nope-such-tool", {})
        assert r.is_error and r.structured_content["reason"] == "not_found", r
        r = await c.call_tool("ok", {"bogus": 1})
        assert r.is_error and "unknown argument" in text_of(r), text_of(r)


async def denied(mode: str) -> None:
    async with client(mode) as c:
        r = await c.call_tool("fail", {"args": ["0"]})
        assert r.is_error, r
        assert r.structured_content["reason"] == "denied", r.structured_content
        assert "blocked" in text_of(r), text_of(r)


async def approval(mode: str) -> None:
    async with client(mode) as c:
        r = await c.call_tool("primary", {})
        assert r.is_error, r
        assert r.structured_content["reason"] == "approval_required", r.structured_content
        how = "GATHM_MCP_APPROVE_TOOLS" if HTTP else "--approve-tools"
        assert how in text_of(r), text_of(r)
    if HTTP:
        return  # approved at start: the `approved` scenario
    async with client(mode, "--approve-tools", "prim*") as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert (tools["primary"].meta or {}).get("gathm/requiresApproval") is False
        r = await c.call_tool("primary", {})
        assert r.structured_content["reason"] != "approval_required", r.structured_content


async def approved(mode: str) -> None:
    # `gathm serve` started with GATHM_MCP_APPROVE_TOOLS=prim*.
    async with client(mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert (tools["primary"].meta or {}).get("gathm/requiresApproval") is False
        r = await c.call_tool("primary", {})
        assert r.structured_content["reason"] != "approval_required", r.structured_content


async def list_admin(mode: str) -> None:
    # An admin sees what the user role does not.
    async with client(mode) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        assert {"ok", "fail", "primary"} <= tools, sorted(tools)


async def elicit(mode: str) -> None:
    # A client that declares elicitation is asked (handshake sessions only);
    # on 2026-07-28 the call is refused as without it.
    import mcp_types as types

    asked: list[str] = []

    def answer(approve: bool):
        async def cb(context, params):
            asked.append(params.message)
            return types.ElicitResult(action="accept", content={"approve": approve})

        return cb

    async with client(mode, elicitation_callback=answer(True)) as c:
        r = await c.call_tool("primary", {})
        if mode == "legacy":
            assert asked and "primary" in asked[0], asked
            assert r.structured_content["reason"] != "approval_required", r.structured_content
        else:
            assert r.structured_content["reason"] == "approval_required", r.structured_content
    if mode == "legacy":
        async with client(mode, elicitation_callback=answer(False)) as c:
            r = await c.call_tool("primary", {})
            assert r.is_error and r.structured_content["reason"] == "approval_required", r


async def progress(mode: str) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        seen.append((p, message))

    async with client(mode) as c:
        r = await c.call_tool("lines", {"args": ["5", "0.05"]}, progress_callback=on_progress)
        assert not r.is_error, r
        # Notifications may trail the response by a moment.
        for _ in range(50):
            if len(seen) >= 5:
                break
            await anyio.sleep(0.05)
        messages = [m for _, m in seen]
        assert messages == [f"line {i}" for i in range(1, 6)], seen
        values = [p for p, _ in seen]
        assert values == sorted(values) and len(set(values)) == len(values), values


async def cancel(mode: str) -> None:
    # Relative to the working directory the server (and so the tool) shares.
    pidfile = "gc-old.pid" if mode == "legacy" else "gc-new.pid"
    async with client(mode) as c:
        async with anyio.create_task_group() as tg:
            async def call() -> None:
                await c.call_tool("grandchild", {"args": [pidfile]})

            tg.start_soon(call)
            deadline = time.monotonic() + 10
            while not (os.path.exists(pidfile) and open(pidfile).read().strip()):
                assert time.monotonic() < deadline, "the grandchild never started"
                await anyio.sleep(0.05)
            pid = int(open(pidfile).read().strip())
            assert alive(pid)
            tg.cancel_scope.cancel()  # sends notifications/cancelled
        deadline = time.monotonic() + 15
        while alive(pid):
            assert time.monotonic() < deadline, f"grandchild {pid} still alive after cancel"
            await anyio.sleep(0.1)
        # The session still works after a cancellation.
        r = await c.call_tool("ok", {"args": ["after"]})
        assert not r.is_error and "after" in text_of(r)


async def busy(mode: str) -> None:
    # `gathm serve` with GATHM_MAX_EXECUTIONS=1: while one call runs, another
    # is refused (a tool error naming the limit); the slot is freed after.
    pidfile = "busy-old.pid" if mode == "legacy" else "busy-new.pid"
    async with client(mode) as c:
        async with anyio.create_task_group() as tg:
            async def call() -> None:
                await c.call_tool("grandchild", {"args": [pidfile]})

            tg.start_soon(call)
            deadline = time.monotonic() + 10
            while not (os.path.exists(pidfile) and open(pidfile).read().strip()):
                assert time.monotonic() < deadline, "the grandchild never started"
                await anyio.sleep(0.05)
            r = await c.call_tool("ok", {"args": ["second"]})
            assert r.is_error and "GATHM_MAX_EXECUTIONS" in text_of(r), text_of(r)
            tg.cancel_scope.cancel()
        deadline = time.monotonic() + 15
        while True:
            r = await c.call_tool("ok", {"args": ["after"]})
            if not r.is_error:
                break
            assert time.monotonic() < deadline, text_of(r)
            await anyio.sleep(0.1)
        assert "after" in text_of(r)


async def list_changed(mode: str) -> None:
    tools_dir = os.environ["GATHM_TOOLS_PATH"]
    name = "fresh" + mode.replace("-", "")
    got = anyio.Event()

    async def handler(msg) -> None:
        method = getattr(getattr(msg, "root", msg), "method", None)
        if method == "notifications/tools/list_changed":
            got.set()

    async def add_tool() -> None:
        d = os.path.join(tools_dir, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tool.yaml"), "w") as f:
            f.write(
                f'name: {name}\nversion: "1.0.0"\ndescription: "Added while serving"\n'
                "category: utility\nrequires_internet: false\ncommand: [\"true\"]\n"
            )

    if mode == "legacy":
        async with client(mode, message_handler=handler) as c:
            before = {t.name for t in (await c.list_tools()).tools}
            assert name not in before
            await add_tool()
            with anyio.fail_after(10):
                await got.wait()
            after = {t.name for t in (await c.list_tools()).tools}
            assert name in after, sorted(after)
    else:
        async with client(mode) as c:
            before = {t.name for t in (await c.list_tools()).tools}
            assert name not in before
            async with c.listen(tools_list_changed=True) as sub:
                await add_tool()
                with anyio.fail_after(10):
                    async for _event in sub:
                        break
            after = {t.name for t in (await c.list_tools()).tools}
            assert name in after, sorted(after)


async def named_args(mode: str) -> None:
    # The `named` tool (tests/it/mcp.rs): arguments host (required), port
    # (integer); flags "-t, --timeout" (with an argument) and -v.
    async with client(mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        schema = tools["named"].input_schema
        assert schema["required"] == ["host"], schema
        assert schema["properties"]["port"]["type"] == "integer", schema
        assert schema["properties"]["v"]["type"] == "boolean", schema
        assert "timeout" in schema["properties"] and "args" in schema["properties"], schema
        r = await c.call_tool("named", {"host": "a.com", "port": 443, "timeout": 5, "v": True, "args": ["x"]})
        assert not r.is_error, text_of(r)
        assert text_of(r).strip() == '["--timeout", "5", "-v", "a.com", "443", "x"]', text_of(r)
        r = await c.call_tool("named", {"port": 1})
        assert r.is_error and "missing required argument" in text_of(r), text_of(r)


SCENARIOS = {
    "busy": busy,
    "approved": approved,
    "list_admin": list_admin,
    "named_args": named_args,
    "list_role": list_role,
    "call_ok": call_ok,
    "call_fail": call_fail,
    "denied": denied,
    "approval": approval,
    "progress": progress,
    "elicit": elicit,
    "cancel": cancel,
    "list_changed": list_changed,
}


async def main() -> None:
    for mode in MODES:
        await SCENARIOS[SCENARIO](mode)
        print(f"PASS {SCENARIO} [{mode}]", flush=True)


anyio.run(main)
