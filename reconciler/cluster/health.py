"""Health assessment of live Kubernetes objects, as pure functions.

:func:`assess` takes one live object exactly as the API server returns it (a JSON-like mapping) and
answers a :class:`~reconciler.model.HealthStatus`: a :class:`~reconciler.model.HealthState` plus a short,
specific message ("2/3 replicas available", "Accepted=False: ModelConfig gpt-mini not found").

Sources of the rules:

* built-in workload kinds follow the kstatus conventions of sigs.k8s.io/cli-utils (``pkg/kstatus``:
  observedGeneration first, then replica counters, ``ProgressDeadlineExceeded`` as failure) and the
  condition semantics documented in the Kubernetes API reference for each kind;
* generic custom resources follow the kstatus "abnormal-true" conditions ``Reconciling`` and ``Stalled``
  plus ``Ready``;
* kagent, kmcp, agentgateway and Gateway API kinds follow the agent-platform formats reference (§8.2,
  status conditions) and the status schemas of the CRDs vendored in ``deploy/crds/`` (their sources:
  ``deploy/crds/PROVENANCE.md``).
* External Secrets Operator kinds (``external-secrets.io``: ``ExternalSecret``, ``ClusterExternalSecret``,
  ``SecretStore``, ``ClusterSecretStore``) are judged by their ``Ready`` condition as the operator writes
  it: True (``SecretSynced``, ``Valid``) is healthy, False (``SecretSyncedError``, ``InvalidProviderConfig``,
  ``ValidationFailed`` …) degraded, missing or Unknown progressing; an ExternalSecret names its target
  Secret (``status.binding.name``, else ``spec.target.name``, else its own name).

Every rule first compares ``status.observedGeneration`` (and each condition's ``observedGeneration``)
with ``metadata.generation``: a status written for an older generation is never trusted and yields
:attr:`HealthState.PROGRESSING`.

"No controller": an object of an agent-platform (or External Secrets Operator) kind whose status no
controller ever wrote (no status, an empty one, or only the CRD-defaulted Gateway API
``Pending``/"Waiting for controller" conditions) is PROGRESSING while younger than ``no_controller_after``
seconds and ``Unverified`` (no controller) afterwards; it is never HEALTHY.

The module does no I/O: the only way it sees another object (an Agent's or MCPServer's Deployment) is the
caller's ``lookup`` function.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from reconciler.model import HealthState, HealthStatus, ObjectRef
from reconciler.probe.contract import ServerRef, requirements

__all__ = [
    "AGENTGATEWAY_CONTROLLER",
    "HealthInputError",
    "Lookup",
    "McpProbe",
    "assess",
    "judge",
    "missing_tools",
]

Lookup = Callable[[ObjectRef], dict[str, Any] | None]
"""Fetches a related live object by reference; returns ``None`` when it does not exist."""


class McpProbe(Protocol):
    """Judges an object by speaking its protocol (MCP to an MCP server, A2A to an agent, and an Agent's
    tool contract against its servers' tool lists); ``None`` when no probe covers it. Implemented by
    :class:`reconciler.probe.service.ProbeService`, which does the I/O."""

    def judge(
        self, obj: Mapping[str, Any], lookup: Callable[[ServerRef], Mapping[str, Any] | None] | None = None
    ) -> HealthStatus | None:
        """The protocol verdict on ``obj`` (``lookup`` fetches the servers an Agent points at)."""
        ...


AGENTGATEWAY_CONTROLLER = "agentgateway.dev/agentgateway"
"""``controllerName`` the agentgateway controller writes into Gateway API and policy statuses."""

_KAGENT = "kagent.dev"
_AGW = "agentgateway.dev"
_GWAPI = "gateway.networking.k8s.io"
_ESO = "external-secrets.io"
_PLATFORM_GROUPS = frozenset({_KAGENT, _AGW, _GWAPI, _ESO})
# Platform kinds whose status no controller writes: existing is all there is to them.
_STATUSLESS_PLATFORM_KINDS = frozenset({(_GWAPI, "ReferenceGrant"), (_AGW, "AgentgatewayParameters")})
# Platform kinds a protocol probe can judge when no controller wrote their status.
_PROBED_KINDS = frozenset({(_KAGENT, "RemoteMCPServer"), (_KAGENT, "MCPServer"), (_KAGENT, "Agent")})
_ROUTE_KINDS = frozenset({"HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"})

_H = HealthState
_MAX_MESSAGE = 200

# Container waiting reasons that mean the container cannot start without a change (kubelet reasons).
_BAD_WAITING = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


class HealthInputError(ValueError):
    """A live object is malformed in a field health assessment reads.

    The message names the object (``Kind namespace/name``) and the field path, e.g.
    ``Deployment agents/web: status.replicas must be an integer, got '3'``.
    """


# --------------------------------------------------------------------------------------------------
# Reading the object


@dataclass(frozen=True)
class _Cond:
    """One ``metav1.Condition`` (or the older core condition shape) as read from a status."""

    type: str
    status: str
    reason: str
    message: str
    observed_generation: int | None

    @property
    def true(self) -> bool:
        return self.status == "True"

    @property
    def false(self) -> bool:
        return self.status == "False"

    def text(self) -> str:
        """``Type=Status: message`` (the reason when there is no message)."""
        detail = self.message or self.reason
        head = f"{self.type}={self.status}"
        return f"{head}: {_short(detail)}" if detail else head


class _Obj:
    """A validated view of one live object with typed, error-reporting field access."""

    def __init__(self, obj: Mapping[str, Any]) -> None:
        if not isinstance(obj, Mapping):
            raise HealthInputError(f"live object must be a mapping, got {type(obj).__name__}")
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if not isinstance(kind, str) or not kind:
            raise HealthInputError(f"live object has no kind (apiVersion {api_version!r})")
        if not isinstance(api_version, str) or not api_version:
            raise HealthInputError(f"{kind}: live object has no apiVersion")
        meta = obj.get("metadata")
        if not isinstance(meta, Mapping):
            raise HealthInputError(f"{kind}: metadata must be a mapping, got {type(meta).__name__}")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise HealthInputError(f"{kind}: metadata.name is missing")
        namespace = meta.get("namespace") or ""
        if not isinstance(namespace, str):
            raise HealthInputError(f"{kind} {name}: metadata.namespace must be a string")
        self.raw = obj
        self.kind = kind
        self.group = api_version.rpartition("/")[0]
        self.version = api_version.rpartition("/")[2]
        self.name = name
        self.namespace = namespace
        self.meta: Mapping[str, Any] = meta
        self.label = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        self.generation = self.int_at(meta, "generation", "metadata.generation")
        status = obj.get("status")
        if status is None:
            status = {}
        if not isinstance(status, Mapping):
            raise HealthInputError(f"{self.label}: status must be a mapping, got {type(status).__name__}")
        self.status: Mapping[str, Any] = status
        spec = obj.get("spec")
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise HealthInputError(f"{self.label}: spec must be a mapping, got {type(spec).__name__}")
        self.spec: Mapping[str, Any] = spec

    # typed getters -------------------------------------------------------------------------------

    def _bad(self, path: str, what: str, value: Any) -> HealthInputError:
        return HealthInputError(f"{self.label}: {path} must be {what}, got {value!r}")

    def int_at(self, m: Mapping[str, Any], key: str, path: str) -> int | None:
        """``m[key]`` as an int (``None`` when absent); ``path`` names the field in errors."""
        value = m.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(path, "an integer", value)
        return value

    def count(self, m: Mapping[str, Any], key: str, path: str, default: int = 0) -> int:
        """A non-negative counter such as ``status.readyReplicas``; absent means ``default``."""
        value = self.int_at(m, key, path)
        if value is None:
            return default
        if value < 0:
            raise self._bad(path, "a non-negative integer", value)
        return value

    def str_at(self, m: Mapping[str, Any], key: str, path: str) -> str:
        """``m[key]`` as a string (``""`` when absent)."""
        value = m.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._bad(path, "a string", value)
        return value

    def map_at(self, m: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        """``m[key]`` as a mapping (empty when absent)."""
        value = m.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self._bad(path, "a mapping", value)
        return value

    def list_at(self, m: Mapping[str, Any], key: str, path: str) -> list[Any]:
        """``m[key]`` as a list (empty when absent)."""
        value = m.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._bad(path, "a list", value)
        return value

    def maps_at(self, m: Mapping[str, Any], key: str, path: str) -> list[Mapping[str, Any]]:
        """``m[key]`` as a list of mappings."""
        items = self.list_at(m, key, path)
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise self._bad(f"{path}[{i}]", "a mapping", item)
        return items

    def conditions(self, holder: Mapping[str, Any], path: str) -> dict[str, _Cond]:
        """The conditions list at ``holder['conditions']`` keyed by type (the first of duplicates)."""
        return self.parse_conditions(self.list_at(holder, "conditions", f"{path}.conditions"), path)

    def parse_conditions(self, items: list[Any], path: str) -> dict[str, _Cond]:
        """Validate and index a list of condition mappings; ``path`` is the holder's field path."""
        out: dict[str, _Cond] = {}
        for i, item in enumerate(items):
            where = f"{path}.conditions[{i}]"
            if not isinstance(item, Mapping):
                raise self._bad(where, "a mapping", item)
            ctype = self.str_at(item, "type", f"{where}.type")
            if not ctype:
                raise HealthInputError(f"{self.label}: {where}.type is missing")
            cstatus = self.str_at(item, "status", f"{where}.status")
            if cstatus not in ("True", "False", "Unknown"):
                raise self._bad(f"{where}.status", "True, False or Unknown", item.get("status"))
            cond = _Cond(
                type=ctype,
                status=cstatus,
                reason=self.str_at(item, "reason", f"{where}.reason"),
                message=self.str_at(item, "message", f"{where}.message"),
                observed_generation=self.int_at(item, "observedGeneration", f"{where}.observedGeneration"),
            )
            out.setdefault(ctype, cond)
        return out

    @property
    def deleting(self) -> bool:
        return bool(self.meta.get("deletionTimestamp"))

    def creation_time(self) -> float | None:
        """``metadata.creationTimestamp`` as UNIX seconds (RFC 3339), ``None`` when absent."""
        raw = self.meta.get("creationTimestamp")
        if raw is None or raw == "":
            return None
        if isinstance(raw, datetime):  # YAML loaders may already have parsed the timestamp
            return raw.timestamp()
        if not isinstance(raw, str):
            raise self._bad("metadata.creationTimestamp", "an RFC 3339 timestamp", raw)
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise self._bad("metadata.creationTimestamp", "an RFC 3339 timestamp", raw) from None
        if parsed.tzinfo is None:
            raise self._bad("metadata.creationTimestamp", "an RFC 3339 timestamp with a zone", raw)
        return parsed.timestamp()


@dataclass(frozen=True)
class _Ctx:
    lookup: Lookup | None
    now: float
    no_controller_after: float
    probe: McpProbe | None = None


# --------------------------------------------------------------------------------------------------
# Small helpers


def _short(text: str) -> str:
    """First line of ``text``, at most ``_MAX_MESSAGE`` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def _status(state: HealthState, message: str) -> HealthStatus:
    return HealthStatus(state=state, message=message)


def _fmt_age(seconds: float) -> str:
    """Human duration: ``45s``, ``4m10s``, ``3h5m``, ``2d3h``."""
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60}s"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def _stale(o: _Obj, conds: Iterable[_Cond] = (), *, require_observed: bool = False) -> HealthStatus | None:
    """PROGRESSING when the status (or any condition) describes an older generation than the spec.

    With ``require_observed`` a missing ``status.observedGeneration`` also counts as not yet observed.
    """
    gen = o.generation
    observed = o.int_at(o.status, "observedGeneration", "status.observedGeneration")
    if observed is None and require_observed:
        return _status(_H.PROGRESSING, "status not yet observed by the controller")
    if gen is None:
        return None
    if observed is not None and observed < gen:
        return _status(_H.PROGRESSING, f"status is for generation {observed}, object is at generation {gen}")
    for c in conds:
        if c.observed_generation is not None and c.observed_generation < gen:
            return _status(
                _H.PROGRESSING,
                f"{c.type} condition is for generation {c.observed_generation}, "
                f"object is at generation {gen}",
            )
    return None


class _Findings:
    """Problems found while assessing; the worst (DEGRADED over PROGRESSING) decides the result."""

    _RANK = {_H.FAILED: 4, _H.DEGRADED: 3, _H.UNVERIFIED: 2, _H.PROGRESSING: 1}

    def __init__(self) -> None:
        self.items: list[tuple[HealthState, str]] = []

    def add(self, state: HealthState, message: str) -> None:
        self.items.append((state, message))

    def result(self, healthy_message: str) -> HealthStatus:
        if not self.items:
            return _status(_H.HEALTHY, healthy_message)
        worst = max(self._RANK[s] for s, _ in self.items)
        chosen = [m for s, m in self.items if self._RANK[s] == worst]
        state = next(s for s, _ in self.items if self._RANK[s] == worst)
        extra = f" (+{len(self.items) - 1} more)" if len(self.items) > 1 else ""
        return _status(state, chosen[0] + extra)


def _require_true(
    f: _Findings,
    conds: Mapping[str, _Cond],
    ctype: str,
    *,
    prefix: str = "",
    false_state: HealthState = _H.DEGRADED,
    pending_reasons: frozenset[str] = frozenset({"Pending"}),
) -> None:
    """Record a finding unless condition ``ctype`` is True.

    False → ``false_state`` (PROGRESSING when the reason is one of ``pending_reasons``); Unknown or
    missing → PROGRESSING.
    """
    c = conds.get(ctype)
    if c is None:
        f.add(_H.PROGRESSING, f"{prefix}{ctype} condition not reported yet")
    elif c.true:
        return
    elif c.false and c.reason not in pending_reasons:
        f.add(false_state, prefix + c.text())
    else:
        f.add(_H.PROGRESSING, prefix + c.text())


def _is_default_pending(c: _Cond) -> bool:
    """The Gateway API CRD default condition: Unknown/``Pending``/"Waiting for controller"."""
    return c.status == "Unknown" and c.reason == "Pending" and c.message == "Waiting for controller"


def _never_written(o: _Obj) -> bool:
    """True when no controller has written anything into ``status``.

    An empty status, zero/empty fields, and conditions that are all CRD-defaulted Pending conditions
    count as never written.
    """
    for key, value in o.status.items():
        if key == "conditions":
            conds = o.conditions(o.status, "status")
            if not all(_is_default_pending(c) for c in conds.values()):
                return False
        elif value not in (None, 0, "", [], {}):
            return False
    return True


def _controller_hint(o: _Obj) -> str:
    if o.group == _ESO:
        return "is External Secrets Operator running?"
    if o.group == _KAGENT:
        return "is kmcp running?" if o.kind == "MCPServer" else "is kagent running?"
    if o.group == _AGW:
        return "is agentgateway running?"
    if o.kind == "GatewayClass":
        name = o.str_at(o.spec, "controllerName", "spec.controllerName")
        return f"is a controller for {name} running?" if name else "is its controller running?"
    if o.kind == "Gateway":
        cls = o.str_at(o.spec, "gatewayClassName", "spec.gatewayClassName")
        return f"is the controller of GatewayClass {cls} running?"
    if o.kind in _ROUTE_KINDS:
        return "parent Gateway missing or its controller not running?"
    return "is its controller running?"


def _no_controller(o: _Obj, ctx: _Ctx) -> HealthStatus:
    created = o.creation_time()
    if created is None:
        return _status(_H.PROGRESSING, "status not written yet (no creationTimestamp to age it)")
    age = ctx.now - created
    if age < ctx.no_controller_after:
        return _status(_H.PROGRESSING, f"waiting for controller to write status (age {_fmt_age(age)})")
    return HealthStatus(
        state=_H.UNVERIFIED,
        message=f"status never written after {_fmt_age(age)}: {_controller_hint(o)}",
        judge=_judge(o),
    )


def _judge(o: _Obj) -> str:
    """Who writes this agent-platform object's status: the controller whose absence leaves it
    Unverified (named in the set's verdict)."""
    if o.group == _ESO:
        return "External Secrets Operator"
    if o.group == _KAGENT:
        return "kmcp" if o.kind == "MCPServer" else "kagent"
    if o.group == _AGW:
        return "agentgateway"
    if o.kind == "GatewayClass":
        return o.str_at(o.spec, "controllerName", "spec.controllerName") or "GatewayClass controller"
    if o.kind == "Gateway":
        cls = o.str_at(o.spec, "gatewayClassName", "spec.gatewayClassName")
        return f"GatewayClass {cls} controller" if cls else "Gateway controller"
    return "parent Gateway's controller" if o.kind in _ROUTE_KINDS else f"{o.kind} controller"


def _counts(o: _Obj, m: Mapping[str, Any], path: str, *keys: str) -> list[int]:
    return [o.count(m, k, f"{path}.{k}") for k in keys]


# --------------------------------------------------------------------------------------------------
# Built-in kinds


def _deployment(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """kstatus Deployment rules; ``ProgressDeadlineExceeded`` and ``ReplicaFailure`` are DEGRADED."""
    if (stale := _stale(o, require_observed=True)) is not None:
        if o.int_at(o.status, "observedGeneration", "status.observedGeneration") is None:
            return _status(_H.PROGRESSING, "rollout not yet observed by the Deployment controller")
        return stale
    conds = o.conditions(o.status, "status")
    want = o.count(o.spec, "replicas", "spec.replicas", default=1)
    paused = o.spec.get("paused") is True
    prog = conds.get("Progressing")
    if prog is not None and prog.reason == "ProgressDeadlineExceeded":
        return _status(_H.DEGRADED, f"ProgressDeadlineExceeded: {_short(prog.message)}".rstrip(": "))
    rf = conds.get("ReplicaFailure")
    if rf is not None and rf.true:
        return _status(_H.DEGRADED, rf.text())
    replicas, updated, available = _counts(
        o, o.status, "status", "replicas", "updatedReplicas", "availableReplicas"
    )
    pre = "paused: " if paused else ""
    if updated < want:
        return _status(_H.PROGRESSING, f"{pre}{updated}/{want} replicas updated")
    if replicas > updated:
        return _status(_H.PROGRESSING, f"{pre}{replicas - updated} old replicas pending termination")
    if replicas > want:
        return _status(_H.PROGRESSING, f"{pre}{replicas - want} extra replicas pending termination")
    if available < want:
        return _status(_H.PROGRESSING, f"{pre}{available}/{want} replicas available")
    if paused:
        return _status(_H.HEALTHY, f"paused, {available}/{want} replicas available")
    if prog is not None and not (prog.true and prog.reason == "NewReplicaSetAvailable"):
        return _status(_H.PROGRESSING, f"new ReplicaSet not yet available ({prog.reason or prog.status})")
    avail = conds.get("Available")
    if avail is not None and not avail.true:
        return _status(_H.PROGRESSING, avail.text())
    return _status(_H.HEALTHY, f"{available}/{want} replicas available")


def _statefulset(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """kstatus StatefulSet rules, with OnDelete and partitioned rolling updates."""
    if o.int_at(o.status, "observedGeneration", "status.observedGeneration") is None:
        return _status(_H.PROGRESSING, "not yet observed by the StatefulSet controller")
    if (stale := _stale(o)) is not None:
        return stale
    want = o.count(o.spec, "replicas", "spec.replicas", default=1)
    replicas, ready, updated = _counts(o, o.status, "status", "replicas", "readyReplicas", "updatedReplicas")
    available = o.count(o.status, "availableReplicas", "status.availableReplicas", default=ready)
    if replicas < want:
        return _status(_H.PROGRESSING, f"{replicas}/{want} replicas created")
    if ready < want:
        return _status(_H.PROGRESSING, f"{ready}/{want} replicas ready")
    if available < want:
        return _status(_H.PROGRESSING, f"{available}/{want} replicas available")
    if replicas > want:
        return _status(_H.PROGRESSING, f"{replicas - want} extra replicas pending termination")
    strategy = o.map_at(o.spec, "updateStrategy", "spec.updateStrategy")
    if o.str_at(strategy, "type", "spec.updateStrategy.type") == "OnDelete":
        return _status(_H.HEALTHY, f"{ready}/{want} replicas ready (OnDelete: rollout not tracked)")
    rolling = o.map_at(strategy, "rollingUpdate", "spec.updateStrategy.rollingUpdate")
    partition = o.count(rolling, "partition", "spec.updateStrategy.rollingUpdate.partition")
    if partition > 0:
        expected = max(want - partition, 0)
        if updated < expected:
            return _status(_H.PROGRESSING, f"{updated}/{expected} replicas updated (partition {partition})")
        return _status(_H.HEALTHY, f"{ready}/{want} replicas ready, partitioned rollout complete")
    current_rev = o.str_at(o.status, "currentRevision", "status.currentRevision")
    update_rev = o.str_at(o.status, "updateRevision", "status.updateRevision")
    if update_rev and current_rev != update_rev:
        return _status(_H.PROGRESSING, f"{updated}/{want} replicas updated to revision {update_rev}")
    return _status(_H.HEALTHY, f"{ready}/{want} replicas ready")


def _daemonset(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """kstatus DaemonSet rules: scheduled, updated and available pods against the desired count."""
    if o.int_at(o.status, "observedGeneration", "status.observedGeneration") is None:
        return _status(_H.PROGRESSING, "not yet observed by the DaemonSet controller")
    if (stale := _stale(o)) is not None:
        return stale
    desired, current, updated, available = _counts(
        o,
        o.status,
        "status",
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "updatedNumberScheduled",
        "numberAvailable",
    )
    if current < desired:
        return _status(_H.PROGRESSING, f"{current}/{desired} pods scheduled")
    strategy = o.map_at(o.spec, "updateStrategy", "spec.updateStrategy")
    on_delete = o.str_at(strategy, "type", "spec.updateStrategy.type") == "OnDelete"
    if not on_delete and updated < desired:
        return _status(_H.PROGRESSING, f"{updated}/{desired} pods updated")
    if available < desired:
        return _status(_H.PROGRESSING, f"{available}/{desired} pods available")
    return _status(_H.HEALTHY, f"{available}/{desired} pods available")


def _replicaset(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """ReplicaSet: ``ReplicaFailure`` is DEGRADED, otherwise available replicas against spec."""
    conds = o.conditions(o.status, "status")
    rf = conds.get("ReplicaFailure")
    if rf is not None and rf.true:
        return _status(_H.DEGRADED, rf.text())
    if o.int_at(o.status, "observedGeneration", "status.observedGeneration") is None:
        return _status(_H.PROGRESSING, "not yet observed by the ReplicaSet controller")
    if (stale := _stale(o)) is not None:
        return stale
    want = o.count(o.spec, "replicas", "spec.replicas", default=1)
    replicas, available = _counts(o, o.status, "status", "replicas", "availableReplicas")
    if available < want:
        return _status(_H.PROGRESSING, f"{available}/{want} replicas available")
    if replicas > want:
        return _status(_H.PROGRESSING, f"{replicas - want} extra replicas pending termination")
    return _status(_H.HEALTHY, f"{available}/{want} replicas available")


def _job(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """Job: ``Complete`` → HEALTHY, ``Failed``/``FailureTarget`` → DEGRADED, else running (with backoff)."""
    conds = o.conditions(o.status, "status")
    active, succeeded, failed = _counts(o, o.status, "status", "active", "succeeded", "failed")
    completions = o.int_at(o.spec, "completions", "spec.completions")
    want = str(completions) if completions is not None else "1"
    for ctype in ("Failed", "FailureTarget"):
        c = conds.get(ctype)
        if c is not None and c.true:
            detail = ": ".join(p for p in (c.reason, _short(c.message)) if p) or ctype
            return _status(_H.DEGRADED, f"{ctype}: {detail}" if ctype == "FailureTarget" else detail)
    complete = conds.get("Complete")
    if complete is not None and complete.true:
        return _status(_H.HEALTHY, f"complete: {succeeded}/{want} succeeded")
    scm = conds.get("SuccessCriteriaMet")
    if scm is not None and scm.true:
        return _status(_H.PROGRESSING, "success criteria met, waiting for pods to terminate")
    suspended = conds.get("Suspended")
    if (suspended is not None and suspended.true) or o.spec.get("suspend") is True:
        return _status(_H.PROGRESSING, "suspended (spec.suspend: true)")
    if not o.status:
        return _status(_H.PROGRESSING, "not yet started by the Job controller")
    if failed > 0:
        limit = o.int_at(o.spec, "backoffLimit", "spec.backoffLimit")
        limit_text = str(limit) if limit is not None else "6"
        return _status(
            _H.PROGRESSING,
            f"retrying: {failed} failed, {active} active, {succeeded}/{want} succeeded "
            f"(backoffLimit {limit_text})",
        )
    return _status(_H.PROGRESSING, f"running: {active} active, {succeeded}/{want} succeeded")


def _container_problem(o: _Obj) -> str | None:
    """The first container (init containers first) stuck in a waiting reason that needs a change."""
    for key in ("initContainerStatuses", "containerStatuses"):
        for i, cs in enumerate(o.maps_at(o.status, key, f"status.{key}")):
            path = f"status.{key}[{i}]"
            state = o.map_at(cs, "state", f"{path}.state")
            waiting = o.map_at(state, "waiting", f"{path}.state.waiting")
            reason = o.str_at(waiting, "reason", f"{path}.state.waiting.reason")
            if reason in _BAD_WAITING:
                name = o.str_at(cs, "name", f"{path}.name")
                message = _short(o.str_at(waiting, "message", f"{path}.state.waiting.message"))
                if reason == "CrashLoopBackOff":
                    last = o.map_at(o.map_at(cs, "lastState", f"{path}.lastState"), "terminated", path)
                    last_reason = o.str_at(last, "reason", f"{path}.lastState.terminated.reason")
                    code = o.int_at(last, "exitCode", f"{path}.lastState.terminated.exitCode")
                    if last_reason or code is not None:
                        message = f"last exit {last_reason or 'code'}" + (
                            f" ({code})" if code is not None else ""
                        )
                restarts = o.count(cs, "restartCount", f"{path}.restartCount")
                tail = f", {restarts} restarts" if restarts else ""
                return f"container {name}: {reason}" + (f": {message}" if message else "") + tail
    return None


def _pod(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """Pod phase, container waiting reasons, scheduling and the ``Ready`` condition."""
    phase = o.str_at(o.status, "phase", "status.phase")
    conds = o.conditions(o.status, "status")
    if phase == "Succeeded":
        return _status(_H.HEALTHY, "completed")
    if phase == "Failed":
        reason = o.str_at(o.status, "reason", "status.reason")
        message = _short(o.str_at(o.status, "message", "status.message"))
        detail = ": ".join(p for p in (reason, message) if p)
        if not detail:
            for i, cs in enumerate(o.maps_at(o.status, "containerStatuses", "status.containerStatuses")):
                path = f"status.containerStatuses[{i}]"
                term = o.map_at(
                    o.map_at(cs, "state", f"{path}.state"), "terminated", f"{path}.state.terminated"
                )
                code = o.int_at(term, "exitCode", f"{path}.state.terminated.exitCode")
                if code:
                    name = o.str_at(cs, "name", f"{path}.name")
                    treason = o.str_at(term, "reason", f"{path}.state.terminated.reason")
                    detail = f"container {name} exited with code {code}" + (
                        f" ({treason})" if treason else ""
                    )
                    break
        return _status(_H.DEGRADED, f"Failed: {detail}" if detail else "Failed")
    if phase == "Unknown":
        return HealthStatus(
            state=_H.UNVERIFIED, message="phase Unknown (node not reporting)", judge="kubelet"
        )
    if (problem := _container_problem(o)) is not None:
        return _status(_H.DEGRADED, problem)
    scheduled = conds.get("PodScheduled")
    if scheduled is not None and scheduled.false:
        return _status(_H.PROGRESSING, f"{scheduled.reason or 'not scheduled'}: {_short(scheduled.message)}")
    if phase in ("", "Pending"):
        return _status(_H.PROGRESSING, "Pending")
    statuses = o.maps_at(o.status, "containerStatuses", "status.containerStatuses")
    ready_count = sum(1 for cs in statuses if cs.get("ready") is True)
    ready = conds.get("Ready")
    if ready is not None and ready.true:
        return _status(_H.HEALTHY, f"Running, {ready_count}/{len(statuses)} containers ready")
    return _status(_H.PROGRESSING, f"Running, {ready_count}/{len(statuses)} containers ready")


def _service(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """Service: a LoadBalancer needs ``status.loadBalancer.ingress``; other types are healthy."""
    stype = o.str_at(o.spec, "type", "spec.type") or "ClusterIP"
    if stype != "LoadBalancer":
        return _with_probe(o, ctx, _status(_H.HEALTHY, stype))
    lb = o.map_at(o.status, "loadBalancer", "status.loadBalancer")
    ingress = o.maps_at(lb, "ingress", "status.loadBalancer.ingress")
    if not ingress:
        return _status(_H.PROGRESSING, "waiting for load balancer address")
    first = ingress[0]
    address = o.str_at(first, "ip", "status.loadBalancer.ingress[0].ip") or o.str_at(
        first, "hostname", "status.loadBalancer.ingress[0].hostname"
    )
    return _status(_H.HEALTHY, f"load balancer {address}" if address else "load balancer ready")


def _pvc(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """PersistentVolumeClaim: ``Bound`` healthy, ``Pending`` progressing, ``Lost`` degraded."""
    phase = o.str_at(o.status, "phase", "status.phase")
    volume = o.str_at(o.spec, "volumeName", "spec.volumeName")
    if phase == "Bound":
        return _status(_H.HEALTHY, f"Bound to {volume}" if volume else "Bound")
    if phase == "Lost":
        return _status(_H.DEGRADED, f"Lost: PersistentVolume {volume or '?'} no longer exists")
    return _status(_H.PROGRESSING, f"{phase or 'Pending'}: waiting for a volume")


_METRICS_API_MISSING = re.compile(
    r"could not find the requested resource \(get [a-z.]*metrics\.k8s\.io\)"
    r"|no matches for kind .*metrics\.k8s\.io"
)


def _hpa(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """HorizontalPodAutoscaler: ``AbleToScale`` and ``ScalingActive`` (v2 status or the v1 annotation)."""
    if (stale := _stale(o)) is not None:
        return stale
    conds = o.conditions(o.status, "status")
    annotations = o.map_at(o.meta, "annotations", "metadata.annotations")
    key = "autoscaling.alpha.kubernetes.io/conditions"
    if not conds and key in annotations:
        raw = annotations[key]
        path = f"metadata.annotations[{key}]"
        try:
            items = json.loads(raw) if isinstance(raw, str) else None
        except json.JSONDecodeError as err:
            raise o._bad(path, "a JSON list of conditions", raw) from err
        if not isinstance(items, list):
            raise o._bad(path, "a JSON list of conditions", raw)
        conds = o.parse_conditions(items, path)
    if not conds:
        return _status(_H.PROGRESSING, "waiting for the first metrics")
    able = conds.get("AbleToScale")
    if able is not None and able.false and not able.reason.startswith("Backoff"):
        return _status(_H.DEGRADED, able.text())
    active = conds.get("ScalingActive")
    current, desired = _counts(o, o.status, "status", "currentReplicas", "desiredReplicas")
    if active is not None and active.false:
        if active.reason == "ScalingDisabled":
            return _status(_H.HEALTHY, f"scaling disabled: {_short(active.message)}".rstrip(": "))
        if active.reason.startswith("FailedGet") and _METRICS_API_MISSING.search(active.message):
            # the metrics pipeline itself is absent (no metrics-server / adapter): like a CR without its
            # controller, reported as such and never taken for healthy or for a broken release
            return HealthStatus(
                state=_H.UNVERIFIED,
                message="the metrics API is not served: is metrics-server (or an adapter) installed?",
                judge="metrics-server",
            )
        return _status(_H.DEGRADED, active.text())
    if active is None or not active.true:
        return _status(
            _H.PROGRESSING, active.text() if active else "ScalingActive condition not reported yet"
        )
    limited = conds.get("ScalingLimited")
    note = f", limited ({limited.reason})" if limited is not None and limited.true and limited.reason else ""
    return _status(_H.HEALTHY, f"{current} replicas, desired {desired}{note}")


def _crd(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """CustomResourceDefinition: ``Established=True``; ``NamesAccepted=False`` is DEGRADED."""
    conds = o.conditions(o.status, "status")
    names = conds.get("NamesAccepted")
    if names is not None and names.false:
        return _status(_H.DEGRADED, names.text())
    est = conds.get("Established")
    if est is not None and est.true:
        return _status(_H.HEALTHY, "Established")
    terminating = conds.get("Terminating")
    if terminating is not None and terminating.true:
        return _status(_H.PROGRESSING, terminating.text())
    return _status(_H.PROGRESSING, est.text() if est else "waiting for Established")


_NS_FAILURES = (
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
)


def _namespace(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """Namespace: ``Active`` healthy; ``Terminating`` progressing, or degraded on deletion failures."""
    phase = o.str_at(o.status, "phase", "status.phase")
    if phase != "Terminating" and not o.deleting:
        return _status(_H.HEALTHY, phase or "Active")
    conds = o.conditions(o.status, "status")
    for ctype in _NS_FAILURES:
        c = conds.get(ctype)
        if c is not None and c.true:
            return _status(_H.DEGRADED, f"Terminating: {c.text()}")
    for ctype in ("NamespaceFinalizersRemaining", "NamespaceContentRemaining"):
        c = conds.get(ctype)
        if c is not None and c.true:
            return _status(_H.PROGRESSING, f"Terminating: {_short(c.message) or ctype}")
    return _status(_H.PROGRESSING, "Terminating")


def _generic(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """kstatus generic rules: observedGeneration, ``Stalled``, ``Reconciling``, then ``Ready``.

    Kinds without status (ConfigMap, Secret, RBAC …) and statuses without conditions are HEALTHY.
    ``Ready=False`` without ``Stalled`` is PROGRESSING: kstatus only treats ``Stalled`` as failure.
    """
    if not o.status:
        return _status(_H.HEALTHY, "exists")
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    stalled = conds.get("Stalled")
    if stalled is not None and stalled.true:
        return _status(_H.DEGRADED, stalled.text())
    reconciling = conds.get("Reconciling")
    if reconciling is not None and reconciling.true:
        return _status(_H.PROGRESSING, reconciling.text())
    ready = conds.get("Ready")
    if ready is not None:
        return _status(_H.HEALTHY, "Ready") if ready.true else _status(_H.PROGRESSING, ready.text())
    return _status(_H.HEALTHY, "no failing conditions" if conds else "status has no conditions")


# --------------------------------------------------------------------------------------------------
# kagent / kmcp


def _deployment_of(o: _Obj, ctx: _Ctx) -> tuple[HealthStatus | None, _Obj | None]:
    """Health and view of the Deployment named like ``o`` in its namespace, fetched through ``lookup``.

    Returns ``(None, None)`` without a lookup, and a PROGRESSING status with no view when the
    Deployment does not exist.
    """
    if ctx.lookup is None:
        return None, None
    ref = ObjectRef(group="apps", version="v1", kind="Deployment", namespace=o.namespace, name=o.name)
    live = ctx.lookup(ref)
    if live is None:
        return _status(_H.PROGRESSING, f"Deployment {o.name} not found"), None
    dep = _Obj(live)
    status = _deployment(dep, ctx)
    if not status.healthy:
        status = _status(status.state, f"Deployment {o.name}: {status.message}")
    return status, dep


def _agent_replicas(o: _Obj) -> int:
    """Replicas the Agent asks for: ``spec.declarative|byo.deployment.replicas`` (default 1)."""
    block = "byo" if o.str_at(o.spec, "type", "spec.type") == "BYO" else "declarative"
    body = o.map_at(o.spec, block, f"spec.{block}")
    dep = o.map_at(body, "deployment", f"spec.{block}.deployment")
    return o.count(dep, "replicas", f"spec.{block}.deployment.replicas", default=1)


def _agent(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """kagent Agent: Accepted and Ready True, generation observed, Deployment of its name rolled out."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values(), require_observed=True)) is not None:
        return stale
    f = _Findings()
    _require_true(f, conds, "Accepted")
    ready_type = "WorkloadReady" if o.kind == "SandboxAgent" else "Ready"
    _require_true(f, conds, ready_type, false_state=_H.PROGRESSING)
    dep, live = _deployment_of(o, ctx) if o.kind == "Agent" else (None, None)
    if dep is not None and not dep.healthy:
        f.add(dep.state, dep.message)
    elif live is not None:
        have = live.count(live.spec, "replicas", "spec.replicas", default=1)
        want = _agent_replicas(o)
        if have != want:
            f.add(_H.PROGRESSING, f"Deployment {o.name} has {have} replicas, Agent wants {want}")
    if ctx.probe is None:  # with a probe, its verdict covers the tool contract (probe or discoveredTools)
        for text in _discovered_contract(o, ctx):
            f.add(_H.DEGRADED, text)
    unsupported = conds.get("UnsupportedFeatures")
    warning = f" (warning: {unsupported.text()})" if unsupported is not None and unsupported.true else ""
    if dep is None:
        detail = "Deployment not checked" if ctx.lookup is None else ""
        healthy = f"Accepted, {ready_type}" + (f" ({detail})" if detail else "")
    else:
        healthy = f"Accepted, {ready_type}, Deployment {dep.message}"
    return _with_probe(o, ctx, f.result(healthy + warning))


def _discovered_contract(o: _Obj, ctx: _Ctx) -> list[str]:
    """For each RemoteMCPServer the Agent names tools of: the names missing from the server's
    ``status.discoveredTools`` (what kagent last listed; agent-platform-formats.md §8.2). Servers without
    a discovered list, or that cannot be read, are left to their own verdict."""
    if ctx.lookup is None:
        return []
    out: list[str] = []
    for req in requirements([o.raw], namespace=o.namespace):
        if req.tools is None or req.server.kind != "RemoteMCPServer":
            continue
        ref = ObjectRef(
            group=_KAGENT,
            version="v1alpha2",
            kind="RemoteMCPServer",
            namespace=req.server.namespace,
            name=req.server.name,
        )
        live = ctx.lookup(ref)
        if live is None or not _Obj(live).status.get("discoveredTools"):
            continue
        missing = missing_tools(live, req.tools)
        if missing:
            out.append(
                f"requires {', '.join(repr(m) for m in missing)} of {req.server}, "
                "not in its status.discoveredTools"
            )
    return out


def _model_config(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """kagent ModelConfig: ``Accepted=True`` with the generation observed."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    f = _Findings()
    _require_true(f, conds, "Accepted")
    return f.result("Accepted")


def _model_provider_config(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """kagent ModelProviderConfig: ``Ready=True``; ``SecretResolved``/``ModelsDiscovered`` False degrade."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    for ctype in ("SecretResolved", "ModelsDiscovered"):
        c = conds.get(ctype)
        if c is not None and c.false:
            return _status(_H.DEGRADED, c.text())
    f = _Findings()
    _require_true(f, conds, "Ready")
    count = o.int_at(o.status, "modelCount", "status.modelCount")
    if count is None:
        count = len(o.list_at(o.status, "discoveredModels", "status.discoveredModels"))
    return f.result(f"Ready, {count} models discovered")


# --------------------------------------------------------------------------------------------------
# External Secrets Operator


def _eso_target(o: _Obj) -> str:
    """The Secret an ExternalSecret writes: ``status.binding.name``, else ``spec.target.name``, else its
    own name (the operator's default)."""
    binding = o.map_at(o.status, "binding", "status.binding")
    name = o.str_at(binding, "name", "status.binding.name")
    if not name:
        name = o.str_at(o.map_at(o.spec, "target", "spec.target"), "name", "spec.target.name")
    return name or o.name


def _external_secret(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """ExternalSecret / ClusterExternalSecret: ``Ready=True`` (``SecretSynced``) with the generation
    observed; ``Ready=False`` is degraded (the target Secret is not synced), missing or Unknown
    progressing."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    f = _Findings()
    _require_true(f, conds, "Ready", pending_reasons=frozenset())
    if o.kind == "ExternalSecret":
        return f.result(f"Ready, Secret {_eso_target(o)} synced")
    return f.result("Ready")


def _secret_store(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """SecretStore / ClusterSecretStore: ``Ready=True`` (``Valid``: the provider accepted the store's
    configuration and credentials); ``Ready=False`` degraded, missing or Unknown progressing."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    f = _Findings()
    _require_true(f, conds, "Ready", pending_reasons=frozenset())
    return f.result("Ready (store valid)")


def _tool_names(o: _Obj) -> list[str]:
    names = []
    for i, tool in enumerate(o.maps_at(o.status, "discoveredTools", "status.discoveredTools")):
        names.append(o.str_at(tool, "name", f"status.discoveredTools[{i}].name"))
    return names


def _probed(o: _Obj, ctx: _Ctx) -> HealthStatus | None:
    """The configured protocol probe's verdict on ``o`` (None: no probe covers it)."""
    if ctx.probe is None:
        return None
    lookup = ctx.lookup

    def server(ref: ServerRef) -> Mapping[str, Any] | None:
        if lookup is None:
            return None
        version = "v1" if ref.kind == "Service" else ("v1alpha1" if ref.kind == "MCPServer" else "v1alpha2")
        return lookup(
            ObjectRef(group=ref.group, version=version, kind=ref.kind, namespace=ref.namespace, name=ref.name)
        )

    return ctx.probe.judge(o.raw, server if lookup is not None else None)


def _with_probe(o: _Obj, ctx: _Ctx, status: HealthStatus) -> HealthStatus:
    """``status`` joined with the protocol verdict on ``o``: the worse state wins; a healthy probe adds
    its message."""
    probed = _probed(o, ctx)
    if probed is None:
        return status
    rank = _Findings._RANK
    if rank.get(probed.state, 0) > rank.get(status.state, 0):
        return _status(probed.state, _short(probed.message))
    return _status(status.state, _short(f"{status.message}; {probed.message}"))


def _remote_mcp_server(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """kagent RemoteMCPServer: ``Accepted=True`` (the controller reached it) and tools discovered; with a
    configured probe, also an MCP handshake and complete tool listing of ``spec.url``."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    f = _Findings()
    _require_true(f, conds, "Accepted")
    tools = _tool_names(o)
    if not f.items and not tools:
        f.add(_H.DEGRADED, "Accepted=True but no tools discovered")
    probed = _probed(o, ctx)
    if probed is not None and not probed.healthy:
        f.add(probed.state, probed.message)
    return f.result(f"Accepted, {len(tools)} tools discovered" + (f"; {probed.message}" if probed else ""))


def _mcp_server(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """kmcp MCPServer: Accepted, ResolvedRefs, Programmed and Ready True; its Deployment rolled out."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    f = _Findings()
    for ctype in ("Accepted", "ResolvedRefs", "Programmed"):
        _require_true(f, conds, ctype)
    _require_true(f, conds, "Ready", false_state=_H.PROGRESSING)
    dep, _ = _deployment_of(o, ctx)
    if dep is not None and not dep.healthy:
        f.add(dep.state, dep.message)
    healthy = "Ready" + (f", Deployment {dep.message}" if dep is not None else " (Deployment not checked)")
    return _with_probe(o, ctx, f.result(healthy))


# --------------------------------------------------------------------------------------------------
# Gateway API / agentgateway


def _gateway_class(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """GatewayClass: ``Accepted=True``; ``SupportedVersion=False`` is DEGRADED."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    f = _Findings()
    _require_true(f, conds, "Accepted")
    sv = conds.get("SupportedVersion")
    if sv is not None and sv.false:
        f.add(_H.DEGRADED, sv.text())
    return f.result("Accepted")


_GW_PENDING = frozenset({"Pending", "AddressNotAssigned"})


def _gateway(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """Gateway: Accepted and Programmed True, and every spec listener Programmed and ResolvedRefs."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    f = _Findings()
    _require_true(f, conds, "Accepted")
    _require_true(f, conds, "Programmed", pending_reasons=_GW_PENDING)
    by_name: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for i, ls in enumerate(o.maps_at(o.status, "listeners", "status.listeners")):
        by_name.setdefault(o.str_at(ls, "name", f"status.listeners[{i}].name"), (i, ls))
    wanted = [
        o.str_at(ls, "name", f"spec.listeners[{i}].name")
        for i, ls in enumerate(o.maps_at(o.spec, "listeners", "spec.listeners"))
    ]
    routes = 0
    for name in wanted:
        found = by_name.get(name)
        if found is None:
            f.add(_H.PROGRESSING, f"listener {name}: no status yet")
            continue
        path = f"status.listeners[{found[0]}]"
        ls_status = found[1]
        routes += o.count(ls_status, "attachedRoutes", f"{path}.attachedRoutes")
        lconds = o.conditions(ls_status, path)
        if (stale := _stale(o, lconds.values())) is not None:
            return _status(stale.state, f"listener {name}: {stale.message}")
        conflicted = lconds.get("Conflicted")
        if conflicted is not None and conflicted.true:
            f.add(_H.DEGRADED, f"listener {name}: {conflicted.text()}")
        prefix = f"listener {name}: "
        _require_true(f, lconds, "Accepted", prefix=prefix)
        _require_true(f, lconds, "ResolvedRefs", prefix=prefix)
        _require_true(f, lconds, "Programmed", prefix=prefix, pending_reasons=_GW_PENDING)
    addresses = o.maps_at(o.status, "addresses", "status.addresses")
    addr = o.str_at(addresses[0], "value", "status.addresses[0].value") if addresses else ""
    healthy = f"Programmed, {len(wanted)} listeners, {routes} routes attached" + (
        f", address {addr}" if addr else ""
    )
    return f.result(healthy)


def _ours(o: _Obj, entries: list[Mapping[str, Any]], path: str) -> list[tuple[int, Mapping[str, Any]]]:
    """Entries written by agentgateway, or all entries when agentgateway wrote none."""
    indexed = list(enumerate(entries))
    mine = [
        (i, e)
        for i, e in indexed
        if o.str_at(e, "controllerName", f"{path}[{i}].controllerName") == AGENTGATEWAY_CONTROLLER
    ]
    return mine or indexed


def _ref_label(o: _Obj, ref: Mapping[str, Any], path: str, default_kind: str) -> str:
    kind = o.str_at(ref, "kind", f"{path}.kind") or default_kind
    name = o.str_at(ref, "name", f"{path}.name")
    ns = o.str_at(ref, "namespace", f"{path}.namespace") or o.namespace
    section = o.str_at(ref, "sectionName", f"{path}.sectionName")
    return f"{kind} {ns}/{name}" + (f"/{section}" if section else "")


def _route(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """HTTPRoute (and other routes): for each parent of ours, Accepted and ResolvedRefs True."""
    parents = _ours(o, o.maps_at(o.status, "parents", "status.parents"), "status.parents")
    if not parents:  # no Gateway controller has taken the route, whatever else the status holds
        return _no_controller(o, ctx)
    f = _Findings()
    for i, parent in parents:
        path = f"status.parents[{i}]"
        label = _ref_label(
            o, o.map_at(parent, "parentRef", f"{path}.parentRef"), f"{path}.parentRef", "Gateway"
        )
        pconds = o.conditions(parent, path)
        if (stale := _stale(o, pconds.values())) is not None:
            return _status(stale.state, f"{label}: {stale.message}")
        prefix = f"{label}: "
        _require_true(f, pconds, "Accepted", prefix=prefix)
        _require_true(f, pconds, "ResolvedRefs", prefix=prefix)
        partial = pconds.get("PartiallyInvalid")
        if partial is not None and partial.true:
            f.add(_H.DEGRADED, prefix + partial.text())
    n = len(parents)
    return f.result(f"Accepted by {n}/{n} parents" if n != 1 else "Accepted by " + _parent_name(o, parents))


def _parent_name(o: _Obj, parents: list[tuple[int, Mapping[str, Any]]]) -> str:
    i, parent = parents[0]
    path = f"status.parents[{i}].parentRef"
    return _ref_label(o, o.map_at(parent, "parentRef", path), path, "Gateway")


def _agw_backend(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """AgentgatewayBackend: ``Accepted=True`` with the generation observed."""
    conds = o.conditions(o.status, "status")
    if (stale := _stale(o, conds.values())) is not None:
        return stale
    f = _Findings()
    _require_true(f, conds, "Accepted")
    return f.result("Accepted")


def _policy(o: _Obj, ctx: _Ctx) -> HealthStatus:
    """AgentgatewayPolicy (and ancestor-status policies): each ancestor of ours Accepted and Attached.

    Accepted reasons ``Invalid``/``PartiallyValid`` degrade, ``Pending`` progresses; the same for
    ``Attached``. Kinds without an ``Attached`` condition (BackendTLSPolicy) need Accepted only.
    """
    ancestors = _ours(o, o.maps_at(o.status, "ancestors", "status.ancestors"), "status.ancestors")
    if not ancestors:  # no controller has attached the policy anywhere
        return _no_controller(o, ctx)
    f = _Findings()
    needs_attached = o.group == _AGW
    for i, anc in ancestors:
        path = f"status.ancestors[{i}]"
        label = _ref_label(
            o, o.map_at(anc, "ancestorRef", f"{path}.ancestorRef"), f"{path}.ancestorRef", "Gateway"
        )
        aconds = o.conditions(anc, path)
        if (stale := _stale(o, aconds.values())) is not None:
            return _status(stale.state, f"{label}: {stale.message}")
        prefix = f"{label}: "
        accepted = aconds.get("Accepted")
        if accepted is not None and accepted.reason == "PartiallyValid":
            detail = _short(accepted.message)
            f.add(
                _H.DEGRADED,
                f"{prefix}Accepted={accepted.status} (PartiallyValid)" + (f": {detail}" if detail else ""),
            )
        else:
            _require_true(f, aconds, "Accepted", prefix=prefix)
        if needs_attached:
            _require_true(f, aconds, "Attached", prefix=prefix)
    n = len(ancestors)
    return f.result(
        f"Accepted and Attached on {n}/{n} ancestors" if needs_attached else f"Accepted on {n}/{n}"
    )


# --------------------------------------------------------------------------------------------------
# Dispatch

_Handler = Callable[[_Obj, _Ctx], HealthStatus]

_HANDLERS: dict[tuple[str, str], _Handler] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("batch", "Job"): _job,
    ("", "Pod"): _pod,
    ("", "Service"): _service,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Namespace"): _namespace,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    (_KAGENT, "Agent"): _agent,
    (_KAGENT, "SandboxAgent"): _agent,
    (_KAGENT, "ModelConfig"): _model_config,
    (_KAGENT, "ModelProviderConfig"): _model_provider_config,
    (_KAGENT, "RemoteMCPServer"): _remote_mcp_server,
    (_KAGENT, "MCPServer"): _mcp_server,
    (_GWAPI, "GatewayClass"): _gateway_class,
    (_GWAPI, "Gateway"): _gateway,
    (_GWAPI, "BackendTLSPolicy"): _policy,
    (_AGW, "AgentgatewayBackend"): _agw_backend,
    (_AGW, "AgentgatewayPolicy"): _policy,
    **{(_GWAPI, k): _route for k in _ROUTE_KINDS},
    (_ESO, "ExternalSecret"): _external_secret,
    (_ESO, "ClusterExternalSecret"): _external_secret,
    (_ESO, "SecretStore"): _secret_store,
    (_ESO, "ClusterSecretStore"): _secret_store,
}


def assess(
    obj: Mapping[str, Any],
    *,
    lookup: Lookup | None = None,
    now: float | None = None,
    no_controller_after: float = 60.0,
    probe: McpProbe | None = None,
) -> HealthStatus:
    """Judge the health of one live object.

    Args:
        obj: the live object as the API server returns it (``apiVersion``, ``kind``, ``metadata``,
            ``spec``, ``status``), e.g. the JSON body of a GET.
        lookup: fetches a related live object (the Deployment an Agent or MCPServer owns, same name and
            namespace, ``apps/v1``); ``None`` skips those checks and says so in the message.
        now: the current time as UNIX seconds (default :func:`time.time`), used to age objects whose
            status was never written.
        no_controller_after: seconds after ``metadata.creationTimestamp`` from which an agent-platform
            object with no controller-written status is ``Unverified`` (no controller) instead of
            PROGRESSING.
        probe: judges MCP servers (RemoteMCPServer, MCPServer, MCP Services) by speaking MCP to them and
            Agents by their A2A card and tool contract (:class:`McpProbe`). Its verdict joins the
            conditions' (the worse wins), and replaces ``Unverified`` when no controller wrote a status;
            an object the probe does not cover (it returns ``None``) is judged as without it.

    Returns:
        The state and a short message. Objects being deleted are PROGRESSING ("being deleted").

    Raises:
        HealthInputError: (a :class:`ValueError`) when a field the rules read has the wrong shape; the
            message names the object and the field path.

    Rules: see the module docstring (kstatus conventions, agent-platform-formats.md §8.2).
    """
    o = _Obj(obj)
    ctx = _Ctx(
        lookup=lookup,
        now=time.time() if now is None else now,
        no_controller_after=no_controller_after,
        probe=probe,
    )
    key = (o.group, o.kind)
    if o.kind == "Namespace" and o.group == "":
        return _namespace(o, ctx)
    if o.deleting:
        finalizers = o.list_at(o.meta, "finalizers", "metadata.finalizers")
        tail = f", waiting for finalizers {', '.join(map(str, finalizers))}" if finalizers else ""
        return _status(_H.PROGRESSING, "being deleted" + tail)
    platform = o.group in _PLATFORM_GROUPS and key not in _STATUSLESS_PLATFORM_KINDS
    if platform and _never_written(o):
        if key in _PROBED_KINDS and (probed := _probed(o, ctx)) is not None:
            return _status(probed.state, _short(f"no controller status; {probed.message}"))
        return _no_controller(o, ctx)
    handler = _HANDLERS.get(key, _generic)
    return handler(o, ctx)


def judge(
    obj: Mapping[str, Any],
    *,
    lookup: Lookup | None = None,
    now: float | None = None,
    no_controller_after: float = 60.0,
    probe: McpProbe | None = None,
) -> HealthStatus:
    """:func:`assess`, with a status that cannot be read judged ``Unverified`` instead of raising: a
    controller that writes malformed status (conditions not a list, a condition status other than
    True/False/Unknown, a counter that is not a number) leaves the object unjudged, and the message names
    the field at fault. Never raises for the object's content."""
    try:
        return assess(obj, lookup=lookup, now=now, no_controller_after=no_controller_after, probe=probe)
    except (ValueError, TypeError) as exc:  # HealthInputError names the field; anything else the type
        return HealthStatus(state=_H.UNVERIFIED, message=f"status cannot be judged: {exc}")


def missing_tools(remote_mcp_server: Mapping[str, Any], tool_names: Iterable[str]) -> list[str]:
    """Names from ``tool_names`` absent from a RemoteMCPServer's ``status.discoveredTools``.

    Use it with the ``toolNames`` an Agent lists for that server (agent-platform-formats.md §8.2: the
    server is only healthy for that Agent when every listed name was discovered). Order is kept.

    Raises:
        HealthInputError: when the object or its ``status.discoveredTools`` is malformed.
    """
    o = _Obj(remote_mcp_server)
    have = set(_tool_names(o))
    return [n for n in tool_names if n not in have]
