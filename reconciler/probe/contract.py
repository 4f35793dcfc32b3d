"""The tool contract between kagent Agents and the MCP servers they use: which tools each Agent requires,
whether the servers list them with a compatible input schema, and which tools are newly granted.

An Agent names its tools in ``spec.declarative.tools[]`` entries of ``type: McpServer``:
``mcpServer.{apiGroup, kind, name, namespace, toolNames}`` (agent-platform-formats.md §Agent: kinds
``MCPServer`` — the default, also with an empty group or kind —, ``RemoteMCPServer`` and core
``Service``). An empty ``toolNames`` grants *every* tool the server lists, so a tool added to the server
is granted silently; :func:`check` reports those as new grants.

Pure functions over objects and tool lists (:class:`reconciler.probe.ToolInfo`); no I/O. The gate that
uses them is :mod:`reconciler.probe.gate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reconciler.probe.models import ToolInfo

_KAGENT = "kagent.dev"
_SERVER_KINDS = {"MCPServer": _KAGENT, "RemoteMCPServer": _KAGENT, "Service": ""}


class ServerRef(BaseModel):
    """An MCP server an Agent points at: ``kind`` (``MCPServer``, ``RemoteMCPServer`` or ``Service``),
    ``namespace`` and ``name``."""

    model_config = ConfigDict(frozen=True)

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def group(self) -> str:
        """The API group of the kind (``kagent.dev``, or ``""`` for a Service)."""
        return _SERVER_KINDS.get(self.kind, _KAGENT)


class ToolRequirement(BaseModel):
    """What one Agent requires of one server: ``tools`` by name, or ``None`` for every tool it lists
    (an empty ``toolNames``)."""

    model_config = ConfigDict(frozen=True)

    agent: str = Field(description="namespace/name of the Agent")
    server: ServerRef
    tools: tuple[str, ...] | None = None
    path: str = Field(default="", description="where in the Agent: spec.declarative.tools[i]")

    @property
    def all_tools(self) -> bool:
        """True when the Agent is granted every tool of the server."""
        return self.tools is None


class Violation(BaseModel):
    """A broken contract: ``reason`` is ``missing`` (the server does not list the tool) or ``schema``
    (its input schema changed incompatibly); ``message`` names agent, server and tool."""

    agent: str
    server: str
    tool: str
    reason: str
    message: str


class Grant(BaseModel):
    """Tools an Agent may call after a change that it could not call before."""

    agent: str
    server: str
    tools: list[str]
    all_tools: bool = Field(description="granted because toolNames is empty (every tool of the server)")

    def describe(self) -> str:
        """``ns/agent <- RemoteMCPServer ns/x: a, b (every tool of the server: toolNames is empty)``."""
        tail = " (every tool of the server: toolNames is empty)" if self.all_tools else ""
        return f"{self.agent} <- {self.server}: {', '.join(self.tools)}{tail}"


class ContractReport(BaseModel):
    """The tool contract of a set of Agents against their servers' tool lists."""

    violations: list[Violation] = Field(default_factory=list)
    grants: list[Grant] = Field(default_factory=list)
    unverified: list[str] = Field(
        default_factory=list, description="servers an Agent requires whose tool list nobody could read"
    )
    checked: int = Field(default=0, description="requirements judged against a tool list")

    @property
    def ok(self) -> bool:
        """True when no requirement is broken (unverified servers do not count as broken)."""
        return not self.violations

    def summary(self) -> str:
        """One line: the violations, or how many requirements were checked."""
        if self.violations:
            return "; ".join(v.message for v in self.violations)
        text = f"tool contract holds ({self.checked} requirements checked)"
        if self.unverified:
            text += f"; unverified: {', '.join(self.unverified)}"
        return text


def requirements(objects: Iterable[Mapping[str, Any]], *, namespace: str = "") -> list[ToolRequirement]:
    """The tool requirements of every kagent Agent in ``objects`` (other objects are skipped).

    ``namespace`` fills in Agents and references without one (the environment's namespace). A reference
    without ``kind`` (or with kind ``MCPServer`` and an empty group) is an ``MCPServer``; unknown kinds
    are skipped, as the kagent translator rejects them. Malformed entries (not a mapping, no name) are
    skipped: the API server's schema rejects them before any Agent could run.
    """
    out: list[ToolRequirement] = []
    for obj in objects:
        api = str(obj.get("apiVersion") or "")
        if obj.get("kind") != "Agent" or api.split("/")[0] != _KAGENT:
            continue
        meta = obj.get("metadata") or {}
        agent_ns = str(meta.get("namespace") or namespace)
        agent = f"{agent_ns}/{meta.get('name') or ''}"
        spec = obj.get("spec") or {}
        declarative = spec.get("declarative") if isinstance(spec, Mapping) else None
        tools = declarative.get("tools") if isinstance(declarative, Mapping) else None
        if not isinstance(tools, list):
            continue
        for i, tool in enumerate(tools):
            if not isinstance(tool, Mapping):
                continue
            ref = tool.get("mcpServer")
            if not isinstance(ref, Mapping) or not ref.get("name"):
                continue
            kind = str(ref.get("kind") or "MCPServer")
            if kind not in _SERVER_KINDS:
                continue
            names = ref.get("toolNames")
            wanted = tuple(str(n) for n in names) if isinstance(names, list) and names else None
            server = ServerRef(
                kind=kind, namespace=str(ref.get("namespace") or agent_ns), name=str(ref["name"])
            )
            path = f"spec.declarative.tools[{i}]"
            out.append(ToolRequirement(agent=agent, server=server, tools=wanted, path=path))
    return out


def _types(schema: Any) -> frozenset[str] | None:
    """The JSON types a (sub)schema admits, or ``None`` when it does not say (any type)."""
    if not isinstance(schema, Mapping):
        return None
    t = schema.get("type")
    if isinstance(t, str):
        out = {t}
    elif isinstance(t, list) and all(isinstance(x, str) for x in t):
        out = set(t)
    else:
        return None
    if "number" in out:
        out.add("integer")  # every integer is a number
    return frozenset(out)


def _props(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, Mapping) else {}


def _type_names(types: frozenset[str]) -> str:
    return "|".join(sorted(types - {"integer"} if "number" in types else types))


def schema_changes(old: Mapping[str, Any], new: Mapping[str, Any], path: str = "") -> list[str]:
    """Incompatible changes from input schema ``old`` to ``new`` (JSON Schema objects as ``tools/list``
    gives them), for a caller that sends arguments valid under ``old``: a parameter newly ``required``,
    a parameter whose ``type`` admits fewer JSON types, a parameter removed while the new schema forbids
    unknown ones (``additionalProperties: false``), and the same for nested object parameters. Adding an
    optional parameter, a description or a wider type is compatible. Returns one phrase per change
    (``new required parameter 'x'``), empty when compatible."""
    out: list[str] = []
    where = f" in {path!r}" if path else ""
    old_types, new_types = _types(old), _types(new)
    if new_types is not None and (old_types is None or not old_types <= new_types):
        before = "any" if old_types is None else _type_names(old_types)
        after = _type_names(new_types)
        out.append(f"type{where} changed from {before} to {after}")
        return out
    old_props = _props(old)
    new_props = _props(new)
    old_req = {str(r) for r in old.get("required") or [] if isinstance(r, str)}
    new_req = [str(r) for r in new.get("required") or [] if isinstance(r, str)]
    prefix = f"{path}." if path else ""
    for name in new_req:
        if name not in old_req:
            out.append(f"new required parameter {prefix + name!r}")
    if new.get("additionalProperties") is False:
        for name in old_props:
            if name not in new_props:
                out.append(f"parameter {prefix + name!r} removed (unknown parameters are refused)")
    for name, sub in old_props.items():
        if name in new_props and isinstance(sub, Mapping) and isinstance(new_props[name], Mapping):
            out.extend(schema_changes(sub, new_props[name], prefix + name))
    return out


ToolLists = Mapping[ServerRef, list[ToolInfo] | None]
"""Each server's tool list (``None``: nobody could read it)."""


def _grants_of(req: ToolRequirement, tools: list[ToolInfo] | None) -> set[str]:
    if req.tools is not None:
        return set(req.tools)
    return {t.name for t in tools or []}


def check(
    after: Iterable[ToolRequirement],
    tools: ToolLists,
    *,
    before: Iterable[ToolRequirement] | None = None,
    tools_before: ToolLists | None = None,
) -> ContractReport:
    """Check the requirements ``after`` a change against the servers' tool lists ``tools`` (what the
    servers will list after it).

    With ``tools_before`` (the lists before the change), also report incompatible input-schema changes of
    required tools (:func:`schema_changes`). With ``before`` (the requirements before the change), also
    report the tools each Agent is newly granted: named in ``toolNames`` now and not before, or, with an
    empty ``toolNames``, listed by the server now and not before (``tools_before``).
    """
    report = ContractReport()
    old_lists = tools_before or {}
    old_grants: dict[tuple[str, ServerRef], set[str]] = {}
    for req in before or ():
        key = (req.agent, req.server)
        old_grants.setdefault(key, set()).update(_grants_of(req, old_lists.get(req.server)))
    unverified: list[str] = []
    for req in after:
        listed = tools.get(req.server)
        if listed is None:
            if str(req.server) not in unverified:
                unverified.append(str(req.server))
            continue
        by_name = {t.name: t for t in listed}
        previous = {t.name: t for t in old_lists.get(req.server) or []}
        report.checked += 1
        for name in req.tools or ():
            tool = by_name.get(name)
            old = previous.get(name)
            why = ""
            if tool is None:
                why = f"which does not list it ({len(listed)} tools listed)"
            elif old is not None and old.schema_sha256 != tool.schema_sha256:
                changes = schema_changes(old.input_schema, tool.input_schema)
                if changes:
                    why = f"whose input schema changed incompatibly: {'; '.join(changes)}"
            if why:
                report.violations.append(
                    Violation(
                        agent=req.agent,
                        server=str(req.server),
                        tool=name,
                        reason="missing" if tool is None else "schema",
                        message=f"Agent {req.agent} requires tool {name!r} of {req.server}, {why}",
                    )
                )
        if before is not None:
            new = sorted(_grants_of(req, listed) - old_grants.get((req.agent, req.server), set()))
            if new:
                report.grants.append(
                    Grant(agent=req.agent, server=str(req.server), tools=new, all_tools=req.tools is None)
                )
    report.unverified = unverified
    return report


def tool_names_of(obj: Mapping[str, Any]) -> list[str] | None:
    """A kagent RemoteMCPServer's ``status.discoveredTools`` names (what kagent last listed, refreshed
    every 60 s and kept on failure), or ``None`` when the status has none."""
    status = obj.get("status")
    if not isinstance(status, Mapping):
        return None
    tools = status.get("discoveredTools")
    if not isinstance(tools, list) or not tools:
        return None
    return [str(t.get("name")) for t in tools if isinstance(t, Mapping) and t.get("name")]


__all__ = [
    "ContractReport",
    "Grant",
    "ServerRef",
    "ToolLists",
    "ToolRequirement",
    "Violation",
    "check",
    "requirements",
    "schema_changes",
    "tool_names_of",
]
