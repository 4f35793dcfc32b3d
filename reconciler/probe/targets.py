"""Which in-cluster MCP endpoints the health stage may probe, and how this machine reaches them.

Pods on the local cluster's kwok nodes run no processes, so an in-cluster URL such as
``http://docs-mcp.tools.svc.cluster.local:8080/mcp`` leads nowhere from the daemon. The setting
``RECONCILER_PROBE_ADDRESSES`` (a JSON object) maps in-cluster origins to loopback origins where the real
server runs, e.g. ``{"http://docs-mcp.tools.svc.cluster.local:8080": "http://127.0.0.1:41234"}``. Only
mapped URLs are probed; every other MCP server or agent keeps the verdict its conditions give
(``Unverified`` when no controller wrote them). Targets must be loopback addresses: the setting is for the
local cluster. A host written ``name.ns.svc`` matches an entry written ``name.ns.svc.cluster.local`` and
the other way round.
In-cluster (``deploy/``) no mapping is needed: ``RECONCILER_PROBE_DIRECT=true`` probes every URL as it
is (:mod:`reconciler.probe.service`).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from reconciler.errors import ConfigError

#: The environment variable holding the mapping (a JSON object, in-cluster origin → loopback origin).
ENV_VAR = "RECONCILER_PROBE_ADDRESSES"


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, with a Service host written short (``name.ns.svc``) in its full
    form (``name.ns.svc.cluster.local``), so one mapping entry covers both spellings."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    netloc = parts.netloc.lower()
    host = parts.hostname.lower()
    if host.endswith(".svc") and host.count(".") == 2:
        netloc = netloc.replace(host, host + ".cluster.local", 1)
    return f"{parts.scheme}://{netloc}"


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
        if target is None:
            return None
        rest = urlsplit(url)
        tail = rest.path + (f"?{rest.query}" if rest.query else "")
        return target + tail

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProbeAddresses | None:
        """The mapping in ``$RECONCILER_PROBE_ADDRESSES``; ``None`` when it is unset or empty.

        Raises:
            ConfigError: the value is not a JSON object of strings, or a target is not loopback.
        """
        raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
        if not raw:
            return None
        try:
            return cls(addresses=json.loads(raw))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{ENV_VAR} is not JSON: {e}") from None
        except ValidationError as e:
            first = e.errors()[0]
            raise ConfigError(f"{ENV_VAR}: {first['msg']}") from None
