"""An MCP server built with the official ``mcp`` Python SDK (its MCPServer), served over Streamable HTTP
on 127.0.0.1: it speaks both eras (2026-07-28 ``server/discover`` and the ``initialize`` handshake), so
the probe must negotiate the stateless revision with it. Run: ``python sdk_server.py PORT``."""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("sdk-probe-target", version="9.9.9")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"hello {name}"


if __name__ == "__main__":
    app = server.streamable_http_app(json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
