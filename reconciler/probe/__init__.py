"""Protocol health probes: speak to an MCP server or an A2A agent the way a client would and judge it
with the project's verdicts (Healthy, Degraded, Failed). Imports only :mod:`reconciler.model` and
:mod:`reconciler.errors`, so ``cluster`` and ``reconcile`` can both use it.

* :func:`probe_mcp` — handshake (``server/discover`` or ``initialize``) and the whole ``tools/list``;
* :func:`probe_a2a` — the agent card at ``/.well-known/agent-card.json`` (or ``agent.json``).

``probe_a2a`` is imported on first use: ``a2a-sdk`` (protobuf) costs about half a second to import, which
the daemon's passes should not pay when no agent card is probed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.probe.mcp import probe_mcp, schema_digest
from reconciler.probe.models import A2AProbeResult, McpProbeResult, ProbeLimits, SkillInfo, ToolInfo

if TYPE_CHECKING:
    from reconciler.probe.a2a import probe_a2a

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
    if name == "probe_a2a":
        from reconciler.probe.a2a import probe_a2a

        return probe_a2a
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
