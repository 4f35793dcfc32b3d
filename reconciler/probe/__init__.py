"""Protocol health probes: speak to an MCP server or an A2A agent the way a client would and judge it
with the project's verdicts (Healthy, Degraded, Failed). Imports only :mod:`reconciler.model` and
:mod:`reconciler.errors`, so ``cluster`` and ``reconcile`` can both use it.

* :func:`probe_mcp` — handshake (``server/discover`` or ``initialize``) and the whole ``tools/list``;
* :func:`probe_a2a` — the agent card at ``/.well-known/agent-card.json`` (or ``agent.json``).

Every name here is imported on first use: ``a2a-sdk`` (protobuf) costs about half a second to import,
which the daemon's passes should not pay when no agent card is probed, and ``mcp_types``, ``aiohttp``
and pydantic are not needed by the commands that do not probe (the command line imports only
:mod:`reconciler.probe.defaults`, for the defaults ``reconciler probe --help`` shows).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.probe.a2a import probe_a2a
    from reconciler.probe.mcp import probe_mcp, schema_digest
    from reconciler.probe.models import A2AProbeResult, McpProbeResult, ProbeLimits, SkillInfo, ToolInfo

#: Where each public name lives.
_HOMES = {
    "A2AProbeResult": "reconciler.probe.models",
    "McpProbeResult": "reconciler.probe.models",
    "ProbeLimits": "reconciler.probe.models",
    "SkillInfo": "reconciler.probe.models",
    "ToolInfo": "reconciler.probe.models",
    "probe_a2a": "reconciler.probe.a2a",
    "probe_mcp": "reconciler.probe.mcp",
    "schema_digest": "reconciler.probe.mcp",
}

__all__ = [
    "A2AProbeResult",
    "McpProbeResult",
    "ProbeLimits",
    "SkillInfo",
    "ToolInfo",
    "probe_a2a",
    "probe_mcp",
    "schema_digest",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
