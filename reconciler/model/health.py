"""Health verdicts: one vocabulary for objects (as judged by ``reconciler.cluster.health``) and for whole
sets of objects (an environment after a pass), used alike by the health gate, ``reconciler status``, the
status page, history records, metrics and NATS events.

The five verdicts, worst first:

* ``Failed`` — the object is not there (applied, then not found) or its controller reports a terminal
  failure that no retry cures;
* ``Degraded`` — a controller judged it and found it broken;
* ``Progressing`` — a controller is still working on it;
* ``Unverified`` — nobody judged it: no controller writes its status (kagent, kmcp, agentgateway absent),
  no metrics API for an HPA, a status that cannot be read or parsed, a node that stopped reporting.
  Never taken as healthy;
* ``Healthy`` — judged and found healthy.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class HealthState(StrEnum):
    """The verdict on one object or one set of objects (see the module docstring)."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    UNVERIFIED = "Unverified"
    FAILED = "Failed"


#: Worst first: the verdict on a set is its worst member's.
VERDICT_ORDER = (
    HealthState.FAILED,
    HealthState.DEGRADED,
    HealthState.PROGRESSING,
    HealthState.UNVERIFIED,
    HealthState.HEALTHY,
)


#: Object verdicts that waiting does not change by itself: a health gate stops waiting when every object
#: has one (Progressing is the only state a gate waits out).
SETTLED_STATES = frozenset(
    {HealthState.HEALTHY, HealthState.DEGRADED, HealthState.FAILED, HealthState.UNVERIFIED}
)


class ToolContractPolicy(StrEnum):
    """What an environment does when an Agent's tool contract breaks (a tool it names in ``toolNames`` is
    missing from its MCP server, or changed its input schema incompatibly).

    ``enforce``: a pass that would apply such an Agent against an unchanged server is Blocked (nothing
    written) and a promotion into the environment is refused before anything is proposed; ``warn``: the
    same checks are reported (pass message, promotion body) without blocking; ``off``: no checks.
    Health reports a missing tool as ``Degraded`` in every case but ``off``.
    """

    ENFORCE = "enforce"
    WARN = "warn"
    OFF = "off"


class UnverifiedPolicy(StrEnum):
    """What an environment's health gate does with a set whose verdict is ``Unverified``.

    ``fail``: the gate fails (and ``onFailure: revert`` reverts the promotion); ``warn``: the gate passes,
    the outcome is recorded as ``unverified`` and a warning names the missing controllers; ``pass``: the
    same without the warning. In no case is an unjudged object recorded or reported as healthy.
    """

    FAIL = "fail"
    WARN = "warn"
    PASS = "pass"


class HealthStatus(BaseModel):
    """The health of one object with a human-readable reason.

    ``judge`` names who would have judged an ``Unverified`` object (``kagent``, ``kmcp``, ``agentgateway``,
    ``metrics-server``, ``the controller of GatewayClass x``…) so a set's verdict can name what is missing;
    empty otherwise.
    """

    model_config = ConfigDict(frozen=True)

    state: HealthState
    message: str = ""
    judge: str = ""

    @property
    def healthy(self) -> bool:
        """True only for :attr:`HealthState.HEALTHY`."""
        return self.state is HealthState.HEALTHY


class Verdict(BaseModel):
    """The verdict on a set of objects: the worst member's state, the counts by state and, when some
    objects are ``Unverified``, how many and which judges are missing."""

    state: HealthState
    total: int = 0
    counts: dict[str, int] = Field(default_factory=dict, description="objects by state, worst first")
    unverified: int = Field(default=0, description="objects nobody judged")
    missing: list[str] = Field(default_factory=list, description="the judges (controllers) that are missing")
    message: str = ""

    @property
    def healthy(self) -> bool:
        """True only when every object was judged healthy."""
        return self.state is HealthState.HEALTHY


def verdict(health: Mapping[str, HealthStatus]) -> Verdict:
    """The verdict on a set of objects (object name → its health).

    The state is the worst by :data:`VERDICT_ORDER`; an empty set is ``Healthy`` with ``total`` 0. The
    message counts the objects that are not healthy and, for ``Unverified`` ones, names the missing
    judges, e.g. ``13 of 30 objects Unverified (no controller: agentgateway, kagent, kmcp)``.
    """
    counts = {s.value: 0 for s in VERDICT_ORDER}
    for h in health.values():
        counts[h.state.value] += 1
    counts = {k: v for k, v in counts.items() if v}
    state = next((s for s in VERDICT_ORDER if counts.get(s.value)), HealthState.HEALTHY)
    missing = sorted({h.judge for h in health.values() if h.state is HealthState.UNVERIFIED and h.judge})
    unverified = counts.get(HealthState.UNVERIFIED.value, 0)
    total = len(health)
    named = f" (no controller: {', '.join(missing)})" if missing else ""
    parts = [
        f"{n} of {total} objects {s}" + (named if s == HealthState.UNVERIFIED.value else "")
        for s, n in counts.items()
        if s != HealthState.HEALTHY.value
    ]
    message = "; ".join(parts) if parts else f"{total} of {total} objects Healthy"
    return Verdict(
        state=state, total=total, counts=counts, unverified=unverified, missing=missing, message=message
    )


def gate_passes(v: Verdict, policy: UnverifiedPolicy) -> bool:
    """Whether a health gate passes on verdict ``v``: ``Healthy`` passes; ``Unverified`` passes unless
    ``policy`` is ``fail``; every other verdict fails."""
    if v.state is HealthState.HEALTHY:
        return True
    return v.state is HealthState.UNVERIFIED and policy is not UnverifiedPolicy.FAIL
