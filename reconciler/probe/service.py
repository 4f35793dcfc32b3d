"""Protocol probes of an environment's objects, as the health stage and the tool-contract gate use them.

Which objects are probed (agent-platform-formats.md §Agent tools, §5.1):

* MCP: kagent ``RemoteMCPServer`` (``spec.url``, ``spec.protocol``, ``spec.headersFrom``), kmcp
  ``MCPServer`` (``http://<name>.<ns>.svc.cluster.local:<spec.deployment.port>/mcp``) and core
  ``Service`` ports whose ``appProtocol`` marks MCP (``mcp``, ``agentgateway.dev/mcp``,
  ``agentgateway.dev/mcp-sse``, legacy ``kgateway.dev/mcp``/``kgateway.dev/mcp-sse``; path from the
  ``agentgateway.dev/mcp-path``/``kagent.dev/mcp-service-path`` annotations, default ``/mcp``);
* A2A: kagent ``Agent`` (the agent pod's port 8080 behind Service ``<name>``; skills expected from
  ``spec.declarative.a2aConfig.skills``) and ``Service`` ports with appProtocol ``agentgateway.dev/a2a``
  or ``kgateway.dev/a2a``.

Where a URL leads (:class:`ProbeService`): in-cluster (``direct``) every URL is probed as it is; on the
local cluster, whose kwok pods run no processes, only URLs that ``$RECONCILER_PROBE_ADDRESSES`` maps to a
loopback server (:mod:`reconciler.probe.targets`; inline JSON, or ``@file`` read again when it
changes). An object whose URL leads nowhere is not probed and keeps the verdict its conditions give.

Results are kept ``ttl`` seconds per (address, transport, headers), so a health gate polling every
second, or an idle daemon, probes each server at most once per window; :meth:`ProbeService.prefetch`
probes many targets concurrently. Header values (``headersFrom`` Secrets and ConfigMaps) are sent and
never logged, reported or kept in results.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from reconciler.model.health import HealthState, HealthStatus
from reconciler.probe.contract import ServerRef, ToolRequirement, check, requirements, tool_names_of
from reconciler.probe.mcp import Transport, probe_mcp
from reconciler.probe.models import A2AProbeResult, McpProbeResult, ProbeLimits, ToolInfo
from reconciler.probe.targets import AddressFile, ProbeAddresses, addresses_from_env

_KAGENT = "kagent.dev"
_MCP_APP_PROTOCOLS = {
    "mcp": "streamable-http",
    "agentgateway.dev/mcp": "streamable-http",
    "kgateway.dev/mcp": "streamable-http",
    "agentgateway.dev/mcp-sse": "sse",
    "kgateway.dev/mcp-sse": "sse",
}
_A2A_APP_PROTOCOLS = frozenset({"agentgateway.dev/a2a", "kgateway.dev/a2a"})
_PATH_ANNOTATIONS = ("agentgateway.dev/mcp-path", "kgateway.dev/mcp-path", "kagent.dev/mcp-service-path")
#: Port of a kagent agent's A2A server (the pod's port 8080 behind Service ``<agent name>``).
AGENT_A2A_PORT = 8080
#: The environment variable that turns on direct probes (in-cluster: every URL is probed as it is).
DIRECT_ENV_VAR = "RECONCILER_PROBE_DIRECT"

SecretReader = Callable[[str, str, str, str], str | None]
"""(``Secret`` | ``ConfigMap``, namespace, name, key) → the decoded value, or ``None`` when the object or
key does not exist. Raises nothing for a missing object."""

ObjectLookup = Callable[[ServerRef], Mapping[str, Any] | None]
"""Fetches the live object of an MCP server an Agent points at (``None``: it does not exist)."""

T = TypeVar("T")


class HeaderError(ValueError):
    """A ``headersFrom`` entry cannot be resolved; the message names the header and the object it reads,
    never a value."""


@dataclass(frozen=True)
class HeaderRef:
    """One request header of a RemoteMCPServer: a literal ``value`` or a key of a Secret/ConfigMap."""

    name: str
    value: str | None = None
    source_kind: str = ""
    source_name: str = ""
    key: str = ""


@dataclass(frozen=True)
class McpTarget:
    """An MCP endpoint an object declares: ``owner`` names the object (``RemoteMCPServer ns/name``)."""

    owner: ServerRef
    url: str
    transport: Transport
    headers: tuple[HeaderRef, ...] = ()


@dataclass(frozen=True)
class A2ATarget:
    """An A2A agent an object declares, with the skills its card must list."""

    owner: str
    url: str
    skills: tuple[str, ...] = ()


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _group(obj: Mapping[str, Any]) -> str:
    api = str(obj.get("apiVersion") or "")
    return api.split("/")[0] if "/" in api else ""


def _service_url(name: str, namespace: str, port: object, path: str = "") -> str:
    return f"http://{name}.{namespace}.svc.cluster.local:{port}{path}"


def _headers(spec: Mapping[str, Any]) -> tuple[HeaderRef, ...]:
    out: list[HeaderRef] = []
    for entry in spec.get("headersFrom") or []:
        if not isinstance(entry, Mapping) or not entry.get("name"):
            continue
        src = entry.get("valueFrom")
        if isinstance(src, Mapping):
            out.append(
                HeaderRef(
                    name=str(entry["name"]),
                    source_kind=str(src.get("type") or "Secret"),
                    source_name=str(src.get("name") or ""),
                    key=str(src.get("key") or ""),
                )
            )
        else:
            out.append(HeaderRef(name=str(entry["name"]), value=str(entry.get("value") or "")))
    return tuple(out)


def mcp_target(obj: Mapping[str, Any], namespace: str = "") -> McpTarget | None:
    """The MCP endpoint ``obj`` declares (see the module docstring), or ``None`` when it declares none.
    ``namespace`` stands in for an object without one."""
    kind, group, meta, spec = obj.get("kind"), _group(obj), _meta(obj), _spec(obj)
    name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or namespace)
    if not name:
        return None
    if group == _KAGENT and kind == "RemoteMCPServer":
        url = spec.get("url")
        if not isinstance(url, str) or not url:
            return None
        transport: Transport = (
            "sse" if str(spec.get("protocol") or "").upper() == "SSE" else "streamable-http"
        )
        return McpTarget(
            ServerRef(kind="RemoteMCPServer", namespace=ns, name=name), url, transport, _headers(spec)
        )
    if group == _KAGENT and kind == "MCPServer":
        deployment = spec.get("deployment")
        port = deployment.get("port") if isinstance(deployment, Mapping) else None
        if not isinstance(port, int):
            return None
        return McpTarget(
            ServerRef(kind="MCPServer", namespace=ns, name=name),
            _service_url(name, ns, port, "/mcp"),
            "streamable-http",
        )
    if group == "" and kind == "Service":
        raw = meta.get("annotations")
        annotations: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        for port in spec.get("ports") or []:
            if not isinstance(port, Mapping):
                continue
            proto = _MCP_APP_PROTOCOLS.get(str(port.get("appProtocol") or ""))
            if proto is None:
                continue
            path = next((str(annotations[a]) for a in _PATH_ANNOTATIONS if annotations.get(a)), "")
            path = path or ("/sse" if proto == "sse" else "/mcp")
            if not path.startswith("/"):
                path = "/" + path
            url = _service_url(name, ns, port.get("port"), path)
            return McpTarget(
                ServerRef(kind="Service", namespace=ns, name=name),
                url,
                "sse" if proto == "sse" else "streamable-http",
            )
    return None


def a2a_target(obj: Mapping[str, Any], namespace: str = "") -> A2ATarget | None:
    """The A2A agent ``obj`` declares (a kagent Agent, or a Service port with an A2A appProtocol), or
    ``None``."""
    kind, group, meta, spec = obj.get("kind"), _group(obj), _meta(obj), _spec(obj)
    name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or namespace)
    if not name:
        return None
    if group == _KAGENT and kind == "Agent":
        skills: list[str] = []
        declarative = spec.get("declarative")
        a2a = declarative.get("a2aConfig") if isinstance(declarative, Mapping) else None
        if isinstance(a2a, Mapping):
            for s in a2a.get("skills") or []:
                if isinstance(s, Mapping) and (s.get("id") or s.get("name")):
                    skills.append(str(s.get("id") or s.get("name")))
        return A2ATarget(f"Agent {ns}/{name}", _service_url(name, ns, AGENT_A2A_PORT), tuple(skills))
    if group == "" and kind == "Service":
        for port in spec.get("ports") or []:
            if isinstance(port, Mapping) and str(port.get("appProtocol") or "") in _A2A_APP_PROTOCOLS:
                return A2ATarget(f"Service {ns}/{name}", _service_url(name, ns, port.get("port")))
    return None


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, also when this thread runs an event loop."""

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@dataclass
class ProbeService:
    """Probes objects' MCP and A2A endpoints, with a cache of ``ttl`` seconds.

    Args:
        addresses: in-cluster origin → loopback origin (``None``: no mapping); an :class:`AddressFile`
            is consulted at each use, so a mapping that changes while the daemon runs takes effect at
            once (results are cached by the loopback address, so a moved origin is probed afresh).
        direct: probe URLs the mapping does not cover as they are (in-cluster deployments).
        limits: bounds of each probe (seconds, bytes, pages, tools).
        ttl: seconds a result is reused for the same address, transport and headers.
        max_concurrency: probes run at once at most.

    A server that answered with the ``initialize`` handshake is probed that way next time, without the
    ``server/discover`` attempt (one round trip less); when that probe fails, it negotiates again.
        secrets: reads ``headersFrom`` values; without it, a header from a Secret or ConfigMap fails the
            probe with a message that says so.
    """

    addresses: ProbeAddresses | AddressFile | None = None
    direct: bool = False
    limits: ProbeLimits = field(default_factory=ProbeLimits)
    ttl: float = 30.0
    secrets: SecretReader | None = None
    #: at most this many probes run at once (each is one HTTP connection and MCP session)
    max_concurrency: int = 16
    #: probes actually sent (cache hits excluded), for tests and benchmarks
    requests: int = 0
    _mcp_cache: dict[tuple[str, Transport, str], tuple[float, McpProbeResult]] = field(default_factory=dict)
    _a2a_cache: dict[tuple[str, tuple[str, ...]], tuple[float, A2AProbeResult]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _handshake_only: dict[tuple[str, Transport], bool] = field(default_factory=dict)
    _semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    # ------------------------------------------------------------------ where
    def mapping(self) -> ProbeAddresses | None:
        """The address mapping in force now (an :class:`AddressFile`'s current content)."""
        a = self.addresses
        return a.current() if isinstance(a, AddressFile) else a

    def address(self, url: str) -> str | None:
        """Where ``url`` is probed from here: its mapped loopback URL, ``url`` itself when ``direct``, or
        ``None`` (not probed)."""
        mapping = self.mapping()
        if mapping is not None and (mapped := mapping.resolve(url)) is not None:
            return mapped
        return url if self.direct and url.startswith(("http://", "https://")) else None

    @property
    def enabled(self) -> bool:
        """True when some URL can be probed (a mapping, or direct probes)."""
        mapping = self.mapping()
        return self.direct or bool(mapping and mapping.addresses)

    def _resolve_headers(self, target: McpTarget) -> dict[str, str]:
        out: dict[str, str] = {}
        for h in target.headers:
            if h.value is not None:
                out[h.name] = h.value
                continue
            where = f"{h.source_kind} {target.owner.namespace}/{h.source_name} key {h.key!r}"
            if self.secrets is None:
                raise HeaderError(f"header {h.name}: {where} cannot be read here")
            value = self.secrets(h.source_kind, target.owner.namespace, h.source_name, h.key)
            if value is None:
                raise HeaderError(f"header {h.name}: {where} does not exist")
            out[h.name] = value
        return out

    # ------------------------------------------------------------------ MCP
    def _mcp_key(
        self, target: McpTarget
    ) -> tuple[tuple[str, Transport, str], dict[str, str]] | McpProbeResult:
        address = self.address(target.url)
        if address is None:
            raise LookupError(target.url)
        try:
            headers = self._resolve_headers(target)
        except HeaderError as exc:
            return McpProbeResult(url=target.url, state=HealthState.FAILED, reason=str(exc))
        digest = hashlib.sha256(repr(sorted(headers.items())).encode()).hexdigest()
        return (address, target.transport, digest), headers

    def _cached_mcp(self, key: tuple[str, Transport, str]) -> McpProbeResult | None:
        with self._lock:
            hit = self._mcp_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    async def _probe_mcp(self, key: tuple[str, Transport, str], headers: dict[str, str]) -> McpProbeResult:
        address, transport, _ = key
        with self._lock:
            self.requests += 1
            handshake = self._handshake_only.get((address, transport), False)
        async with self._gate():
            era: Literal["auto", "handshake"] = "handshake" if handshake else "auto"
            result = await probe_mcp(address, headers, limits=self.limits, transport=transport, era=era)
            if handshake and not result.healthy:  # the server may have changed era: negotiate again
                result = await probe_mcp(address, headers, limits=self.limits, transport=transport)
        with self._lock:
            if result.healthy:
                self._handshake_only[(address, transport)] = result.era == "handshake"
            self._store(self._mcp_cache, key, result)
        return result

    def _gate(self) -> asyncio.Semaphore:
        """The semaphore bounding concurrent probes (:attr:`max_concurrency`) of the running loop."""
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            sem = self._semaphores[loop] = asyncio.Semaphore(self.max_concurrency)
        return sem

    def _store(self, cache: dict[Any, tuple[float, Any]], key: Any, value: Any) -> None:
        """Keep ``value`` and drop entries older than ten cache windows (a rotated header, a server gone
        from Git), so a long-running daemon's cache stays bounded. Call holding the lock."""
        now = time.monotonic()
        cache[key] = (now, value)
        horizon = max(self.ttl, 1.0) * 10
        if len(cache) > 64:
            for k in [k for k, (t, _) in cache.items() if now - t > horizon]:
                del cache[k]

    def mcp(self, obj: Mapping[str, Any], namespace: str = "") -> McpProbeResult | None:
        """The MCP probe result of ``obj`` (cached, or probed now), or ``None`` when ``obj`` declares no
        MCP endpoint or its URL leads nowhere from here. Never raises for what the server does."""
        keyed = self._keyed(obj, namespace)
        if keyed is None or isinstance(keyed, McpProbeResult):
            return keyed
        key, headers = keyed
        return self._cached_mcp(key) or _run(lambda: self._probe_mcp(key, headers))

    def _keyed(
        self, obj: Mapping[str, Any], namespace: str
    ) -> tuple[tuple[str, Transport, str], dict[str, str]] | McpProbeResult | None:
        """``obj``'s cache key and headers; a failed result when its headers cannot be resolved; ``None``
        when it declares no MCP endpoint or its URL leads nowhere from here."""
        target = mcp_target(obj, namespace)
        if target is None:
            return None
        try:
            return self._mcp_key(target)
        except LookupError:
            return None

    async def fresh_mcp(self, obj: Mapping[str, Any], namespace: str = "") -> McpProbeResult | None:
        """Probe ``obj``'s MCP endpoint now, never from the cache (the result is cached for others), for
        gates that need evidence from this moment (a rollout step's probe gate). ``None`` as :meth:`mcp`."""
        keyed = self._keyed(obj, namespace)
        if keyed is None or isinstance(keyed, McpProbeResult):
            return keyed
        return await self._probe_mcp(*keyed)

    async def fresh_a2a(self, obj: Mapping[str, Any], namespace: str = "") -> A2AProbeResult | None:
        """Fetch ``obj``'s agent card now, never from the cache. ``None`` as :meth:`a2a`."""
        target = a2a_target(obj, namespace)
        address = self.address(target.url) if target is not None else None
        if target is None or address is None:
            return None
        return await self._probe_a2a((address, target.skills))

    # ------------------------------------------------------------------ A2A
    def a2a(self, obj: Mapping[str, Any], namespace: str = "") -> A2AProbeResult | None:
        """The agent-card probe result of ``obj`` (cached, or probed now), or ``None`` when ``obj`` is no
        A2A agent or its URL leads nowhere from here."""
        target = a2a_target(obj, namespace)
        if target is None:
            return None
        address = self.address(target.url)
        if address is None:
            return None
        key = (address, target.skills)
        with self._lock:
            hit = self._a2a_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return _run(lambda: self._probe_a2a(key))

    async def _probe_a2a(self, key: tuple[str, tuple[str, ...]]) -> A2AProbeResult:
        from reconciler.probe.a2a import probe_a2a  # a2a-sdk costs ~0.5 s to import: only when used

        with self._lock:
            self.requests += 1
        async with self._gate():
            result = await probe_a2a(key[0], expected_skills=key[1], limits=self.limits)
        with self._lock:
            self._store(self._a2a_cache, key, result)
        return result

    # ------------------------------------------------------------------ many at once
    def prefetch(self, objects: Iterable[Mapping[str, Any]], namespace: str = "") -> int:
        """Probe, concurrently, every MCP and A2A endpoint of ``objects`` that has no fresh result, so
        the calls that follow (:meth:`mcp`, :meth:`a2a`, :meth:`judge`) are answered from the cache.
        Returns how many probes were sent."""
        mcp_jobs: dict[tuple[str, Transport, str], dict[str, str]] = {}
        a2a_jobs: set[tuple[str, tuple[str, ...]]] = set()
        now = time.monotonic()
        for obj in objects:
            target = mcp_target(obj, namespace)
            if target is not None:
                try:
                    keyed = self._mcp_key(target)
                except LookupError:
                    keyed = None
                if keyed is not None and not isinstance(keyed, McpProbeResult):
                    key, headers = keyed
                    if self._cached_mcp(key) is None:
                        mcp_jobs[key] = headers
            a2a = a2a_target(obj, namespace)
            if a2a is not None and (address := self.address(a2a.url)) is not None:
                akey = (address, a2a.skills)
                with self._lock:
                    hit = self._a2a_cache.get(akey)
                if hit is None or now - hit[0] >= self.ttl:
                    a2a_jobs.add(akey)
        if not mcp_jobs and not a2a_jobs:
            return 0

        async def all_probes() -> None:
            jobs: list[Awaitable[object]] = [self._probe_mcp(k, h) for k, h in mcp_jobs.items()]
            jobs += [self._probe_a2a(k) for k in a2a_jobs]
            await asyncio.gather(*jobs)

        _run(all_probes)
        return len(mcp_jobs) + len(a2a_jobs)

    # ------------------------------------------------------------------ what is known, without probing
    def known_mcp(self, obj: Mapping[str, Any], namespace: str = "") -> McpProbeResult | None:
        """The last MCP probe result of ``obj`` however old, without probing (``None``: never probed,
        or ``obj`` is not an MCP server reachable from here)."""
        keyed = self._keyed(obj, namespace)
        if keyed is None or isinstance(keyed, McpProbeResult):
            return keyed
        with self._lock:
            hit = self._mcp_cache.get(keyed[0])
        return hit[1] if hit is not None else None

    def known_a2a(self, obj: Mapping[str, Any], namespace: str = "") -> A2AProbeResult | None:
        """The last agent-card probe result of ``obj`` however old, without probing."""
        target = a2a_target(obj, namespace)
        address = self.address(target.url) if target is not None else None
        if target is None or address is None:
            return None
        with self._lock:
            hit = self._a2a_cache.get((address, target.skills))
        return hit[1] if hit is not None else None

    # ------------------------------------------------------------------ tools and verdicts
    def tools(self, server: Mapping[str, Any] | None) -> tuple[list[ToolInfo] | None, str]:
        """The tools the live server object lists, and where that came from: a healthy probe
        (``probe``), else a RemoteMCPServer's ``status.discoveredTools`` (``discoveredTools``: names only,
        kagent's last listing), else ``(None, why)``."""
        if server is None:
            return None, "does not exist"
        result = self.mcp(server)
        if result is not None and result.healthy:
            return list(result.tools), "probe"
        names = tool_names_of(server) if server.get("kind") == "RemoteMCPServer" else None
        if names is not None:
            return [ToolInfo(name=n) for n in names], "discoveredTools"
        if result is not None:
            return None, f"probe {result.state.value}: {result.reason}"
        return None, "not probed"

    def judge(self, obj: Mapping[str, Any], lookup: ObjectLookup | None = None) -> HealthStatus | None:
        """The protocol verdict on one live object, or ``None`` when no probe covers it.

        MCP servers: the probe's state (``Healthy`` only when handshake and listing succeeded). Agents:
        the agent card's state, made ``Degraded`` when a tool the Agent requires is missing from its
        server's tool list (read through ``lookup``); an Agent whose card is not probed gets a verdict
        only when a required tool is missing."""
        target = mcp_target(obj)
        probed = self.mcp(obj) if target is not None else None
        if target is not None and probed is not None:
            where = self.address(target.url) or target.url
            return HealthStatus(state=probed.state, message=f"MCP probe of {where}: {probed.reason}"[:300])
        if obj.get("kind") != "Agent" or _group(obj) != _KAGENT:
            card = self.a2a(obj)
            if card is None:
                return None
            return HealthStatus(state=card.state, message=f"A2A card: {card.reason}"[:300])
        card = self.a2a(obj)
        missing = self.missing_tools(requirements([obj]), lookup) if lookup is not None else []
        parts: list[str] = []
        state: HealthState | None = None
        if card is not None:
            state = card.state
            parts.append(f"A2A card: {card.reason}")
        if missing:
            state = HealthState.DEGRADED if state in (None, HealthState.HEALTHY) else state
            parts.append("; ".join(missing))
        if state is None:
            return None
        return HealthStatus(state=state, message="; ".join(parts)[:300])

    def missing_tools(self, reqs: Iterable[ToolRequirement], lookup: ObjectLookup | None) -> list[str]:
        """A message for each required tool its server does not list (:func:`contract.check`; servers
        whose tool list cannot be read are skipped: their own verdict says why)."""
        named = [r for r in reqs if r.tools is not None]
        if lookup is None or not named:
            return []
        lists = {r.server: self.tools(lookup(r.server))[0] for r in named}
        return [v.message for v in check(named, lists).violations]


def secret_reader(get: Callable[[str, str, str], Mapping[str, Any] | None]) -> SecretReader:
    """A :data:`SecretReader` over ``get(kind, namespace, name)`` → the live object (``None`` when absent):
    Secret ``data`` values are base64-decoded (``stringData`` is never stored), ConfigMap ``data`` read
    as is."""

    def read(kind: str, namespace: str, name: str, key: str) -> str | None:
        obj = get(kind, namespace, name)
        data = obj.get("data") if obj is not None else None
        if not isinstance(data, Mapping) or not isinstance(data.get(key), str):
            return None
        raw = str(data[key])
        if kind == "Secret":
            try:
                return base64.b64decode(raw, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return None
        return raw

    return read


def service_from_env(environ: Mapping[str, str] | None = None, **kwargs: Any) -> ProbeService | None:
    """A :class:`ProbeService` for ``$RECONCILER_PROBE_ADDRESSES`` (inline JSON, or ``@file``: followed
    as it changes) and ``$RECONCILER_PROBE_DIRECT`` (``true``/``1``: in-cluster, probe every URL as it
    is); ``None`` when neither is set.

    Raises:
        ConfigError: ``$RECONCILER_PROBE_ADDRESSES`` is malformed, or its file cannot be read (see
            :func:`reconciler.probe.targets.addresses_from_env`).
    """
    env = os.environ if environ is None else environ
    addresses = addresses_from_env(env)
    direct = env.get(DIRECT_ENV_VAR, "").strip().lower() in ("1", "true", "yes")
    if addresses is None and not direct:
        return None
    return ProbeService(addresses=addresses, direct=direct, **kwargs)
