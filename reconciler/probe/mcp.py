"""MCP health probe: handshake and the complete ``tools/list``, bounded in time and bytes.

Spec followed: MCP revisions 2024-11-05 to 2025-11-25 (``initialize`` → ``notifications/initialized`` →
``tools/list``; Streamable HTTP with ``Mcp-Session-Id`` and ``MCP-Protocol-Version``, and the legacy
HTTP+SSE transport of 2024-11-05) and the stateless revision 2026-07-28 (``server/discover``, no session,
protocol version and client capabilities in every request's ``_meta``, ``MCP-Protocol-Version`` and
``Mcp-Method`` headers). The era is negotiated, never assumed: ``server/discover`` first; an answer (or an
HTTP 400 with error ``-32022`` naming a modern version) means stateless; anything else falls back to
``initialize``.

Why not the ``mcp`` SDK's ``Client``: a probe must bound every response (a 20 MB body or a
never-ending event stream must not be buffered), tell a cursor loop from a long listing, and say *which
step* failed in one line; the SDK client buffers whole responses, follows no size cap and reports
transport failures as generic exceptions. The wire shapes are still the SDK's: every result is validated
with the official ``mcp_types`` models (``DiscoverResult``, ``InitializeResult``, ``ListToolsResult``) and
the version lists come from ``mcp_types.version``. Tests cross-check the listing against the SDK client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
import mcp_types
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from reconciler.model.health import HealthState
from reconciler.probe._http import (
    HttpStatusError,
    OversizeError,
    ProbeFailure,
    RpcError,
    content_type,
    iter_sse,
    parse_json,
    read_body,
)
from reconciler.probe._http import (
    os_reason as _os_reason,
)
from reconciler.probe.models import McpProbeResult, ProbeLimits, ToolInfo

log = logging.getLogger(__name__)

Transport = Literal["auto", "streamable-http", "sse"]

CLIENT_INFO = {"name": "reconciler-probe", "version": "0.1.0"}
UNSUPPORTED_PROTOCOL_VERSION = -32022
_META_VERSION = "io.modelcontextprotocol/protocolVersion"
_META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
_META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
_META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
_ACCEPT = "application/json, text/event-stream"


def schema_digest(schema: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``schema`` as canonical JSON: sorted keys, no insignificant spaces, UTF-8."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _short(value: str, n: int = 40) -> str:
    return value if len(value) <= n else value[:n] + "…"


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc or 'result'}: {err['msg']}" + (
        f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
    )


def _response_for(obj: Any, request_id: int, what: str) -> dict[str, Any] | None:
    """The result of the JSON-RPC response ``obj`` to ``request_id``; ``None`` when ``obj`` is another
    message (a server request or notification). Raises :class:`RpcError` or :class:`ProbeFailure`."""
    if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
        raise ProbeFailure(f"{what}: malformed JSON-RPC (not a JSON-RPC 2.0 object)")
    if "method" in obj:
        return None
    if obj.get("id") != request_id:
        raise ProbeFailure(
            f"{what}: malformed JSON-RPC (response id {obj.get('id')!r}, expected {request_id})"
        )
    if "error" in obj:
        err = obj["error"]
        if not isinstance(err, dict) or not isinstance(err.get("code"), int):
            raise ProbeFailure(f"{what}: malformed JSON-RPC error object")
        raise RpcError(err["code"], str(err.get("message", "")), err.get("data"), what)
    result = obj.get("result")
    if not isinstance(result, dict):
        raise ProbeFailure(f"{what}: malformed JSON-RPC (no result object)")
    return result


def _rpc_error_in(body: bytes) -> RpcError | None:
    with contextlib.suppress(ValueError, TypeError):
        obj = json.loads(body)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and isinstance(err.get("code"), int):
            return RpcError(err["code"], str(err.get("message", "")), err.get("data"), "")
    return None


class _Channel(ABC):
    """A JSON-RPC conversation with one MCP server over some transport."""

    session_id: str | None = None
    protocol_version: str | None = None
    next_id = 0

    @abstractmethod
    async def request(
        self, method: str, params: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Send a request; returns its ``result``."""

    @abstractmethod
    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send a notification (no answer)."""

    async def close(self) -> None:
        return None


class _StreamableHttp(_Channel):
    """Streamable HTTP (2025-03-26+): one POST per message; the answer is JSON or an event stream."""

    def __init__(self, http: aiohttp.ClientSession, url: str, limits: ProbeLimits) -> None:
        self.http = http
        self.url = url
        self.limits = limits

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        h = {"Accept": _ACCEPT, "Content-Type": "application/json"}
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            h["MCP-Protocol-Version"] = self.protocol_version
        h.update(extra or {})
        return h

    async def request(
        self, method: str, params: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        self.next_id += 1
        rid = self.next_id
        body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        cap = self.limits.max_response_bytes
        async with self.http.post(self.url, json=body, headers=self._headers(headers)) as resp:
            if resp.status >= 300:
                raw = await read_body(resp, min(cap, 64 * 1024), method) if resp.status < 500 else b""
                raise HttpStatusError(resp.status, _rpc_error_in(raw), method)
            if method == "initialize" and resp.headers.get("Mcp-Session-Id"):
                self.session_id = resp.headers["Mcp-Session-Id"]
            ctype = content_type(resp)
            if ctype == "text/event-stream":
                async for event in iter_sse(resp, cap, method):
                    if event.event != "message":
                        continue
                    result = _response_for(parse_json(event.data.encode(), method), rid, method)
                    if result is not None:
                        return result
                raise ProbeFailure(f"{method}: event stream ended without a response")
            if ctype != "application/json":
                raise ProbeFailure(
                    f"{method}: unexpected Content-Type {ctype or 'none'!r} (HTTP {resp.status})"
                )
            result = _response_for(parse_json(await read_body(resp, cap, method), method), rid, method)
            if result is None:
                raise ProbeFailure(f"{method}: malformed JSON-RPC (a request where a response was due)")
            return result

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        body = {"jsonrpc": "2.0", "method": method, "params": params}
        async with self.http.post(self.url, json=body, headers=self._headers(None)) as resp:
            if resp.status >= 300:
                raise HttpStatusError(resp.status, None, method)

    async def close(self) -> None:
        if not self.session_id:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with asyncio.timeout(1.0), self.http.delete(self.url, headers=self._headers(None)):
                pass


class _LegacySse(_Channel):
    """HTTP+SSE (2024-11-05): a GET opens an event stream whose ``endpoint`` event names the URL to POST
    messages to; every answer arrives on the stream."""

    def __init__(self, http: aiohttp.ClientSession, url: str, limits: ProbeLimits) -> None:
        self.http = http
        self.url = url
        self.limits = limits
        self.endpoint = ""
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=32)
        self.reader: asyncio.Task[None] | None = None
        self.resp: aiohttp.ClientResponse | None = None

    async def open(self) -> None:
        resp = await self.http.get(self.url, headers={"Accept": "text/event-stream"})
        self.resp = resp
        if resp.status >= 300:
            raise HttpStatusError(resp.status, None, "GET event stream")
        if content_type(resp) != "text/event-stream":
            raise ProbeFailure(
                f"GET event stream: Content-Type {content_type(resp) or 'none'!r}, no event stream"
            )
        events = iter_sse(resp, self.limits.max_response_bytes, "event stream")
        first = await anext(events, None)
        if first is None or first.event != "endpoint":
            raise ProbeFailure("event stream: the first event is not 'endpoint'")
        endpoint = urljoin(self.url, first.data.strip())
        a, b = urlsplit(self.url), urlsplit(endpoint)
        if (a.scheme, a.netloc) != (b.scheme, b.netloc):
            raise ProbeFailure("event stream: the endpoint is on another origin; refusing to post there")
        self.endpoint = endpoint
        self.reader = asyncio.create_task(self._read(events))

    async def _read(self, events: AsyncIterator[Any]) -> None:
        try:
            async for event in events:
                if event.event == "message":
                    await self.queue.put(parse_json(event.data.encode(), "event stream"))
            await self.queue.put(ProbeFailure("event stream closed by the server"))
        except ProbeFailure as e:
            await self.queue.put(e)
        except (aiohttp.ClientError, OSError) as e:
            await self.queue.put(ProbeFailure(f"event stream: {e.__class__.__name__}"))

    async def _post(self, body: dict[str, Any], what: str) -> None:
        async with self.http.post(
            self.endpoint, json=body, headers={"Content-Type": "application/json"}
        ) as r:
            if r.status >= 300:
                raise HttpStatusError(r.status, None, what)
            await read_body(r, 64 * 1024, what)

    async def request(
        self, method: str, params: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        self.next_id += 1
        rid = self.next_id
        await self._post({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, method)
        while True:
            msg = await self.queue.get()
            if isinstance(msg, ProbeFailure):
                raise ProbeFailure(f"{method}: {msg}")
            result = _response_for(msg, rid, method)
            if result is not None:
                return result

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        await self._post({"jsonrpc": "2.0", "method": method, "params": params}, method)

    async def close(self) -> None:
        if self.reader:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        if self.resp:
            self.resp.close()


class _Probe:
    """The state of one probe run (what was learned so far, for the result on success or failure)."""

    def __init__(self, url: str, limits: ProbeLimits) -> None:
        self.limits = limits
        self.result = McpProbeResult(url=url, state=HealthState.FAILED)
        self.phase = "connect"
        self.handshake_done = False

    def modern_meta(self, version: str) -> dict[str, Any]:
        return {_META_VERSION: version, _META_CLIENT_INFO: CLIENT_INFO, _META_CAPABILITIES: {}}

    async def discover(self, ch: _Channel) -> bool:
        """Try the stateless era; True when the server speaks it (the channel is then set up)."""
        version = MODERN_PROTOCOL_VERSIONS[-1]
        for _attempt in range(2):
            self.phase = "server/discover"
            headers = {"MCP-Protocol-Version": version, "Mcp-Method": "server/discover"}
            try:
                async with asyncio.timeout(self.limits.timeout / 2):
                    raw = await ch.request("server/discover", {"_meta": self.modern_meta(version)}, headers)
            except (HttpStatusError, RpcError) as e:
                rpc = e.rpc if isinstance(e, HttpStatusError) else e
                if rpc is None or rpc.code != UNSUPPORTED_PROTOCOL_VERSION:
                    return False
                supported = rpc.data.get("supported") if isinstance(rpc.data, dict) else None
                mutual = [v for v in MODERN_PROTOCOL_VERSIONS if v in (supported or ())]
                if not mutual or mutual[-1] == version:
                    return False
                version = mutual[-1]
                continue
            except (ProbeFailure, TimeoutError):
                return False
            try:
                found = mcp_types.DiscoverResult.model_validate(raw)
            except ValidationError:
                return False
            mutual = [v for v in MODERN_PROTOCOL_VERSIONS if v in found.supported_versions]
            if not mutual:
                return False
            ch.protocol_version = mutual[-1]
            self.result.era = "stateless"
            self.result.protocol_version = mutual[-1]
            self.result.capabilities = sorted(found.capabilities.model_dump(exclude_none=True, by_alias=True))
            self._server_info(raw.get("_meta"))
            return True
        return False

    def _server_info(self, meta: Any) -> None:
        info = meta.get(_META_SERVER_INFO) if isinstance(meta, dict) else None
        if isinstance(info, dict) and not self.result.server_name:
            self.result.server_name = str(info.get("name", ""))
            self.result.server_version = str(info.get("version", ""))

    async def initialize(self, ch: _Channel) -> None:
        """The 2024-11-05 … 2025-11-25 handshake: ``initialize`` then ``notifications/initialized``."""
        self.phase = "initialize"
        params = {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}
        raw = await ch.request("initialize", params)
        try:
            init = mcp_types.InitializeResult.model_validate(raw)
        except ValidationError as e:
            raise ProbeFailure(f"initialize: invalid result ({_first_error(e)})") from None
        if init.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise ProbeFailure(
                f"initialize: the server chose protocol version {init.protocol_version!r}, unsupported"
            )
        ch.protocol_version = init.protocol_version
        self.result.era = "handshake"
        self.result.protocol_version = init.protocol_version
        self.result.server_name = init.server_info.name
        self.result.server_version = init.server_info.version
        self.result.capabilities = sorted(init.capabilities.model_dump(exclude_none=True, by_alias=True))
        self.phase = "notifications/initialized"
        await ch.notify("notifications/initialized", {})

    async def list_tools(self, ch: _Channel) -> str:
        """Every page of ``tools/list``; returns ``""`` when complete, else why the listing stopped."""
        cursor: str | None = None
        seen: set[str] = set()
        tools: list[ToolInfo] = []
        modern = self.result.era == "stateless"
        while True:
            page = self.result.pages + 1
            self.phase = f"tools/list page {page}"
            params: dict[str, Any] = {}
            headers: dict[str, str] = {}
            if modern and ch.protocol_version:
                params["_meta"] = self.modern_meta(ch.protocol_version)
                headers["Mcp-Method"] = "tools/list"
            if cursor is not None:
                params["cursor"] = cursor
            raw = await ch.request("tools/list", params, headers)
            try:
                listing = mcp_types.ListToolsResult.model_validate(raw)
            except ValidationError as e:
                return f"tools/list page {page}: invalid result ({_first_error(e)})"
            self.result.pages = page
            self._server_info(raw.get("_meta"))
            for t in listing.tools:
                tools.append(
                    ToolInfo(
                        name=t.name,
                        description=t.description or "",
                        schema_sha256=schema_digest(t.input_schema),
                        input_schema=dict(t.input_schema),
                    )
                )
            self.result.tools = tools[: self.limits.max_tools]
            if len(tools) > self.limits.max_tools:
                cap = self.limits.max_tools
                return f"more than {cap} tools listed (max_tools); listing stopped at page {page}"
            cursor = listing.next_cursor
            if cursor is None:
                return ""
            if cursor in seen:
                return f"cursor loop: nextCursor {_short(cursor)!r} came back on page {page}"
            seen.add(cursor)
            if page >= self.limits.max_pages:
                return f"more than {self.limits.max_pages} tools/list pages (max_pages); listing stopped"


async def probe_mcp(
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    limits: ProbeLimits | None = None,
    transport: Transport = "auto",
    era: Literal["auto", "handshake"] = "auto",
) -> McpProbeResult:
    """Probe the MCP server at ``url``: negotiate the protocol era, then list every tool.

    ``headers`` (e.g. ``Authorization``) go on every request and are never logged or reported.
    ``transport``: ``streamable-http``, ``sse`` (the legacy HTTP+SSE transport: ``url`` is the event
    stream, e.g. ``…/sse``) or ``auto`` (``sse`` when the path ends in ``/sse``; otherwise Streamable HTTP,
    falling back to SSE when the POST gets HTTP 404 or 405). ``limits`` bounds the whole probe (seconds)
    and each response (bytes). ``era`` ``handshake`` skips the ``server/discover`` attempt (one round trip)
    for a server known to speak only the ``initialize`` handshake; ``auto`` negotiates.

    Never raises for anything the server does: the result's ``state`` and ``reason`` say what happened
    (see :class:`McpProbeResult`).
    """
    limits = limits or ProbeLimits()
    started = time.monotonic()
    mode = transport
    if mode == "auto" and urlsplit(url).path.rstrip("/").endswith("/sse"):
        mode = "sse"
    probe = _Probe(url, limits)
    try:
        async with asyncio.timeout(limits.timeout):
            try:
                await _run(probe, url, headers, "sse" if mode == "sse" else "streamable-http", era)
            except HttpStatusError as e:
                if mode != "auto" or e.status not in (404, 405) or probe.handshake_done:
                    raise
                probe = _Probe(url, limits)
                await _run(probe, url, headers, "sse", era)
    except TimeoutError:
        _fail(probe, f"timed out after {limits.timeout:g} s during {probe.phase}")
    except OversizeError as e:
        _fail(probe, str(e))
    except ProbeFailure as e:
        _fail(probe, str(e))
    except aiohttp.ClientConnectorError as e:
        _fail(probe, f"cannot connect to {urlsplit(url).netloc}: {_os_reason(e.os_error)}")
    except (aiohttp.ClientError, OSError, ValueError) as e:
        _fail(probe, f"{probe.phase}: {e.__class__.__name__}: {str(e)[:160]}")
    probe.result.latency = time.monotonic() - started
    log.debug("mcp probe %s: %s %s", url, probe.result.state.value, probe.result.reason)
    return probe.result


def _fail(probe: _Probe, reason: str) -> None:
    """Record a failure: ``Degraded`` once the handshake succeeded (the listing failed), else ``Failed``."""
    if probe.handshake_done:
        probe.result.state = HealthState.DEGRADED
        probe.result.reason = f"tool listing failed: {reason}"
    else:
        probe.result.state = HealthState.FAILED
        probe.result.reason = f"handshake failed: {reason}"


async def _run(
    probe: _Probe, url: str, headers: Mapping[str, str] | None, transport: str, era: str = "auto"
) -> None:
    probe.result.transport = transport
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=probe.limits.timeout)
    async with aiohttp.ClientSession(headers=dict(headers or {}), timeout=timeout) as http:
        ch: _Channel
        if transport == "sse":
            sse = _LegacySse(http, url, probe.limits)
            ch = sse
        else:
            ch = _StreamableHttp(http, url, probe.limits)
        try:
            if isinstance(ch, _LegacySse):
                probe.phase = "GET event stream"
                await ch.open()
            if transport == "sse" or era == "handshake" or not await probe.discover(ch):
                await probe.initialize(ch)
            probe.handshake_done = True
            why = await probe.list_tools(ch)
            if why:
                probe.result.state = HealthState.DEGRADED
                probe.result.reason = f"tool listing incomplete: {why}"
            else:
                probe.result.state = HealthState.HEALTHY
                n = len(probe.result.tools)
                probe.result.reason = f"{probe.result.era} MCP {probe.result.protocol_version}, {n} tools"
        finally:
            await ch.close()
