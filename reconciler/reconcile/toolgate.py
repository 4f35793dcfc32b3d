"""The tool-contract gate: Agents' required MCP tools checked before an apply and before a promotion.

Before an apply (:func:`apply_check`): every tool an Agent of the desired set names in ``toolNames`` must
be listed by its server — as a probe lists it now, or as a RemoteMCPServer's ``status.discoveredTools``
says when no probe reaches it. Servers the revision itself changes (the server object, or the workload
behind it: a Deployment, StatefulSet or MCPServer named like the Service its URL names) are skipped,
since nobody can list the tools of a version before it runs; the health gate judges them after the
apply (a missing tool makes the Agent ``Degraded``).

Before a promotion (:func:`promotion_check`): a promotion makes the target run the source's versions,
so each server the promotion changes is judged by the tools the *source* environment's server of the
same kind and name lists (the version being promoted runs there), and every other server by the
target's own. The input schemas of the tools the target's Agents require are compared with the target's
current ones (:func:`reconciler.probe.contract.schema_changes`), and tools newly granted to an Agent —
above all through an empty ``toolNames``, which grants every tool a server adds — are listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from reconciler.cluster.manager import digest
from reconciler.probe.contract import ContractReport, ServerRef, ToolRequirement, check, requirements
from reconciler.probe.models import ToolInfo
from reconciler.probe.service import ProbeService

Objects = list[dict[str, Any]]
LiveLookup = Callable[[ServerRef], Mapping[str, Any] | None]
"""Reads the live object of a server (``None``: absent or unreadable)."""

_WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "MCPServer"})


def _key(obj: Mapping[str, Any], namespace: str) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind") or ""), str(meta.get("namespace") or namespace), str(meta.get("name") or ""))


def _index(
    objects: Iterable[Mapping[str, Any]], namespace: str
) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    return {_key(o, namespace): o for o in objects}


def _server_key(server: ServerRef) -> tuple[str, str, str]:
    return (server.kind, server.namespace, server.name)


def backing(server: Mapping[str, Any], namespace: str) -> list[tuple[str, str, str]]:
    """Keys (kind, namespace, name) of the objects whose change changes what ``server`` lists: the server
    itself and, for a RemoteMCPServer whose URL names an in-cluster Service (``name.ns.svc…``), the
    workloads named like that Service."""
    kind, ns, name = _key(server, namespace)
    out = [(kind, ns, name)]
    if kind == "RemoteMCPServer":
        url = (server.get("spec") or {}).get("url")
        host = (urlsplit(url).hostname or "") if isinstance(url, str) else ""
        labels = host.split(".")
        if len(labels) >= 2 and (len(labels) == 2 or labels[2] == "svc"):
            out += [(k, labels[1], labels[0]) for k in _WORKLOAD_KINDS]
    elif kind == "Service":
        out += [(k, ns, name) for k in _WORKLOAD_KINDS]
    return out


def _changed(
    server: Mapping[str, Any],
    namespace: str,
    before: Mapping[tuple[str, str, str], str],
    after: Mapping[tuple[str, str, str], str],
) -> bool:
    return any(before.get(k) != after.get(k) for k in backing(server, namespace))


def _tools_of(
    probes: ProbeService, rendered: Mapping[str, Any] | None, live: Mapping[str, Any] | None
) -> list[ToolInfo] | None:
    """The server's tools: a probe of the rendered object's endpoint, else the live object's
    ``discoveredTools``."""
    if rendered is not None:
        result = probes.mcp(rendered)
        if result is not None and result.healthy:
            return list(result.tools)
    if live is not None:
        listed, _ = probes.tools(live)
        return listed
    return None


def apply_check(
    probes: ProbeService,
    desired: Objects,
    *,
    namespace: str,
    applied_digests: Mapping[str, str],
    refs: Mapping[tuple[str, str, str], str],
    live: LiveLookup | None = None,
) -> ContractReport:
    """The contract of the desired set's Agents against the tools their servers list now.

    Args:
        probes: the probe service (its cache makes repeated checks free within its TTL).
        desired: the rendered, namespaced desired objects.
        namespace: the environment's default namespace.
        applied_digests: the inventory's digests of the last applied revision, by ``str(ref)``.
        refs: ``str(ref)`` of each desired object by (kind, namespace, name).
        live: reads a server's live object, for ``status.discoveredTools`` and for servers outside the
            desired set.
    """
    index = _index(desired, namespace)
    after = {k: digest(dict(o)) for k, o in index.items()}
    before = {k: applied_digests.get(refs.get(k, ""), "") for k in index}
    reqs: list[ToolRequirement] = []
    lists: dict[ServerRef, list[ToolInfo] | None] = {}
    skipped: list[str] = []
    probes.prefetch(
        (o for o in desired if o.get("kind") in ("RemoteMCPServer", "MCPServer", "Service")), namespace
    )
    for req in requirements(desired, namespace=namespace):
        if req.tools is None:
            continue
        rendered = index.get(_server_key(req.server))
        if rendered is not None and _changed(rendered, namespace, before, after):
            skipped.append(str(req.server))
            continue
        if req.server not in lists:
            found = _tools_of(probes, rendered, None)
            if found is None and live is not None:  # no probe answered: the live object's discoveredTools
                current = live(req.server)
                found = _tools_of(probes, None if rendered else current, current)
            lists[req.server] = found
        reqs.append(req)
    report = check(reqs, lists)
    report.unverified += [s for s in dict.fromkeys(skipped) if s not in report.unverified]
    return report


def promotion_check(
    probes: ProbeService,
    *,
    source: Objects,
    source_namespace: str,
    target_before: Objects,
    target_after: Objects,
    target_namespace: str,
    live: LiveLookup | None = None,
) -> ContractReport:
    """The contract of the target's Agents after a promotion (see the module docstring).

    Args:
        probes: the probe service.
        source: the source environment rendered at the promoted revision.
        source_namespace: its default namespace.
        target_before: the target rendered at the branch head.
        target_after: the target rendered with the promotion's change.
        target_namespace: the target's default namespace.
        live: reads a server's live object (``status.discoveredTools`` when no probe reaches it).
    """
    src = _index(source, source_namespace)
    tb = _index(target_before, target_namespace)
    ta = _index(target_after, target_namespace)
    dig_before = {k: digest(dict(o)) for k, o in tb.items()}
    dig_after = {k: digest(dict(o)) for k, o in ta.items()}
    servers = [
        o
        for o in [*source, *target_before, *target_after]
        if o.get("kind") in ("RemoteMCPServer", "MCPServer", "Service")
    ]
    probes.prefetch(servers)
    reqs_after = requirements(target_after, namespace=target_namespace)
    reqs_before = requirements(target_before, namespace=target_namespace)
    after_lists: dict[ServerRef, list[ToolInfo] | None] = {}
    before_lists: dict[ServerRef, list[ToolInfo] | None] = {}
    for req in [*reqs_after, *reqs_before]:
        s = req.server
        if s in before_lists:
            continue
        key = _server_key(s)
        current = live(s) if live is not None else None
        before_lists[s] = _tools_of(probes, tb.get(key) or current, current)
        rendered = ta.get(key)
        if rendered is not None and _changed(rendered, target_namespace, dig_before, dig_after):
            # the promoted version runs in the source: the same kind and name there
            counterpart = next(
                (o for k, o in src.items() if k[0] == s.kind and k[2] == s.name),
                None,
            )
            after_lists[s] = _tools_of(probes, counterpart, None) if counterpart is not None else None
        else:
            after_lists[s] = before_lists[s]
    return check(reqs_after, after_lists, before=reqs_before, tools_before=before_lists)
