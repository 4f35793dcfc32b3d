"""Protocol probe gates of a rollout step (``analysis.probes`` in ``envs/<env>.yaml``): each sample probes
the canary Service now, with the daemon's :class:`~reconciler.probe.service.ProbeService` (MCP: handshake
and complete ``tools/list``, either protocol era; A2A: the agent card), and judges it like a query sample:

* ``Passed``: the probe is ``Healthy`` and, for MCP with ``tools: true``, the canary lists every tool the
  stable version lists, each with an input schema that accepts what the old one accepted
  (:func:`reconciler.probe.contract.schema_changes`);
* ``Failed``: the canary answered badly (``Failed``/``Degraded`` probe), or dropped or broke a tool;
* ``Inconclusive``: the canary's in-cluster URL leads nowhere from here (no ``RECONCILER_PROBE_ADDRESSES``
  entry and no ``RECONCILER_PROBE_DIRECT``): no evidence, so the step pauses rather than promote;
* ``Error``: the canary Service declares no port of the gate's protocol (a definition error).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from reconciler.model.rollout import ProbeGate, ProbeProtocol, Sample, SampleOutcome
from reconciler.probe.contract import schema_changes
from reconciler.probe.models import McpProbeResult
from reconciler.probe.service import ProbeService, a2a_target, mcp_target


def _sample(gate: ProbeGate, what: str, outcome: SampleOutcome, message: str) -> Sample:
    return Sample(query=gate.name, promql=what, outcome=outcome, message=message, at=time.time())


def tool_changes(stable: McpProbeResult, canary: McpProbeResult) -> list[str]:
    """What the canary breaks of the stable version's tools: one phrase per dropped tool or incompatible
    input schema (empty when every stable tool is kept compatibly)."""
    new = {t.name: t for t in canary.tools}
    out: list[str] = []
    for old in stable.tools:
        tool = new.get(old.name)
        if tool is None:
            out.append(f"tool {old.name!r} dropped")
            continue
        out.extend(f"tool {old.name!r}: {c}" for c in schema_changes(old.input_schema, tool.input_schema))
    return out


async def probe_sample(
    gate: ProbeGate,
    canary: Mapping[str, Any],
    stable: Mapping[str, Any] | None,
    probes: ProbeService | None,
    namespace: str = "",
) -> Sample:
    """One sample of ``gate``: probe the canary Service ``canary`` (and, for the tool comparison, the
    stable Service ``stable``) now. Never raises for what a server does (see the module docstring)."""
    mcp, a2a = mcp_target(canary, namespace), a2a_target(canary, namespace)
    name = str((canary.get("metadata") or {}).get("name") or "")
    proto = gate.protocol
    if proto is ProbeProtocol.AUTO:
        proto = ProbeProtocol.MCP if mcp is not None else ProbeProtocol.A2A
    url = mcp.url if proto is ProbeProtocol.MCP and mcp is not None else a2a.url if a2a is not None else ""
    what = f"{proto.value} probe of {url or 'Service ' + name}"
    if not url or (proto is ProbeProtocol.A2A and a2a is None):
        return _sample(
            gate, what, SampleOutcome.ERROR,
            f"Service {name} has no port with an {proto.value.upper()} appProtocol to probe",
        )  # fmt: skip
    if probes is None or probes.address(url) is None:
        return _sample(
            gate, what, SampleOutcome.INCONCLUSIVE,
            f"no evidence: {url} leads nowhere from here "
            "(set RECONCILER_PROBE_ADDRESSES, or RECONCILER_PROBE_DIRECT=true in-cluster)",
        )  # fmt: skip
    if proto is ProbeProtocol.A2A:
        card = await probes.fresh_a2a(canary, namespace)
        if card is None or not card.healthy:
            reason = card.reason if card is not None else "not probed"
            state = card.state.value if card is not None else "Unknown"
            return _sample(gate, what, SampleOutcome.FAILED, f"A2A card {state}: {reason}"[:300])
        return _sample(
            gate, what, SampleOutcome.PASSED, f"A2A card Healthy: {card.name} {card.version}".strip()
        )
    result = await probes.fresh_mcp(canary, namespace)
    if result is None or not result.healthy:
        reason = result.reason if result is not None else "not probed"
        state = result.state.value if result is not None else "Unknown"
        return _sample(gate, what, SampleOutcome.FAILED, f"MCP probe {state}: {reason}"[:300])
    done = f"MCP probe Healthy: {len(result.tools)} tool(s), {result.era or 'unknown'} era"
    if gate.tools and stable is not None:
        old = await probes.fresh_mcp(stable, namespace)
        if old is not None and old.healthy:
            broken = tool_changes(old, result)
            if broken:
                return _sample(
                    gate, what, SampleOutcome.FAILED,
                    f"the canary breaks the stable version's tools: {'; '.join(broken)}"[:300],
                )  # fmt: skip
            done += f"; keeps the stable version's {len(old.tools)} tool(s)"
        else:
            done += "; stable version not probed, tools not compared"
    return _sample(gate, what, SampleOutcome.PASSED, done)
