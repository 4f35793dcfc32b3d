"""Progressive delivery settings: ``rollouts:`` in ``envs/<env>.yaml``, one entry per app::

    rollouts:
    - app: clock-mcp                      # the Deployment (and Service) whose new version is rolled out
      route: clock                        # the HTTPRoute (same namespace) whose backendRefs carry the split
      strategy:
        canary:
          steps: [10, 25, 50, 100]        # canary weight (percent of requests) per step
          interval: 30                    # seconds per step: one analysis of every query per interval
          headerMatch: {name: x-canary, value: always}   # optional: this header always reaches the canary
          split: weights                  # or replicas: session affinity for stateful MCP servers
      analysis:
        prometheus: http://127.0.0.1:9090
        queries:
        - name: error-rate
          query: |
            sum(rate(agentgateway_requests_total{route="{{route}}",backend=~".*{{canary}}.*",status=~"5.."}[1m]))
            / sum(rate(agentgateway_requests_total{route="{{route}}",backend=~".*{{canary}}.*"}[1m]))
          max: 0.05
          failureLimit: 1
        probes:                           # protocol probes of the canary Service, gates like the queries
        - name: protocol

The vocabulary follows Flagger's ``Canary`` (``analysis.interval``, ``threshold``, ``stepWeights``,
``metrics[].thresholdRange.{min,max}``; https://docs.flagger.app/usage/how-it-works) and Argo Rollouts'
``AnalysisTemplate`` (``failureLimit``, ``inconclusiveLimit``; https://argo-rollouts.readthedocs.io/en/
stable/features/analysis/). As in Flagger, **an empty or NaN result is a failure** unless the query says
``onEmpty: inconclusive`` (the step pauses, as Argo Rollouts' ``Inconclusive``) or ``onEmpty: pass``.
Query templates may use ``{{environment}}``, ``{{namespace}}``, ``{{app}}``, ``{{route}}``, ``{{stable}}``
and ``{{canary}}`` (the Service names); an unknown placeholder is refused when the file is loaded.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: The placeholders a query template may use.
PLACEHOLDERS = frozenset({"environment", "namespace", "app", "route", "stable", "canary"})


class OnEmpty(StrEnum):
    """What an empty or NaN query result counts as."""

    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    PASS = "pass"


class HeaderMatch(BaseModel):
    """Requests carrying this header value always reach the canary (A/B by header, Gateway API
    ``HTTPRouteMatch.headers`` exact match)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$", description="HTTP header name")
    value: str = Field(min_length=1)


class Split(StrEnum):
    """How a canary's share of traffic is made.

    * ``weights``: per-request weights on the HTTPRoute rule (``backendRefs[].weight``). The gateway picks
      a backend for every request, so a stateful MCP session (``Mcp-Session-Id``) or a multi-turn A2A task
      may land on the other version: use it for stateless servers (agentgateway ``sessionRouting:
      Stateless``; MCP 2026-07-28 servers keep no session).
    * ``replicas``: session affinity. The canary's pods also join the stable Service, and the share is
      the canary's fraction of the pods (approximate, by endpoint count); the route is left as Git has it.
      A gateway that pins each session to the pod it first reached (agentgateway's default
      ``sessionRouting: Stateful`` keys sessions by its ``mcp-session-id`` header) keeps every session on
      one version for its whole life.
    """

    WEIGHTS = "weights"
    REPLICAS = "replicas"


class CanaryStrategy(BaseModel):
    """Shift traffic to the new version in weighted steps, analysing each step."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    steps: list[int] = Field(
        min_length=1, description="canary weight per step, percent, increasing, ending at 100"
    )
    interval: float = Field(default=30.0, gt=0, description="seconds per step")
    header_match: HeaderMatch | None = Field(default=None, alias="headerMatch")
    split: Split = Field(
        default=Split.WEIGHTS,
        description="weights: per-request HTTPRoute weights (stateless servers); replicas: the canary's "
        "share of the pods behind the stable Service, so a gateway that pins sessions to pods keeps each "
        "MCP session on one version (session affinity)",
    )

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[int]) -> list[int]:
        for i, w in enumerate(value):
            if not 0 < w <= 100:
                raise ValueError(f"steps[{i}] = {w}: a weight is a percentage in 1..100")
            if i and w <= value[i - 1]:
                raise ValueError(f"steps[{i}] = {w}: weights must increase (after {value[i - 1]})")
        if value[-1] != 100:
            raise ValueError(f"the last step is {value[-1]}: it must be 100 (the canary takes all traffic)")
        return value


class BlueGreenStrategy(BaseModel):
    """Run the new version beside the old, reachable first by the preview header only; then switch all
    traffic at once, keeping the old version for ``scaleDownDelay`` seconds."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    preview: HeaderMatch = Field(
        description="requests with this header reach the new version before the switch"
    )
    preview_duration: float = Field(default=60.0, gt=0, alias="previewDuration", description="seconds")
    scale_down_delay: float = Field(default=30.0, ge=0, alias="scaleDownDelay", description="seconds")


class Strategy(BaseModel):
    """Exactly one of ``canary`` or ``blueGreen``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = Field(default=None, alias="blueGreen")

    @model_validator(mode="after")
    def _exactly_one(self) -> Strategy:
        if (self.canary is None) == (self.blue_green is None):
            raise ValueError("set exactly one of canary or blueGreen")
        return self


class GateLimits(BaseModel):
    """How often a gate (query or probe) is sampled and how many bad samples a step tolerates."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    interval: float | None = Field(
        default=None, gt=0, description="seconds between samples (default: the step's)"
    )
    failure_limit: int = Field(default=0, ge=0, alias="failureLimit", description="failed samples tolerated")
    inconclusive_limit: int = Field(
        default=0,
        ge=0,
        alias="inconclusiveLimit",
        description="inconclusive samples (no evidence: Prometheus or the canary not reachable) tolerated "
        "before pausing",
    )


class AnalysisQuery(GateLimits):
    """One PromQL gate: its value must stay within ``min``/``max``."""

    name: str = Field(pattern=_NAME_RE.pattern, max_length=63)
    query: str = Field(min_length=1, description="PromQL; an instant vector or scalar with one value")
    max: float | None = None
    min: float | None = None
    on_empty: OnEmpty = Field(
        default=OnEmpty.FAIL,
        alias="onEmpty",
        description="what an empty or NaN result counts as: fail (default, as Flagger), inconclusive, pass",
    )

    @model_validator(mode="after")
    def _bounds(self) -> AnalysisQuery:
        if self.max is None and self.min is None:
            raise ValueError(f"query {self.name!r}: set max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"query {self.name!r}: min {self.min} is above max {self.max}")
        unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(self.query)} - PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"query {self.name!r}: unknown placeholder(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(PLACEHOLDERS))})"
            )
        return self


class ProbeProtocol(StrEnum):
    """Which protocol a probe gate speaks to the canary."""

    AUTO = "auto"
    MCP = "mcp"
    A2A = "a2a"


class ProbeGate(GateLimits):
    """A protocol probe of the canary, a gate of the same kind as a query: each sample probes the canary
    Service (MCP: handshake and complete ``tools/list``; A2A: the agent card) and passes only when it is
    ``Healthy`` and, with ``tools``, lists every tool the stable version lists with a compatible input
    schema (:func:`reconciler.probe.contract.schema_changes`)."""

    name: str = Field(default="protocol", pattern=_NAME_RE.pattern, max_length=63)
    protocol: ProbeProtocol = Field(
        default=ProbeProtocol.AUTO, description="auto: from the canary Service's port appProtocol"
    )
    tools: bool = Field(
        default=True, description="MCP: the canary must keep the stable version's tools and their schemas"
    )


class Analysis(BaseModel):
    """Where and what to measure at each step."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prometheus: str | None = Field(
        default=None, description="Prometheus base URL (default: the daemon's --prometheus setting)"
    )
    timeout: float = Field(default=5.0, gt=0, description="seconds per query")
    initial_delay: float = Field(
        default=0.0,
        ge=0,
        alias="initialDelay",
        description="seconds after each step starts before its first sample (traffic and scrapes need "
        "time to show the new weights; as Argo Rollouts' initialDelay)",
    )
    queries: list[AnalysisQuery] = Field(default_factory=list)
    probes: list[ProbeGate] = Field(
        default_factory=list, description="protocol probes of the canary, gates like the queries"
    )

    @model_validator(mode="after")
    def _unique(self) -> Analysis:
        seen: set[str] = set()
        for g in self.gates:
            if g.name in seen:
                raise ValueError(f"gate name {g.name!r} is used twice (queries and probes share names)")
            seen.add(g.name)
        return self

    @property
    def gates(self) -> list[AnalysisQuery | ProbeGate]:
        """Every gate of a step: the queries, then the probes."""
        return [*self.queries, *self.probes]


class RolloutSpec(BaseModel):
    """How one app's new versions reach this environment's traffic."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    app: str = Field(pattern=_NAME_RE.pattern, max_length=63, description="the Deployment and Service name")
    route: str = Field(
        pattern=_NAME_RE.pattern, max_length=253, description="the HTTPRoute carrying the split"
    )
    rule: int = Field(default=0, ge=0, description="index of the route rule whose backendRefs are weighted")
    service: str | None = Field(default=None, description="the stable Service (default: app)")
    strategy: Strategy
    analysis: Analysis = Field(default_factory=Analysis)

    @property
    def stable_service(self) -> str:
        """The Service that fronts the stable version."""
        return self.service or self.app

    @property
    def canary_name(self) -> str:
        """The name of the canary Deployment and Service (``<app>-canary``)."""
        return f"{self.app}-canary"


class SampleOutcome(StrEnum):
    """How one sample of one query came out."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class Sample(BaseModel):
    """One evaluation of one query: the PromQL sent, the value read (``None``: empty/NaN/none) and why."""

    query: str = Field(description="the query's name")
    promql: str
    value: float | None = None
    outcome: SampleOutcome
    message: str
    at: float = Field(description="UNIX seconds")

    def describe(self) -> str:
        """``error-rate = 0.12 (max 0.05): Failed`` style line."""
        return f"{self.query}: {self.message}"


class RolloutPhase(StrEnum):
    """Where a rollout is."""

    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    ABORTED = "Aborted"


ACTIVE = frozenset({RolloutPhase.PROGRESSING, RolloutPhase.PAUSED})


class RolloutState(BaseModel):
    """One app's rollout in one environment, as stored between passes and across restarts."""

    environment: str
    app: str
    phase: RolloutPhase
    revision: str = Field(description="the revision being rolled out (branch@sha1:<sha>)")
    stable_revision: str = Field(default="", description="the revision the stable version came from")
    stable: dict[str, Any] = Field(description="the stable Deployment's desired manifest")
    candidate: dict[str, Any] = Field(description="the new Deployment's desired manifest")
    step: int = Field(default=0, description="index into the canary steps")
    weight: int = Field(default=0, description="the canary's share of requests now, percent")
    step_started: float = Field(default=0.0, description="UNIX seconds")
    started_at: float = 0.0
    finished_at: float | None = None
    samples: list[Sample] = Field(default_factory=list, description="the current step's samples")
    history: list[str] = Field(default_factory=list, description="one line per finished step")
    message: str = ""
    reverted: str | None = Field(default=None, description="the revert commit, once pushed")

    @property
    def active(self) -> bool:
        """True while traffic is being shifted (Progressing or Paused)."""
        return self.phase in ACTIVE


def render_query(template: str, values: dict[str, str]) -> str:
    """``template`` with each ``{{name}}`` replaced by ``values[name]``.

    Raises:
        KeyError: a placeholder has no value.
    """
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
