"""reconciler as an MCP server: agents read GitOps state and propose changes through Git.

:mod:`reconciler.mcpserver.server` builds the server (the official ``mcp`` SDK's ``MCPServer``, both
protocol eras), :mod:`~reconciler.mcpserver.tools` holds what each tool does (reusing the code behind
``reconciler status``/``history``/``diff``/``build``/``promote``/``rollback``),
:mod:`~reconciler.mcpserver.access` who may call what, and :mod:`~reconciler.mcpserver.audit` how write
calls are recorded (Git notes, NATS). Nothing here imports the SDK at package import time.
"""
