"""The MCP probe against real servers: server-everything (TypeScript reference server, 2025-11-25, both
transports) and a server built with the official Python SDK (negotiates the stateless 2026-07-28)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from mcp import Client

from reconciler.devcluster.agents import ServerProcess
from reconciler.model import HealthState
from reconciler.probe import ProbeLimits, probe_mcp, schema_digest

#: Tools server-everything always lists, whatever the client's capabilities.
ALWAYS = {"echo", "get-sum", "get-env", "get-tiny-image", "get-annotated-message", "get-structured-content"}


def _listen_addresses(port: int) -> set[str]:
    """The local addresses (hex, as in /proc/net/tcp*) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            addr, hexport = cols[1].rsplit(":", 1)
            if int(hexport, 16) == port and cols[3] == "0A":  # LISTEN
                found.add(addr)
    return found


async def test_server_everything_streamable_http(everything_http: ServerProcess) -> None:
    r = await probe_mcp(everything_http.url, limits=ProbeLimits(timeout=10))
    assert r.state is HealthState.HEALTHY, r.reason
    assert (r.transport, r.era, r.protocol_version) == ("streamable-http", "handshake", "2025-11-25")
    assert r.server_name == "mcp-servers/everything"
    assert r.server_version
    assert "tools" in r.capabilities
    names = [t.name for t in r.tools]
    assert set(names) >= ALWAYS
    assert len(names) == len(set(names))
    echo = next(t for t in r.tools if t.name == "echo")
    assert echo.description and len(echo.schema_sha256) == 64
    assert 0 < r.latency < 10


async def test_server_everything_binds_loopback_only(everything_http: ServerProcess) -> None:
    # 0100007F is 127.0.0.1 in /proc/net/tcp's byte order; nothing on 0.0.0.0 or ::
    assert _listen_addresses(everything_http.port) == {"0100007F"}


async def test_probe_matches_the_sdk_client(everything_http: ServerProcess) -> None:
    """The official SDK client, on its own connection, lists the same tools with the same schemas."""
    r = await probe_mcp(everything_http.url)
    async with Client(everything_http.url, mode="legacy") as client:
        listing = await client.list_tools()
    assert {t.name: schema_digest(t.input_schema) for t in listing.tools} == {
        t.name: t.schema_sha256 for t in r.tools
    }


async def test_server_everything_legacy_sse(everything_sse: ServerProcess) -> None:
    r = await probe_mcp(everything_sse.url, limits=ProbeLimits(timeout=10))
    assert r.state is HealthState.HEALTHY, r.reason
    assert (r.transport, r.era) == ("sse", "handshake")
    assert r.server_name == "mcp-servers/everything"
    assert {t.name for t in r.tools} >= ALWAYS


async def test_sse_server_with_forced_streamable_transport_fails(everything_sse: ServerProcess) -> None:
    r = await probe_mcp(everything_sse.url, transport="streamable-http", limits=ProbeLimits(timeout=5))
    assert r.state is HealthState.FAILED
    assert r.reason.startswith("handshake failed: initialize: HTTP 404")


async def test_sdk_server_negotiates_the_stateless_revision(sdk_server: ServerProcess) -> None:
    r = await probe_mcp(sdk_server.url)
    assert r.state is HealthState.HEALTHY, r.reason
    assert (r.era, r.protocol_version) == ("stateless", "2026-07-28")
    assert (r.server_name, r.server_version) == ("sdk-probe-target", "9.9.9")
    assert sorted(t.name for t in r.tools) == ["add", "greet"]
    add = next(t for t in r.tools if t.name == "add")
    assert add.description == "Add two integers."


async def test_sdk_server_schema_digest_is_canonical(sdk_server: ServerProcess) -> None:
    r = await probe_mcp(sdk_server.url)
    async with Client(sdk_server.url) as client:
        listing = await client.list_tools()
    schema = next(t.input_schema for t in listing.tools if t.name == "add")
    reordered = json.loads(json.dumps(dict(reversed(list(schema.items())))))
    assert next(t.schema_sha256 for t in r.tools if t.name == "add") == schema_digest(reordered)


async def test_nothing_listening_fails_fast() -> None:
    from reconciler.devcluster.process import free_port

    url = f"http://127.0.0.1:{free_port()}/mcp"
    r = await asyncio.wait_for(probe_mcp(url, limits=ProbeLimits(timeout=5)), 6)
    assert r.state is HealthState.FAILED
    assert "cannot connect" in r.reason
    assert r.latency < 2
