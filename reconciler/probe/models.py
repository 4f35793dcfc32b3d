"""Results of protocol probes (MCP, A2A): what a probe saw and its verdict, in the project's health
vocabulary (:class:`reconciler.model.HealthState`). Pure data, no I/O."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reconciler.model.health import HealthState
from reconciler.probe.defaults import (
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_TOOLS,
    DEFAULT_TIMEOUT,
)

__all__ = [
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_TOOLS",
    "DEFAULT_TIMEOUT",
    "A2AProbeResult",
    "McpProbeResult",
    "ProbeLimits",
    "SkillInfo",
    "ToolInfo",
]


class ProbeLimits(BaseModel):
    """Bounds of one probe: total time (seconds), the size of one response (bytes), and how far a
    ``tools/list`` pagination is followed (pages, tools)."""

    model_config = ConfigDict(frozen=True)

    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, description="seconds for the whole probe")
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, gt=0, description="bytes")
    max_tools: int = Field(default=DEFAULT_MAX_TOOLS, gt=0)
    max_pages: int = Field(default=DEFAULT_MAX_PAGES, gt=0)


class ToolInfo(BaseModel):
    """One tool as ``tools/list`` described it; ``schema_sha256`` is the SHA-256 (hex) of its input
    schema serialised as canonical JSON (sorted keys, no spaces, UTF-8); ``input_schema`` is the schema
    itself (JSON Schema, as listed; bounded by the probe's response cap), which the tool-contract gate
    compares across versions."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    schema_sha256: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)


class McpProbeResult(BaseModel):
    """What an MCP probe found.

    ``state`` is ``Healthy`` only when the handshake (``initialize`` or ``server/discover``) and the whole
    ``tools/list`` pagination succeeded within the time budget; otherwise ``Failed`` (no usable MCP
    handshake: unreachable, HTTP error, malformed JSON-RPC, timeout, oversize response) or ``Degraded``
    (the handshake worked, the listing did not: cursor loop, too many tools or pages, error or timeout
    while listing). ``reason`` says why in one line; it never contains request headers.
    ``latency`` is the wall time of the whole probe in seconds. ``transport`` is ``streamable-http`` or
    ``sse``; ``era`` is ``stateless`` (2026-07-28 ``server/discover``) or ``handshake`` (``initialize``).
    """

    url: str
    state: HealthState
    reason: str = ""
    transport: str = ""
    era: str = ""
    protocol_version: str = ""
    server_name: str = ""
    server_version: str = ""
    capabilities: list[str] = Field(default_factory=list, description="server capability names")
    tools: list[ToolInfo] = Field(default_factory=list)
    pages: int = 0
    latency: float = Field(default=0.0, description="seconds")

    @property
    def healthy(self) -> bool:
        """True only for ``Healthy``."""
        return self.state is HealthState.HEALTHY

    def summary(self) -> dict[str, object]:
        """The command line's JSON shape: ``protocolVersion``, ``serverInfo`` {name, version}, ``tools``
        [{name, description}], plus ``state``, ``reason`` and ``latency`` (seconds)."""
        return {
            "protocolVersion": self.protocol_version,
            "serverInfo": {"name": self.server_name, "version": self.server_version},
            "tools": [{"name": t.name, "description": t.description} for t in self.tools],
            "state": self.state.value,
            "reason": self.reason,
            "transport": self.transport,
            "latency": round(self.latency, 4),
        }


class SkillInfo(BaseModel):
    """One skill of an A2A agent card."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)


class A2AProbeResult(BaseModel):
    """What an A2A agent-card probe found.

    ``state`` is ``Healthy`` when a card was fetched, parsed as an A2A ``AgentCard`` and (when expected
    skills were given) lists every expected skill id; ``Degraded`` when the card is valid but skills are
    missing (``missing_skills``); ``Failed`` otherwise (unreachable, HTTP error, not JSON, not a card,
    oversize, timeout). ``card_path`` is the well-known path that answered.
    """

    url: str
    state: HealthState
    reason: str = ""
    card_path: str = ""
    name: str = ""
    description: str = ""
    version: str = ""
    protocol_versions: list[str] = Field(default_factory=list)
    skills: list[SkillInfo] = Field(default_factory=list)
    missing_skills: list[str] = Field(default_factory=list)
    latency: float = Field(default=0.0, description="seconds")

    @property
    def healthy(self) -> bool:
        """True only for ``Healthy``."""
        return self.state is HealthState.HEALTHY

    def summary(self) -> dict[str, object]:
        """The command line's JSON shape for an agent card."""
        return {
            "name": self.name,
            "version": self.version,
            "protocolVersions": self.protocol_versions,
            "skills": [{"id": s.id, "name": s.name, "description": s.description} for s in self.skills],
            "missingSkills": self.missing_skills,
            "cardPath": self.card_path,
            "state": self.state.value,
            "reason": self.reason,
            "latency": round(self.latency, 4),
        }
