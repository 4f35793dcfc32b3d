"""Agent-protocol servers started on loopback for the local cluster, the demo and the tests: the MCP
reference server (npm ``@modelcontextprotocol/server-everything``, one of the versions pinned in
``tools/mcp/install.sh``) in Streamable HTTP or legacy SSE mode, and a deterministic A2A agent served with
``a2a-sdk``.

Pods on kwok nodes run no processes, so these are the real endpoints that protocol probes reach locally.
Every server listens on 127.0.0.1 only; each runs in its own process group, stopped with
:meth:`ServerProcess.stop`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reconciler.devcluster.process import ComponentError, free_port, start, stop_group

REPO_ROOT = Path(__file__).resolve().parents[2]
MCP_INSTALL_SCRIPT = REPO_ROOT / "tools" / "mcp" / "install.sh"
LOOPBACK_SHIM = REPO_ROOT / "tools" / "mcp" / "loopback.cjs"
#: The default version of the reference server (the same as in ``tools/mcp/install.sh``).
SERVER_EVERYTHING_VERSION = "2026.8.31"
#: Every version ``tools/mcp/install.sh`` accepts: 2025.9.25 lists a tool ``add``, which 2026.8.31 renamed
#: ``get-sum`` (the demo's "a new server version drops a tool an Agent uses").
SERVER_EVERYTHING_VERSIONS = ("2025.9.25", "2026.8.31")


@dataclass
class ServerProcess:
    """A server started by this module: its URL, process group and log file."""

    name: str
    url: str
    port: int
    pid: int
    log: Path

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the server's process group, SIGKILL after ``timeout`` seconds."""
        stop_group(self.pid, timeout)


def wait_listening(
    port: int, timeout: float, name: str, log: Path | None = None, pid: int | None = None
) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``.

    Raises:
        ComponentError: not listening after ``timeout`` seconds, or the process ``pid`` is gone.
    """
    from reconciler.devcluster.process import alive

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if pid is not None and not alive(pid):
            raise ComponentError(name, log, "exited before listening")
        time.sleep(0.05)
    raise ComponentError(name, log, f"not listening on 127.0.0.1:{port} after {timeout:g} s")


def install_server_everything(version: str = SERVER_EVERYTHING_VERSION) -> Path:
    """Install a pinned version of the reference server into the tool cache (no-op when cached; ``npm``
    needed the first time) and return its entry point ``dist/index.js``.

    Raises:
        ComponentError: ``version`` is not pinned (:data:`SERVER_EVERYTHING_VERSIONS`), or the install
            script failed.
    """
    if version not in SERVER_EVERYTHING_VERSIONS:
        pinned = ", ".join(SERVER_EVERYTHING_VERSIONS)
        raise ComponentError("server-everything", None, f"version {version!r} is not pinned ({pinned})")
    proc = subprocess.run(
        ["bash", str(MCP_INSTALL_SCRIPT), version], capture_output=True, text=True, timeout=300, check=False
    )
    if proc.returncode != 0:
        raise ComponentError("server-everything", None, f"install failed: {proc.stderr.strip()[-800:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def start_server_everything(
    log_dir: Path,
    transport: Literal["streamableHttp", "sse"] = "streamableHttp",
    timeout: float = 20.0,
    *,
    version: str = SERVER_EVERYTHING_VERSION,
) -> ServerProcess:
    """Start the MCP reference server (the pinned ``version``) on a free loopback port.

    ``transport`` ``streamableHttp`` serves ``http://127.0.0.1:<port>/mcp`` (MCP 2025-11-25 and older,
    with sessions); ``sse`` serves the legacy HTTP+SSE transport at ``http://127.0.0.1:<port>/sse``. The
    port is passed in ``PORT`` (the server's own setting); a preloaded shim binds it to 127.0.0.1.

    Raises:
        ComponentError: node is missing, ``version`` is not pinned, the install failed, or the server did
            not listen within ``timeout`` seconds.
    """
    node = shutil.which("node")
    if node is None:
        raise ComponentError("server-everything", None, "node is not installed")
    entry = install_server_everything(version)
    port = free_port()
    log = log_dir / f"server-everything-{version}-{transport}-{port}.log"
    pid = start(
        "server-everything",
        [node, "--require", str(LOOPBACK_SHIM), str(entry), transport],
        log,
        cwd=log_dir,
        env={"PORT": str(port), "RECONCILER_LISTEN_HOST": "127.0.0.1"},
    )
    try:
        wait_listening(port, timeout, "server-everything", log, pid)
    except ComponentError:
        stop_group(pid)
        raise
    path = "/mcp" if transport == "streamableHttp" else "/sse"
    return ServerProcess(f"server-everything {version}", f"http://127.0.0.1:{port}{path}", port, pid, log)


def start_a2a_agent(log_dir: Path, timeout: float = 20.0) -> ServerProcess:
    """Start the deterministic A2A echo agent (:mod:`reconciler.devcluster.a2a_agent`) on a free loopback
    port; its card is at ``http://127.0.0.1:<port>/.well-known/agent-card.json``.

    Raises:
        ComponentError: the agent did not listen within ``timeout`` seconds.
    """
    port = free_port()
    log = log_dir / f"a2a-agent-{port}.log"
    cmd = [sys.executable, "-m", "reconciler.devcluster.a2a_agent", "--port", str(port)]
    pid = start("a2a-agent", cmd, log, cwd=log_dir)
    try:
        wait_listening(port, timeout, "a2a-agent", log, pid)
    except ComponentError:
        stop_group(pid)
        raise
    return ServerProcess("a2a-agent", f"http://127.0.0.1:{port}", port, pid, log)
