"""Fixtures for the probe tests: real servers on 127.0.0.1, each started once per session — the MCP
reference server (npm @modelcontextprotocol/server-everything, installed by tools/mcp/install.sh into the
version-keyed tool cache) in Streamable HTTP and legacy SSE mode, a server built with the official mcp
Python SDK (speaks 2026-07-28), and the a2a-sdk echo agent; plus the hostile aiohttp fixtures."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hostile_servers import Hostile, serve_hostile

from reconciler.devcluster.agents import (
    ServerProcess,
    start_a2a_agent,
    start_server_everything,
    wait_listening,
)
from reconciler.devcluster.process import free_port, start, stop_group

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def probe_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the servers' logs."""
    return tmp_path_factory.mktemp("probe-servers")


@pytest.fixture(scope="session")
def everything_http(probe_logs: Path) -> Iterator[ServerProcess]:
    """server-everything in Streamable HTTP mode: ``http://127.0.0.1:<port>/mcp``."""
    server = start_server_everything(probe_logs, "streamableHttp")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def everything_sse(probe_logs: Path) -> Iterator[ServerProcess]:
    """server-everything in legacy HTTP+SSE mode: ``http://127.0.0.1:<port>/sse``."""
    server = start_server_everything(probe_logs, "sse")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sdk_server(probe_logs: Path) -> Iterator[ServerProcess]:
    """The mcp-SDK server (tests/probe/sdk_server.py): ``http://127.0.0.1:<port>/mcp``."""
    port = free_port()
    log = probe_logs / f"sdk-server-{port}.log"
    pid = start("sdk-server", [sys.executable, str(HERE / "sdk_server.py"), str(port)], log, cwd=probe_logs)
    try:
        wait_listening(port, 20, "sdk-server", log, pid)
        yield ServerProcess("sdk-server", f"http://127.0.0.1:{port}/mcp", port, pid, log)
    finally:
        stop_group(pid)


@pytest.fixture(scope="session")
def sdk_server_v2(probe_logs: Path) -> Iterator[ServerProcess]:
    """The mcp-SDK server's next version (``sdk_server.py PORT v2``: ``add`` needs ``precision``,
    ``greet`` gone, ``shout`` new)."""
    port = free_port()
    log = probe_logs / f"sdk-server-v2-{port}.log"
    cmd = [sys.executable, str(HERE / "sdk_server.py"), str(port), "v2"]
    pid = start("sdk-server-v2", cmd, log, cwd=probe_logs)
    try:
        wait_listening(port, 20, "sdk-server-v2", log, pid)
        yield ServerProcess("sdk-server-v2", f"http://127.0.0.1:{port}/mcp", port, pid, log)
    finally:
        stop_group(pid)


@pytest.fixture(scope="session")
def a2a_agent(probe_logs: Path) -> Iterator[ServerProcess]:
    """The a2a-sdk echo agent (skills ``echo`` and ``reverse``): ``http://127.0.0.1:<port>``."""
    server = start_a2a_agent(probe_logs)
    yield server
    server.stop()


@pytest.fixture
async def hostile() -> AsyncIterator[tuple[str, Hostile]]:
    """The hostile aiohttp fixtures (see hostile_servers.ROUTES): (base URL, recorded requests)."""
    async with serve_hostile() as served:
        yield served
