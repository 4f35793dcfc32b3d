"""`reconciler mcp serve` as a real process, driven by the MCP Inspector's CLI (npm
@modelcontextprotocol/inspector, pinned and installed by tools/mcp/install-inspector.sh): it lists the tools
(with its schema-portability check, --strict) and calls a read tool with a bearer token; without the
token it is refused. Also the same server over stdio, with the official SDK client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _mcp_support import OPS_TOKEN, Remote, make_repo

from reconciler.devcluster.agents import wait_listening
from reconciler.devcluster.process import free_port, start, stop_group

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inspector() -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "tools/mcp/install-inspector.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def served(remote: Remote, tmp_path: Path) -> Iterator[str]:
    """`reconciler mcp serve --repo R --http 127.0.0.1:PORT --tokens-file F` in its own process group."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"callers:\n- identity: ops\n  token: {OPS_TOKEN}\n")
    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "reconciler", "mcp", "serve", "--repo", str(remote.bare)]
    cmd += [
        "--http",
        f"127.0.0.1:{port}",
        "--tokens-file",
        str(tokens),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    pid = start("reconciler-mcp", cmd, log, cwd=ROOT)
    try:
        wait_listening(port, 30, "reconciler mcp serve", log, pid)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_group(pid)
    assert OPS_TOKEN not in log.read_text()  # never logged


def _inspect(
    inspector: str, url: str, tmp_path: Path, *args: str, token: str | None = OPS_TOKEN
) -> subprocess.CompletedProcess[str]:
    cmd = ["node", inspector, "--cli", url, "--transport", "http", *args]
    if token:
        cmd += ["--header", f"Authorization: Bearer {token}"]
    env = {**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "catalog.json"), "HOME": str(tmp_path)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_inspector_lists_and_calls_tools(inspector: str, served: str, tmp_path: Path) -> None:
    listed = _inspect(inspector, served, tmp_path, "--method", "tools/list", "--strict")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    tools = {t["name"]: t for t in json.loads(listed.stdout)["tools"]}
    assert {"listEnvironments", "getHistory", "proposePromotion", "requestSync"} <= set(tools)
    assert tools["getHistory"]["outputSchema"]["type"] == "object"
    called = _inspect(
        inspector,
        served,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "getHistory",
        "--tool-arg",
        "environment=staging",
    )
    assert called.returncode == 0, called.stdout + called.stderr
    answer = json.loads(called.stdout)
    assert not answer.get("isError") and answer["structuredContent"]["environment"] == "staging"
    assert answer["structuredContent"]["entries"][-1]["subject"] == "bootstrap"
    # without a token: HTTP 401 with WWW-Authenticate: Bearer, which the Inspector takes for "auth required"
    refused = _inspect(
        inspector, served, tmp_path, "--method", "tools/list", "--stored-auth-only", token=None
    )
    assert refused.returncode != 0 and "auth" in refused.stdout + refused.stderr
    assert "listEnvironments" not in refused.stdout


async def test_stdio_with_the_sdk_client(remote: Remote, tmp_path: Path) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "reconciler",
            "mcp",
            "serve",
            "--stdio",
            "--repo",
            str(remote.bare),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    async with Client(stdio_client(params)) as c:  # type: ignore[arg-type]
        names = {t.name for t in (await c.list_tools()).tools}
        assert "renderEnvironment" in names
        result = await c.call_tool("getHistory", {"environment": "dev", "limit": 1})
        assert not result.is_error and result.structured_content["environment"] == "dev"  # type: ignore[index]
