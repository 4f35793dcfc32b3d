"""A clustered NATS on loopback: N nats-server processes with JetStream, routed to each other.

Each node listens on 127.0.0.1 only (client, cluster route and monitoring ports, all free ports picked at
start and kept for restarts), keeps its JetStream store under ``<state_dir>/n<i>/jetstream``, and names
every node in its ``--routes``, as NATS's JetStream clustering guide describes. With three nodes,
streams and key-value buckets created with ``replicas=3`` survive the loss of any one node. Used by tests
(the webhook storm during a node failure) and by benchmarks; ``reconciler up`` keeps its single server.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.devcluster import process
from reconciler.devcluster.nats import nats_server_binary
from reconciler.devcluster.process import ComponentError

#: The cluster's name (every node's ``--cluster_name``).
CLUSTER_NAME = "reconciler-local"


@dataclass
class NatsNode:
    """One server of the cluster: its ports, its process (0 while stopped) and its directory."""

    index: int
    client_port: int
    route_port: int
    monitor_port: int
    directory: Path
    pid: int = 0

    @property
    def name(self) -> str:
        """The server name (``n<index>``)."""
        return f"n{self.index}"

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<client port>``."""
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def log(self) -> Path:
        """The node's output."""
        return self.directory / "nats-server.log"


@dataclass
class NatsCluster:
    """Start, fail and restart the nodes of a loopback NATS cluster.

    Args:
        state_dir: where each node keeps its store and log (created).
        nodes: how many servers (3 gives one node of fault tolerance to replicas=3 streams).
    """

    state_dir: Path
    nodes: int = 3
    members: list[NatsNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self.members:
            self.members = [
                NatsNode(
                    index=i,
                    client_port=process.free_port(),
                    route_port=process.free_port(),
                    monitor_port=process.free_port(),
                    directory=self.state_dir / f"n{i}",
                )
                for i in range(self.nodes)
            ]

    @property
    def urls(self) -> list[str]:
        """Every node's client URL."""
        return [m.url for m in self.members]

    @property
    def url(self) -> str:
        """All client URLs, comma-separated (nats-py and the project's ``--nats`` take this list and
        fail over between them)."""
        return ",".join(self.urls)

    def up(self, timeout: float = 60.0) -> None:
        """Start every node that is not running and wait until JetStream has a meta leader.

        Raises:
            ComponentError: a node did not start, or the cluster found no JetStream leader in ``timeout``
                seconds (names the node and its log).
        """
        for m in self.members:
            if not m.pid or not process.alive(m.pid):
                self.start_node(m.index)
        self.wait_ready(timeout)

    def start_node(self, index: int) -> None:
        """Start node ``index`` (with the store it had, so it catches up with the others).

        Raises:
            ComponentError: the executable is missing or exited at once.
        """
        m = self.members[index]
        (m.directory / "jetstream").mkdir(parents=True, exist_ok=True)
        routes = ",".join(f"nats-route://127.0.0.1:{o.route_port}" for o in self.members if o is not m)
        cmd = [
            str(nats_server_binary()),
            "--addr",
            "127.0.0.1",
            "--port",
            str(m.client_port),
            "--http_port",
            str(m.monitor_port),
            "--jetstream",
            "--store_dir",
            str(m.directory / "jetstream"),
            "--server_name",
            m.name,
            "--cluster_name",
            CLUSTER_NAME,
            "--cluster",
            f"nats://127.0.0.1:{m.route_port}",
            "--cluster_advertise",
            f"127.0.0.1:{m.route_port}",
            "--client_advertise",
            f"127.0.0.1:{m.client_port}",
            "--routes",
            routes,
        ]
        m.pid = process.start(f"nats-{m.name}", cmd, m.log, m.directory)

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash: no clean shutdown, no leadership hand-off)."""
        m = self.members[index]
        if m.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(m.pid, signal.SIGKILL)
            for _ in range(50):
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(m.pid, os.WNOHANG)
                if not process.alive(m.pid):
                    break
                time.sleep(0.1)
        m.pid = 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every running node answers ``/healthz?js-enabled-only=true`` and one reports a
        JetStream meta leader with all running peers current.

        Raises:
            ComponentError: not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        running = [m for m in self.members if m.pid]
        last = ""
        while time.monotonic() < deadline:
            try:
                for m in running:
                    _get(f"http://127.0.0.1:{m.monitor_port}/healthz?js-enabled-only=true")
                info = json.loads(_get(f"http://127.0.0.1:{running[0].monitor_port}/jsz"))
                meta = info.get("meta_cluster") or {}
                if meta.get("leader") and len(meta.get("replicas") or []) + 1 >= len(running):
                    return
                last = f"meta cluster {meta}"
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.2)
        node = running[0] if running else self.members[0]
        raise ComponentError(
            f"nats-{node.name}", node.log, f"no JetStream cluster within {timeout:g} s: {last}"
        )

    def down(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL); the stores stay in ``state_dir``."""
        for m in self.members:
            if m.pid:
                process.stop_group(m.pid, timeout=5.0)
                m.pid = 0


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2.0) as resp:
        return str(resp.read().decode())
