"""Bounded HTTP reads for the probes: a body or a server-sent event larger than the cap is an error,
never a buffer that grows without limit. Messages never include request headers."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

_CHUNK = 64 * 1024


class ProbeFailure(Exception):
    """One probe step failed; the message is safe to show and log (it names no header or token)."""


class OversizeError(ProbeFailure):
    """A response body or event exceeded the probe's size cap."""


class HttpStatusError(ProbeFailure):
    """The server answered with a non-2xx HTTP status; ``rpc`` holds a JSON-RPC error if the body had
    one (e.g. MCP's ``-32022`` unsupported protocol version on HTTP 400)."""

    def __init__(self, status: int, rpc: RpcError | None, what: str) -> None:
        detail = f": JSON-RPC error {rpc.code} {rpc.rpc_message}" if rpc else ""
        super().__init__(f"{what}: HTTP {status}{detail}")
        self.status = status
        self.rpc = rpc


class RpcError(ProbeFailure):
    """A JSON-RPC error object (``code``, ``message``, ``data``) returned for a request."""

    def __init__(self, code: int, message: str, data: Any, what: str) -> None:
        super().__init__(f"{what}: JSON-RPC error {code} {message[:200]}")
        self.code = code
        self.rpc_message = message[:200]
        self.data = data


def os_reason(error: OSError) -> str:
    """A short description of a connection error: the errno's text (``Connection refused``) if any."""
    return os.strerror(error.errno) if error.errno else (str(error) or error.__class__.__name__)


def content_type(resp: aiohttp.ClientResponse) -> str:
    """The media type of ``resp`` without parameters, lower case (``""`` when absent)."""
    return resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


async def read_body(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body of ``resp``, at most ``limit`` bytes.

    Raises:
        OversizeError: the declared Content-Length or the bytes received exceed ``limit``.
    """
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise OversizeError(f"{what}: response of {declared} bytes exceeds the {limit}-byte cap")
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        buf += chunk
        if len(buf) > limit:
            raise OversizeError(f"{what}: response exceeds the {limit}-byte cap")
    return bytes(buf)


def parse_json(body: bytes, what: str) -> Any:
    """``body`` parsed as JSON (UTF-8). Raises :class:`ProbeFailure` naming ``what`` when it is not."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProbeFailure(f"{what}: malformed JSON ({e.__class__.__name__}: {str(e)[:120]})") from None


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: its type (``message`` when none was given) and its data lines joined."""

    event: str
    data: str


async def iter_sse(resp: aiohttp.ClientResponse, limit: int, what: str) -> AsyncIterator[SseEvent]:
    """The events of a ``text/event-stream`` body (WHATWG server-sent events), each at most ``limit``
    bytes; comment lines and ``id``/``retry`` fields are skipped.

    Raises:
        OversizeError: one line or one event exceeds ``limit`` bytes.
    """
    buf = bytearray()
    event = ""
    data: list[str] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > limit:
                    raise OversizeError(f"{what}: event exceeds the {limit}-byte cap")
                break
            line = bytes(buf[:nl]).rstrip(b"\r").decode("utf-8", errors="replace")
            del buf[: nl + 1]
            if not line:
                if data and any(data):  # an event whose data is empty is not dispatched (WHATWG)
                    yield SseEvent(event or "message", "\n".join(data))
                event, data, size = "", [], 0
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                size += len(value)
                if size > limit:
                    raise OversizeError(f"{what}: event exceeds the {limit}-byte cap")
                data.append(value)
