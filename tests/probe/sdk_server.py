"""An MCP server built with the official ``mcp`` Python SDK (its MCPServer), served over Streamable HTTP
on 127.0.0.1: it speaks both eras (2026-07-28 ``server/discover`` and the ``initialize`` handshake), so
the probe must negotiate the stateless revision with it. Run: ``python sdk_server.py PORT [v2]``.

``v2`` is the server's next version, for the tool-contract tests: ``add`` gains a required parameter
``precision``, ``greet`` is gone and ``shout`` is new."""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

V2 = sys.argv[2:3] == ["v2"]
server = MCPServer("sdk-probe-target", version="10.0.0" if V2 else "9.9.9")

if V2:

    @server.tool()
    def add(a: int, b: int, precision: int) -> float:
        """Add two numbers, rounded to ``precision`` digits."""
        return round(a + b, precision)

    @server.tool()
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

else:

    @server.tool()
    def add(a: int, b: int) -> int:  # type: ignore[misc]
        """Add two integers."""
        return a + b

    @server.tool()
    def greet(name: str) -> str:
        """Greet someone by name."""
        return f"hello {name}"


if __name__ == "__main__":
    app = server.streamable_http_app(json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
