"""Hostile and edge-case protocol servers for the probe tests: one aiohttp application on 127.0.0.1 whose
routes each misbehave in one way (named in :data:`ROUTES`). They are fixtures, not reference servers:
the well-behaved servers are the real ones (server-everything, the SDK server, the a2a-sdk agent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"

#: What each route does.
ROUTES = {
    "/hang": "accepts the connection and the request, never answers",
    "/http500": "answers every request with HTTP 500",
    "/malformed": "answers 200 application/json with a body that is not JSON",
    "/not-jsonrpc": "answers 200 with JSON that is not a JSON-RPC response",
    "/loop": "handshake server whose tools/list cursors go a → b → a",
    "/stateless-paged": "2026-07-28-only server: an empty-string cursor is a real page; checks the headers",
    "/needs-handshake-version": "server/discover answers -32022 naming only 2025-11-25; initialize works",
    "/many-tools": "handshake server listing 10,000 tools, 500 per page",
    "/huge": "answers initialize with a 20 MB JSON body (chunked, no Content-Length)",
    "/huge-event": "answers initialize with one 20 MB server-sent event",
    "/auth": "handshake server that requires 'Authorization: Bearer s3cret-token'",
    "/card-not-json/.well-known/agent-card.json": "an agent card that is HTML",
    "/card-old/.well-known/agent.json": "a 0.3-era card only at the old path",
    "/card-incomplete/.well-known/agent-card.json": "a JSON card missing required fields",
}


def _tool(i: int) -> dict[str, Any]:
    return {"name": f"tool-{i}", "description": f"tool number {i}", "inputSchema": {"type": "object"}}


def _ok(rid: Any, result: dict[str, Any], **headers: str) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "id": rid, "result": result}, headers=headers)


def _err(rid: Any, code: int, message: str, status: int = 200, data: Any = None) -> web.Response:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return web.json_response({"jsonrpc": "2.0", "id": rid, "error": err}, status=status)


def _init_result() -> dict[str, Any]:
    return {
        "protocolVersion": HANDSHAKE,
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "hostile", "version": "0.0.1"},
    }


class Hostile:
    """The application's state: requests seen per route (to assert what the probe sent)."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[dict[str, str], Any]]] = {}

    async def _body(self, request: web.Request) -> Any:
        body = await request.json() if request.can_read_body else None
        self.seen.setdefault(request.path, []).append((dict(request.headers), body))
        return body

    async def hang(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def http500(self, request: web.Request) -> web.Response:
        return web.Response(status=500, text="internal error")

    async def malformed(self, request: web.Request) -> web.Response:
        return web.Response(
            status=200, text='{"jsonrpc": "2.0", "id": 1, "result": {', content_type="application/json"
        )

    async def not_jsonrpc(self, request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    async def handshake(self, request: web.Request, tools_list: Any, msg: Any = None) -> web.StreamResponse:
        """A 2025-11-25 server: discover is unknown (HTTP 400 without a modern code), then the handshake."""
        msg = msg if msg is not None else await self._body(request)
        method, rid = msg.get("method"), msg.get("id")
        if method == "initialize":
            return _ok(rid, _init_result(), **{"Mcp-Session-Id": "sess-1"})
        if method == "notifications/initialized":
            return web.Response(status=202)
        if request.headers.get("Mcp-Session-Id") != "sess-1":
            return _err(rid, -32000, "Bad Request: No valid session ID provided", status=400)
        if method == "tools/list":
            result: web.StreamResponse = await tools_list(
                request, rid, (msg.get("params") or {}).get("cursor")
            )
            return result
        return _err(rid, -32601, "method not found")

    async def loop(self, request: web.Request) -> web.StreamResponse:
        async def tools(_r: web.Request, rid: Any, cursor: str | None) -> web.Response:
            nxt = {None: "a", "a": "b", "b": "a"}[cursor]
            return _ok(rid, {"tools": [_tool(len(str(cursor)))], "nextCursor": nxt})

        return await self.handshake(request, tools)

    async def many_tools(self, request: web.Request) -> web.StreamResponse:
        async def tools(_r: web.Request, rid: Any, cursor: str | None) -> web.Response:
            start = int(cursor or 0)
            page = [_tool(i) for i in range(start, min(start + 500, 10_000))]
            result: dict[str, Any] = {"tools": page}
            if start + 500 < 10_000:
                result["nextCursor"] = str(start + 500)
            return _ok(rid, result)

        return await self.handshake(request, tools)

    async def auth(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer s3cret-token":
            return web.Response(status=401, text="unauthorized")

        async def tools(_r: web.Request, rid: Any, cursor: str | None) -> web.Response:
            return _ok(rid, {"tools": [_tool(1)]})

        return await self.handshake(request, tools)

    async def stateless_paged(self, request: web.Request) -> web.Response:
        """2026-07-28 only: each request must carry matching MCP-Protocol-Version and Mcp-Method headers
        and the version in ``_meta``; pages: no cursor → nextCursor "" → nextCursor "z" → end."""
        msg = await self._body(request)
        method, rid = msg.get("method"), msg.get("id")
        meta = (msg.get("params") or {}).get("_meta") or {}
        version = request.headers.get("MCP-Protocol-Version")
        if version != MODERN or meta.get("io.modelcontextprotocol/protocolVersion") != MODERN:
            return _err(rid, -32022, "unsupported protocol version", status=400, data={"supported": [MODERN]})
        if request.headers.get("Mcp-Method") != method:
            return _err(rid, -32020, "Mcp-Method header does not match the body", status=400)
        if "Mcp-Session-Id" in request.headers:
            return _err(rid, -32600, "no sessions in 2026-07-28", status=400)
        server_info = {"io.modelcontextprotocol/serverInfo": {"name": "paged", "version": "3.0"}}
        if method == "server/discover":
            return _ok(
                rid, {"supportedVersions": [MODERN], "capabilities": {"tools": {}}, "_meta": server_info}
            )
        if method == "tools/list":
            cursor = (msg.get("params") or {}).get("cursor")
            if cursor is None:
                return _ok(rid, {"tools": [_tool(0)], "nextCursor": ""})
            if cursor == "":
                return _ok(rid, {"tools": [_tool(1)], "nextCursor": "z"})
            return _ok(rid, {"tools": [_tool(2)]})
        return _err(rid, -32601, "method not found", status=404)

    async def needs_handshake_version(self, request: web.Request) -> web.StreamResponse:
        msg = await self._body(request)
        if msg.get("method") == "server/discover":
            return _err(msg.get("id"), -32022, "unsupported", status=400, data={"supported": [HANDSHAKE]})

        async def tools(_r: web.Request, rid: Any, cursor: str | None) -> web.Response:
            return _ok(rid, {"tools": [_tool(7)]})

        return await self.handshake(request, tools, msg)

    async def huge(self, request: web.Request) -> web.StreamResponse:
        await self._body(request)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"jsonrpc":"2.0","id":1,"result":{"x":"')
        chunk = b"x" * (1024 * 1024)
        for _ in range(20):
            await resp.write(chunk)
        await resp.write(b'"}}')
        await resp.write_eof()
        return resp

    async def huge_event(self, request: web.Request) -> web.StreamResponse:
        await self._body(request)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"x":"')
        chunk = b"y" * (1024 * 1024)
        for _ in range(20):
            await resp.write(chunk)
        await resp.write(b'"}}\n\n')
        await resp.write_eof()
        return resp

    async def card_not_json(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body>agent</body></html>", content_type="text/html")

    async def card_old(self, request: web.Request) -> web.Response:
        card = {
            "name": "old-agent",
            "description": "an A2A 0.3 agent",
            "url": f"http://{request.host}/card-old/",
            "version": "0.3.1",
            "protocolVersion": "0.3.0",
            "capabilities": {},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [{"id": "summarize", "name": "Summarize", "description": "sums up", "tags": ["t"]}],
        }
        return web.json_response(card)

    async def card_incomplete(self, request: web.Request) -> web.Response:
        return web.json_response({"name": "half-agent", "skills": []})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/hang", self.hang)
        app.router.add_route("*", "/http500", self.http500)
        app.router.add_post("/malformed", self.malformed)
        app.router.add_post("/not-jsonrpc", self.not_jsonrpc)
        app.router.add_post("/loop", self.loop)
        app.router.add_post("/many-tools", self.many_tools)
        app.router.add_post("/auth", self.auth)
        app.router.add_post("/stateless-paged", self.stateless_paged)
        app.router.add_post("/needs-handshake-version", self.needs_handshake_version)
        app.router.add_post("/huge", self.huge)
        app.router.add_post("/huge-event", self.huge_event)
        app.router.add_get("/card-not-json/.well-known/agent-card.json", self.card_not_json)
        app.router.add_get("/card-old/.well-known/agent.json", self.card_old)
        app.router.add_get("/card-incomplete/.well-known/agent-card.json", self.card_incomplete)
        return app


@asynccontextmanager
async def serve_hostile() -> AsyncIterator[tuple[str, Hostile]]:
    """Serve the hostile application on a free 127.0.0.1 port; yields (base URL, state)."""
    state = Hostile()
    runner = web.AppRunner(state.app(), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        await runner.cleanup()
