"""Which in-cluster MCP endpoints the health stage may probe, and how this machine reaches them.

Pods on the local cluster's kwok nodes run no processes, so an in-cluster URL such as
``http://docs-mcp.tools.svc.cluster.local:8080/mcp`` leads nowhere from the daemon. The setting
``RECONCILER_PROBE_ADDRESSES`` (a JSON object) maps in-cluster origins to loopback origins where the real
server runs, e.g. ``{"http://docs-mcp.tools.svc.cluster.local:8080": "http://127.0.0.1:41234"}``. Only
mapped URLs are probed; every other RemoteMCPServer keeps the verdict its conditions give (``Unverified``
when no controller wrote them). Targets must be loopback addresses: the setting is for the local cluster.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

from reconciler.model.health import HealthStatus
from reconciler.probe.mcp import Transport, probe_mcp
from reconciler.probe.models import ProbeLimits

#: The environment variable holding the mapping (a JSON object, in-cluster origin → loopback origin).
ENV_VAR = "RECONCILER_PROBE_ADDRESSES"

McpHealthProbe = Callable[[str, str], HealthStatus | None]
"""(``spec.url``, ``spec.protocol`` ``STREAMABLE_HTTP`` | ``SSE``) → the endpoint's health, or ``None``
when no probe is configured for that URL."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProbeAddresses(BaseModel):
    """In-cluster origin (``scheme://host:port``) → loopback origin (``http://127.0.0.1:port``)."""

    model_config = ConfigDict(frozen=True)

    addresses: dict[str, str]

    @field_validator("addresses")
    @classmethod
    def _check(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for source, target in value.items():
            host = urlsplit(target).hostname or ""
            if not _is_loopback(host):
                raise ValueError(f"{ENV_VAR}: target of {source!r} is not a loopback address: {target!r}")
            out[_origin(source)] = _origin(target)
        return out

    def resolve(self, url: str) -> str | None:
        """``url`` with its origin replaced by the mapped loopback origin (path and query kept), or
        ``None`` when its origin is not mapped or ``url`` is not an http(s) URL."""
        try:
            origin = _origin(url)
        except ValueError:
            return None
        target = self.addresses.get(origin)
        return None if target is None else target + url[len(origin) :]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProbeAddresses | None:
        """The mapping in ``$RECONCILER_PROBE_ADDRESSES``; ``None`` when it is unset or empty.

        Raises:
            ValueError: the value is not a JSON object of strings, or a target is not loopback.
        """
        raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{ENV_VAR} is not JSON: {e}") from None
        return cls(addresses=data)


def mcp_health_probe(
    addresses: ProbeAddresses, *, limits: ProbeLimits | None = None, ttl: float = 30.0
) -> McpHealthProbe:
    """A synchronous probe for :func:`reconciler.cluster.health.assess`: probes mapped URLs with
    :func:`probe_mcp` (in a worker thread, so it also works under a running event loop) and keeps each
    verdict for ``ttl`` seconds, so a health gate polling every second probes at most once per ``ttl``.
    The message names the loopback address probed; headers from ``headersFrom`` are not resolved."""
    limits = limits or ProbeLimits()
    cache: dict[tuple[str, str], tuple[float, HealthStatus]] = {}
    lock = threading.Lock()

    def probe(url: str, protocol: str) -> HealthStatus | None:
        target = addresses.resolve(url)
        if target is None:
            return None
        key = (target, protocol)
        with lock:
            hit = cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < ttl:
                return hit[1]
        transport: Transport = "sse" if protocol.upper() == "SSE" else "streamable-http"
        with ThreadPoolExecutor(max_workers=1) as pool:
            result = pool.submit(asyncio.run, probe_mcp(target, limits=limits, transport=transport)).result()
        status = HealthStatus(state=result.state, message=f"MCP probe of {target}: {result.reason}"[:300])
        with lock:
            cache[key] = (time.monotonic(), status)
        return status

    return probe


def mcp_probe_from_env() -> McpHealthProbe | None:
    """:func:`mcp_health_probe` for ``$RECONCILER_PROBE_ADDRESSES``; ``None`` when the setting is unset."""
    addresses = ProbeAddresses.from_env()
    return None if addresses is None else mcp_health_probe(addresses)
