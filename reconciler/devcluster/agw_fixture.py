"""A **fixture** that stands in for agentgateway's metrics (no gateway data plane runs on the local
cluster): a scrape target on 127.0.0.1 that exports the per-backend request counter and latency histogram
with agentgateway's metric names and labels (``agentgateway_requests_total`` and
``agentgateway_request_duration_seconds`` with ``gateway``, ``listener``, ``route``, ``route_rule``,
``backend``, ``protocol``, ``method``, ``status``, ``reason``; agent-protocols.md §agentgateway metrics).

It is not a gateway and proxies nothing. It simulates traffic: ``rate`` requests per second per route,
split across the route rule's ``backendRefs`` by the weights the real API server holds (read every tick),
each backend answering with the error ratio and latency it was given. Errors are spread evenly (an
accumulator, no randomness), so a ratio of 0.2 gives exactly one 503 in five requests.

Control (JSON over HTTP on the same port): ``PUT /routes/<namespace>/<name>`` with
``{"rate": 20, "rule": 0, "backends": {"clock-mcp-canary": {"errorRatio": 0.2, "latency": 0.05}}}``;
``DELETE /routes/<namespace>/<name>``; ``GET /routes``. Backend label values are ``<namespace>/<service>``.

Run: ``python -m reconciler.devcluster.agw_fixture --port PORT --kubeconfig FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field, ValidationError

from reconciler.cluster.client import KubeClient
from reconciler.errors import KubeError
from reconciler.model import ObjectRef

log = logging.getLogger("reconciler.agw_fixture")

#: agentgateway's histogram buckets, seconds (1 ms … 80 s).
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)
LABELS = ("gateway", "listener", "route", "route_rule", "backend", "protocol", "method", "status", "reason")
#: Seconds between simulated traffic ticks.
TICK = 0.25


class BackendBehaviour(BaseModel):
    """How one backend (a Service name) answers."""

    error_ratio: float = Field(default=0.0, ge=0, le=1, alias="errorRatio")
    latency: float = Field(default=0.02, ge=0, description="seconds")


class RouteTraffic(BaseModel):
    """Simulated traffic of one HTTPRoute."""

    rate: float = Field(default=20.0, gt=0, le=10_000, description="requests per second")
    rule: int = Field(default=0, ge=0)
    gateway: str = "agw"
    protocol: str = "mcp"
    backends: dict[str, BackendBehaviour] = Field(default_factory=dict)


@dataclass
class _State:
    routes: dict[tuple[str, str], RouteTraffic] = field(default_factory=dict)
    carry: dict[tuple[str, str, str], float] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], float] = field(default_factory=dict)


def _labels(ns: str, route: str, traffic: RouteTraffic, backend: str, status: str) -> dict[str, str]:
    return {
        "gateway": f"{ns}/{traffic.gateway}",
        "listener": "http",
        "route": f"{ns}/{route}",
        "route_rule": str(traffic.rule),
        "backend": f"{ns}/{backend}",
        "protocol": traffic.protocol,
        "method": "POST",
        "status": status,
        "reason": "" if status == "200" else "UpstreamFailure",
    }


class Fixture:
    """The fixture's metrics, simulated traffic and control API."""

    def __init__(self, client: KubeClient | None) -> None:
        self.client = client
        self.registry = CollectorRegistry()
        self.requests = Counter("agentgateway_requests", "Requests (fixture)", LABELS, registry=self.registry)
        self.duration = Histogram(
            "agentgateway_request_duration_seconds",
            "Request duration (fixture)",
            LABELS,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.state = _State()

    def weights(self, namespace: str, name: str, rule: int) -> dict[str, int]:
        """The route rule's backend weights as the API server holds them (Service name → weight)."""
        if self.client is None:
            return {}
        ref = ObjectRef(
            group="gateway.networking.k8s.io", version="v1", kind="HTTPRoute", namespace=namespace, name=name
        )
        try:
            route = self.client.get(ref)
        except KubeError:
            return {}
        rules = ((route or {}).get("spec") or {}).get("rules") or []
        if rule >= len(rules):
            return {}
        out: dict[str, int] = {}
        for b in rules[rule].get("backendRefs") or []:
            if (b.get("kind") or "Service") == "Service" and b.get("name"):
                out[str(b["name"])] = int(b.get("weight", 1))
        return out

    def tick(self, seconds: float) -> None:
        """Count ``seconds`` of traffic on every configured route."""
        for (ns, name), traffic in list(self.state.routes.items()):
            weights = self.weights(ns, name, traffic.rule)
            total = sum(weights.values())
            if total <= 0:
                continue
            for backend, weight in weights.items():
                key = (ns, name, backend)
                share = traffic.rate * seconds * weight / total + self.state.carry.get(key, 0.0)
                count = int(share)
                self.state.carry[key] = share - count
                if not count:
                    continue
                behaviour = traffic.backends.get(backend, BackendBehaviour())
                due = self.state.errors.get(key, 0.0) + count * behaviour.error_ratio
                errors = min(count, int(due))
                self.state.errors[key] = due - errors
                for status, n in (("200", count - errors), ("503", errors)):
                    if n:
                        labels = _labels(ns, name, traffic, backend, status)
                        self.requests.labels(**labels).inc(n)
                        for _ in range(min(n, 50)):  # the histogram's shape, not every request
                            self.duration.labels(**labels).observe(behaviour.latency)

    # ---------------------------------------------------------------- HTTP
    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def put_route(self, request: web.Request) -> web.Response:
        key = (request.match_info["namespace"], request.match_info["name"])
        try:
            traffic = RouteTraffic.model_validate(await request.json())
        except (ValidationError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        # the named backends' counters exported at 0 before their first request (Prometheus's advice), so
        # rate() sees their first requests: a series that appears with its first errors has no increase
        # until its second scrape, and an error-rate query reads 0 meanwhile
        for backend in traffic.backends:
            for status in ("200", "503"):
                self.requests.labels(**_labels(key[0], key[1], traffic, backend, status))
        self.state.routes[key] = traffic
        return web.json_response({"ok": True})

    async def delete_route(self, request: web.Request) -> web.Response:
        self.state.routes.pop((request.match_info["namespace"], request.match_info["name"]), None)
        return web.json_response({"ok": True})

    async def list_routes(self, _request: web.Request) -> web.Response:
        data: dict[str, Any] = {
            f"{ns}/{n}": t.model_dump(by_alias=True) for (ns, n), t in self.state.routes.items()
        }
        return web.json_response(data)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/routes", self.list_routes)
        app.router.add_put("/routes/{namespace}/{name}", self.put_route)
        app.router.add_delete("/routes/{namespace}/{name}", self.delete_route)
        return app


class RunningFixture:
    """The fixture as a process of its own on 127.0.0.1, registered as a target of a local Prometheus
    (``reconciler up`` and its demo). Started with the cluster's state marker under ``work``, so
    ``reconciler cluster down`` stops it even when ``up`` was killed before it could.

    Args:
        work: its directory (log file; e.g. ``<state>/standins/agw-fixture``).
        kubeconfig: the cluster whose HTTPRoutes' weights split the simulated traffic.
        targets: the Prometheus ``file_sd`` targets file to register it in.
    """

    def __init__(self, work: Path, kubeconfig: Path, targets: Path) -> None:
        self.work, self.kubeconfig, self.targets = work, kubeconfig, targets
        self.port = 0
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it, wait until it listens and register it as a scrape target.

        Raises:
            ComponentError: it did not start.
        """
        import sys

        from reconciler.devcluster.agents import wait_listening
        from reconciler.devcluster.process import free_port, start
        from reconciler.devcluster.prometheus import register_target

        self.port = free_port()
        log_file = self.work / "agw-fixture.log"
        cmd = [sys.executable, "-m", __name__, "--port", str(self.port), "--kubeconfig", str(self.kubeconfig)]
        self.work.mkdir(parents=True, exist_ok=True)
        self.pid = start("agw-fixture", cmd, log_file, self.work)
        try:
            wait_listening(self.port, 30, "agw-fixture", log_file, self.pid)
            register_target(self.targets, self.address, {"fixture": "agentgateway"})
        except BaseException:
            self.stop()
            raise

    def route(self, namespace: str, name: str, traffic: dict[str, Any]) -> None:
        """Set the simulated traffic of an HTTPRoute (``PUT /routes/<namespace>/<name>``)."""
        import json
        import urllib.request

        req = urllib.request.Request(
            f"{self.url}/routes/{namespace}/{name}", data=json.dumps(traffic).encode(), method="PUT"
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    def stop(self) -> None:
        """Unregister the target and stop the process (idempotent)."""
        from reconciler.devcluster.process import stop_group
        from reconciler.devcluster.prometheus import unregister_target

        if self.port:
            with contextlib.suppress(OSError):
                unregister_target(self.targets, self.address)
        if self.pid is not None:
            stop_group(self.pid, timeout=5)
            self.pid = None


async def serve(port: int, kubeconfig: Path | None) -> None:
    """Serve until cancelled (SIGTERM stops the process)."""
    fixture = Fixture(KubeClient(kubeconfig) if kubeconfig else None)
    runner = web.AppRunner(fixture.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        while True:
            await asyncio.sleep(TICK)
            await asyncio.to_thread(fixture.tick, TICK)
    finally:
        await runner.cleanup()


def main() -> None:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kubeconfig", type=Path, default=None)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.kubeconfig))


if __name__ == "__main__":
    main()
