"""What the status page, its JSON API and ``reconciler status`` show: pydantic view models and the pure
rules that derive sync state and health summaries from pass results, drift reports and Git history.

Sync states (the words Flux and Argo CD users know), decided by :func:`sync_state` alone, so the status
page, its JSON API and ``reconciler status`` agree on the same facts:

* ``NotReconciled`` — no revision applied yet;
* ``Blocked`` — a guard (mass prune, policy, validation) stopped the last pass of the branch's latest
  commit before any write; the applied revision is still the one before, and the reason is shown;
* ``Failed`` — the last pass of the branch's latest commit failed (nothing or only part was applied);
* ``OutOfSync`` — a server-side dry-run of the branch's latest commit would change something, or the
  applied revision is older than the branch's latest commit;
* ``Drifted`` — drift was reported (``drift: warn``) after the last pass and not corrected;
* ``Unknown`` — the branch's latest commit is not known (``reconciler status`` without ``--repo``);
* ``Synced`` — otherwise.

A pass that is running does not change the sync state (a periodic pass over an unchanged revision is
not news); summaries say it in ``running``.

Health is the verdict of :func:`reconciler.model.verdict`: ``Healthy``, ``Progressing``, ``Degraded``,
``Unverified`` (objects nobody judged, with the missing controllers named) or ``Failed``.

Protocol health (:class:`ProtocolStatus`, one per MCP server and A2A agent of the environment) is what
the probe service (:mod:`reconciler.probe.service`) last found: an MCP server's state, tool count and
protocol version, an agent card's state, skills and missing skills. :func:`protocol_report` reads it
from the service's cache (the daemon, never probing for it) or probes (``reconciler status`` without
``--server``). An endpoint nothing probed says ``NotProbed``, never ``Healthy``; without a probe service
the list is empty and the summary says why (:data:`NOT_PROBED`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from reconciler.model import Action, HealthState, HealthStatus, PassResult, verdict
from reconciler.observe.events import DriftEvent

if TYPE_CHECKING:
    from reconciler.probe.models import A2AProbeResult, McpProbeResult
    from reconciler.probe.service import ProbeService

#: The state of an MCP server or agent that no probe reached (never shown as ``Healthy``).
NOT_PROBED_STATE = "NotProbed"
#: What the summary says when no probe service is configured.
NOT_PROBED = "not probed: set RECONCILER_PROBE_ADDRESSES (or RECONCILER_PROBE_DIRECT=true in-cluster)"


class SyncState(StrEnum):
    """An environment's sync state (see the module docstring)."""

    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    DRIFTED = "Drifted"
    FAILED = "Failed"
    BLOCKED = "Blocked"
    NOT_RECONCILED = "NotReconciled"
    UNKNOWN = "Unknown"


class ObjectRow(BaseModel):
    """One managed object: what the last pass did to it and its health."""

    object: str = Field(description="Kind/namespace/name")
    kind: str
    namespace: str = ""
    name: str
    action: str = ""
    health: str = ""
    message: str = ""


class DiffEntry(BaseModel):
    """One object a pending change would create, configure or delete, with its unified diff."""

    object: str
    action: str
    diff: str = ""
    message: str = Field(default="", description="e.g. why a deletion would be blocked")


class PendingChange(BaseModel):
    """The result of a server-side dry-run of the branch's latest commit."""

    environment: str
    revision: str = ""
    ok: bool = True
    error: str = ""
    blocked: str = Field(default="", description="why a guard would stop applying it ('' when none would)")
    computed_at: float = Field(default=0.0, description="UNIX time, seconds")
    entries: list[DiffEntry] = Field(default_factory=list)

    @property
    def differs(self) -> bool:
        """Whether applying the revision would change anything."""
        return bool(self.entries)


class TimelineEntry(BaseModel):
    """One commit of the environment's history (promotion, revert or plain change)."""

    sha: str
    short: str
    date: str = Field(description="ISO 8601")
    author: str = ""
    subject: str
    kind: str = Field(description="promotion | rollback | revert | change | rewind | suspend | resume | sync")
    trailers: dict[str, str] = Field(default_factory=dict)
    applied: bool = Field(default=False, description="the revision the last successful pass applied")
    pending: bool = Field(default=False, description="newer than the applied revision")
    outcome: str = Field(default="", description="recorded outcome (healthy, degraded, reverted), if any")
    from_env: str = Field(default="", description="the environment a promotion came from")
    moved: list[str] = Field(default_factory=list, description="image: before → after")
    merged_by: str = ""
    reverted_by: str = Field(default="", description="the commit that currently undoes this one")
    reason: str = ""
    automatic: bool = Field(default=False, description="a rollback the daemon made itself")
    requested_by: str = Field(
        default="", description="who asked for a rollback through the actions API (Requested-By)"
    )


class AgentCardStatus(BaseModel):
    """What an agent's A2A card says: its name, version, how many skills it lists and which expected
    skills (the Agent's ``a2aConfig.skills``) it lacks."""

    name: str = ""
    version: str = ""
    skills: int = 0
    missing_skills: list[str] = Field(default_factory=list)


class ProtocolStatus(BaseModel):
    """The protocol health of one MCP server or A2A agent, as its last probe found it.

    ``state`` is the probe's verdict (``Healthy``, ``Degraded``, ``Failed``) or ``NotProbed`` (no probe
    reached it: its URL is not mapped, or it was not probed yet). ``url`` is the in-cluster URL the
    object declares; request headers are never part of it.
    """

    object: str = Field(description="Kind namespace/name, e.g. 'RemoteMCPServer tools/everything'")
    protocol: Literal["mcp", "a2a"]
    state: str
    reason: str = Field(default="", description="the probe's one-line reason")
    url: str = Field(default="", description="the in-cluster URL the object declares")
    transport: str = Field(default="", description="MCP: streamable-http or sse")
    tools: int | None = Field(
        default=None, description="MCP: tools listed (None unless the listing succeeded)"
    )
    protocol_version: str = Field(default="", description="MCP: the negotiated protocol version")
    server: str = Field(default="", description="MCP: the server's name and version")
    card: AgentCardStatus | None = Field(default=None, description="A2A: the agent card, when one was read")
    latency: float | None = Field(default=None, description="seconds the probe took")
    checked_at: float | None = Field(default=None, description="UNIX time, seconds, the result was seen")

    @property
    def probed(self) -> bool:
        """Whether a probe reached it (``state`` is a verdict, not ``NotProbed``)."""
        return self.state != NOT_PROBED_STATE


class ProtocolReport(BaseModel):
    """The protocol health of one environment (see :func:`protocol_report`)."""

    probed: bool = Field(default=False, description="a probe service is configured")
    note: str = Field(default="", description="why nothing is probed ('' when a probe service is configured)")
    targets: int = Field(default=0, description="MCP and A2A endpoints among the objects")
    items: list[ProtocolStatus] = Field(default_factory=list)


class EnvSummary(BaseModel):
    """One environment on the overview."""

    name: str
    cluster: str = Field(
        default="",
        description="the target cluster: a kubeconfig context's name, secret:<namespace>/<name>, in-cluster "
        "or default",
    )
    revision: str = Field(default="", description="the revision last applied completely")
    sync: SyncState = SyncState.UNKNOWN
    attempted: str = Field(default="", description="the revision of the last pass when it failed")
    health: str = Field(default="", description="the set's verdict, '' with no objects")
    health_counts: dict[str, int] = Field(default_factory=dict)
    verdict: str = Field(default="", description="the verdict in words: counts and missing controllers")
    missing: list[str] = Field(default_factory=list, description="controllers missing to judge objects")
    gate: str = Field(default="", description="the last health gate: passed, or failed: <outcome>")
    objects: int = 0
    ok: bool | None = None
    error: str = ""
    last_pass_at: float | None = Field(default=None, description="UNIX time, seconds")
    last_duration: float | None = Field(default=None, description="seconds")
    trigger: str = ""
    passes: int = 0
    running: bool = False
    owner: str = Field(
        default="",
        description="the replica holding the environment's lease, as this replica last read it (sharded "
        "daemons, reconciler run --shard); '' when not sharded or nobody holds it",
    )
    protocols: list[ProtocolStatus] = Field(
        default_factory=list, description="each MCP server's and agent's protocol health (when probed)"
    )
    protocols_probed: bool = Field(default=False, description="MCP servers and agents are probed at all")
    protocols_note: str = Field(default="", description="why they are not probed ('' when they are)")
    protocol_targets: int = Field(default=0, description="MCP and A2A endpoints among the objects")
    suspended: bool = Field(default=False, description="suspended: no passes until resumed")
    suspended_by: str = Field(default="", description="who suspended it")
    suspended_at: float | None = Field(default=None, description="when, UNIX seconds")
    suspended_reason: str = Field(default="", description="why")
    promote_from: str = Field(default="", description="promotion.from: where promotions come from ('': none)")


class RollbackTarget(BaseModel):
    """What a rollback of the environment (``app`` empty) or of one app would undo: the newest promotion in
    effect (for an app: the newest one that moved its images and was not rolled back for it)."""

    app: str = ""
    promotion: str = Field(description="the promotion commit id")
    short: str
    subject: str = ""


class EnvDetail(BaseModel):
    """One environment's page."""

    summary: EnvSummary
    objects: list[ObjectRow] = Field(default_factory=list)
    drift: list[DriftEvent] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    pending: PendingChange | None = None
    rollback: list[RollbackTarget] = Field(
        default_factory=list,
        description="what can be rolled back, from the promotion history: the environment first (app "
        "empty), then each app; empty when the history could not be read",
    )


def health_counts(health: Mapping[str, HealthStatus]) -> dict[str, int]:
    """Objects by verdict, worst first, zeros omitted."""
    return verdict(health).counts


def sync_state(
    *,
    applied: str,
    head: str = "",
    failed: bool = False,
    blocked: bool = False,
    pending: PendingChange | None = None,
    drift: Sequence[DriftEvent] = (),
    since: float = 0.0,
) -> SyncState:
    """The sync state of one environment (see the module docstring); the only place it is decided.

    Args:
        applied: the revision the environment last applied completely (``main@sha1:…``; "" for none).
        head: the branch's latest revision, when known ("" otherwise).
        failed: whether the last pass, of ``head``, failed.
        blocked: whether a guard stopped the last pass, of ``head``, before any write.
        pending: a dry-run of the branch's latest commit made after the last pass, if any.
        drift: drift reports of this environment (any order).
        since: UNIX time (seconds) the last pass started; drift reported before it is settled.
    """
    if blocked:
        return SyncState.BLOCKED
    if failed:
        return SyncState.FAILED
    if not applied:
        return SyncState.NOT_RECONCILED
    if pending is not None and pending.ok and pending.computed_at >= since and pending.differs:
        return SyncState.OUT_OF_SYNC
    if head and head != applied:
        return SyncState.OUT_OF_SYNC
    if any(d.detected_at >= since and not d.corrected for d in drift):
        return SyncState.DRIFTED
    return SyncState.SYNCED if head else SyncState.UNKNOWN


def summarize_env(
    name: str,
    last: PassResult | None,
    *,
    applied: PassResult | None = None,
    running: bool = False,
    passes: int = 0,
    pending: PendingChange | None = None,
    drift: Sequence[DriftEvent] = (),
    gate: str = "",
    protocols: ProtocolReport | None = None,
    cluster: str = "",
) -> EnvSummary:
    """The overview row of one environment.

    Args:
        last: the last finished pass (of the branch's latest commit the daemon saw).
        applied: the last pass that succeeded (default: ``last`` when it succeeded).
        gate: the last health gate's result (``passed`` or ``failed: <outcome>``; "" when none ran).
        protocols: the protocol health the daemon last read (``None``: not read).
        cluster: the target cluster's name (:attr:`reconciler.cluster.targets.Target.label`).
    """
    if applied is None and last is not None and last.ok:
        applied = last
    health = last.health if last and last.health else applied.health if applied else {}
    v = verdict(health)
    return EnvSummary(
        name=name,
        cluster=cluster,
        revision=applied.revision if applied else "",
        attempted=last.revision if last and not last.ok else "",
        sync=sync_state(
            applied=applied.revision if applied else "",
            head=last.revision if last else "",
            failed=bool(last and not last.ok),
            blocked=bool(last and last.blocked),
            pending=pending,
            drift=drift,
            since=last.started_at if last else 0.0,
        ),
        health=v.state.value if health else "",
        health_counts=v.counts,
        verdict=v.message if health else "",
        missing=v.missing,
        gate=gate,
        objects=len(health)
        or (sum(1 for c in last.changes.entries if c.action is not Action.DELETED) if last else 0),
        ok=last.ok if last else None,
        error=last.error if last else "",
        last_pass_at=last.started_at if last else None,
        last_duration=last.duration if last else None,
        trigger=last.trigger if last else "",
        passes=passes,
        running=running,
        **protocol_fields(protocols),
    )


def protocol_fields(report: ProtocolReport | None) -> dict[str, Any]:
    """The :class:`EnvSummary` fields of a protocol report (``None``: nothing read, nothing said)."""
    if report is None:
        return {}
    return {
        "protocols": list(report.items),
        "protocols_probed": report.probed,
        "protocols_note": report.note,
        "protocol_targets": report.targets,
    }


class ProbeTimes:
    """When the daemon first saw each probe result (UNIX seconds), so a status can say how old it is.

    The probe service keeps results without a wall-clock time; a result is a new object after every
    probe, so a result seen before (the same object) keeps its time and a new one is stamped now. The
    daemon reads the cache right after the passes and health readings that probe, so the time is that
    of the probe within a pass's duration. Thread-safe; forgets endpoints not seen in the last round.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[object, float]] = {}
        self._lock = threading.Lock()

    def stamp(self, key: tuple[str, str], result: object, now: float) -> float:
        """The time ``result`` (the last result of endpoint ``key``) was first seen."""
        with self._lock:
            hit = self._seen.get(key)
            if hit is not None and hit[0] is result:
                return hit[1]
            self._seen[key] = (result, now)
            return now

    def keep(self, keys: Iterable[tuple[str, str]]) -> None:
        """Forget every endpoint but ``keys``."""
        wanted = set(keys)
        with self._lock:
            for key in [k for k in self._seen if k not in wanted]:
                del self._seen[key]


def _mcp_status(
    owner: str, url: str, result: McpProbeResult | None, not_probed: str, checked_at: float | None
) -> ProtocolStatus:
    if result is None:
        return ProtocolStatus(
            object=owner, protocol="mcp", state=NOT_PROBED_STATE, reason=not_probed, url=url
        )
    handshake = result.state is not HealthState.FAILED
    server = f"{result.server_name} {result.server_version}".strip()
    return ProtocolStatus(
        object=owner,
        protocol="mcp",
        state=result.state.value,
        reason=result.reason,
        url=url,
        transport=result.transport,
        tools=len(result.tools) if result.healthy else None,
        protocol_version=result.protocol_version if handshake else "",
        server=server if handshake else "",
        latency=round(result.latency, 4),
        checked_at=checked_at,
    )


def _a2a_status(
    owner: str, url: str, result: A2AProbeResult | None, not_probed: str, checked_at: float | None
) -> ProtocolStatus:
    if result is None:
        return ProtocolStatus(
            object=owner, protocol="a2a", state=NOT_PROBED_STATE, reason=not_probed, url=url
        )
    card = None
    if result.state is not HealthState.FAILED:  # a card was read and parsed
        card = AgentCardStatus(
            name=result.name,
            version=result.version,
            skills=len(result.skills),
            missing_skills=list(result.missing_skills),
        )
    return ProtocolStatus(
        object=owner,
        protocol="a2a",
        state=result.state.value,
        reason=result.reason,
        url=url,
        card=card,
        latency=round(result.latency, 4),
        checked_at=checked_at,
    )


def protocol_report(
    objects: Iterable[Mapping[str, Any]],
    probes: ProbeService | None,
    *,
    probe: bool = False,
    times: ProbeTimes | None = None,
    note: str = NOT_PROBED,
    now: float | None = None,
) -> ProtocolReport:
    """The protocol health of ``objects``: one :class:`ProtocolStatus` per MCP endpoint and A2A agent
    they declare (:func:`reconciler.probe.service.mcp_target`, :func:`~reconciler.probe.service.a2a_target`),
    MCP servers first, each kind by object.

    Args:
        objects: desired or live objects of one environment.
        probes: the probe service; ``None``: nothing is listed and the report says ``note``.
        probe: probe endpoints without a fresh result (``reconciler status``); by default only what the
            service's cache holds is read, and nothing is sent.
        times: when each result was first seen (the daemon's); without it, results are stamped ``now``.
        note: why nothing is probed, said when ``probes`` is ``None``.
        now: the current UNIX time (default: the clock).
    """
    from reconciler.probe.service import a2a_target, mcp_target

    objs = list(objects)
    targets = sum((mcp_target(o) is not None) + (a2a_target(o) is not None) for o in objs)
    if probes is None:
        return ProtocolReport(probed=False, note=note, targets=targets)
    t = time.time() if now is None else now
    items: list[ProtocolStatus] = []
    seen: list[tuple[str, str]] = []

    def stamp(key: tuple[str, str], result: object | None) -> float | None:
        if result is None:
            return None
        seen.append(key)
        return times.stamp(key, result, t) if times is not None else t

    def unprobed(url: str) -> str:
        if probes.address(url) is None:
            return "not probed: RECONCILER_PROBE_ADDRESSES does not map its URL"
        return "not probed yet"

    for obj in objs:
        mcp = mcp_target(obj)
        if mcp is not None:
            owner = str(mcp.owner)
            result = probes.mcp(obj) if probe else probes.known_mcp(obj)
            items.append(
                _mcp_status(owner, mcp.url, result, unprobed(mcp.url), stamp(("mcp", owner), result))
            )
        a2a = a2a_target(obj)
        if a2a is not None:
            card = probes.a2a(obj) if probe else probes.known_a2a(obj)
            items.append(
                _a2a_status(a2a.owner, a2a.url, card, unprobed(a2a.url), stamp(("a2a", a2a.owner), card))
            )
    if times is not None:
        times.keep(seen)
    items.sort(key=lambda p: (p.protocol != "mcp", p.object))
    return ProtocolReport(probed=True, targets=targets, items=items)


def protocol_detail(p: ProtocolStatus) -> str:
    """One line on ``p`` after its state: an MCP server's tool count, protocol version and server; an
    agent's card (name, version, skill count, missing skills); the probe's reason when it is not
    ``Healthy`` and the rest does not already say it."""
    parts: list[str] = []
    if p.protocol == "mcp":
        if p.tools is not None:
            parts.append(f"{p.tools} tool{'' if p.tools == 1 else 's'}")
        if p.protocol_version:
            parts.append(f"MCP {p.protocol_version}")
        if p.server:
            parts.append(f"server {p.server}")
        if p.state != HealthState.HEALTHY.value and p.reason:
            parts.append(p.reason)
    else:
        c = p.card
        if c is not None:
            parts.append(f"card {c.name or '(unnamed)'}" + (f" {c.version}" if c.version else ""))
            parts.append(f"{c.skills} skill{'' if c.skills == 1 else 's'}")
            if c.missing_skills:
                parts.append(f"missing skills: {', '.join(c.missing_skills)}")
        if p.state != HealthState.HEALTHY.value and p.reason and not (c is not None and c.missing_skills):
            parts.append(p.reason)
    return ", ".join(parts)


def protocols_overview(s: EnvSummary) -> str:
    """The environment's protocol health in a few words ("" when it has no MCP server or agent):
    ``protocols: 1 Degraded, 2 Healthy`` (worst first), or how many are not probed and why."""
    if not s.protocols_probed:
        if not s.protocol_targets:
            return ""
        n, plural = s.protocol_targets, "" if s.protocol_targets == 1 else "s"
        return f"{n} MCP server{plural}/agent{plural} {s.protocols_note or 'not probed'}"
    if not s.protocols:
        return ""
    order = [
        HealthState.FAILED.value,
        HealthState.DEGRADED.value,
        NOT_PROBED_STATE,
        HealthState.HEALTHY.value,
    ]
    counts: dict[str, int] = {}
    for p in s.protocols:
        counts[p.state] = counts.get(p.state, 0) + 1
    ranked = sorted(counts, key=lambda k: order.index(k) if k in order else len(order))
    return "protocols: " + ", ".join(f"{counts[k]} {k}" for k in ranked)


def age(ts: float | None, now: float | None = None) -> str:
    """How long ago UNIX time ``ts`` was, in the largest sensible unit (``never`` for none)."""
    if not ts:
        return "never"
    d = max(0.0, (time.time() if now is None else now) - ts)
    if d < 90:
        return f"{d:.0f} s ago"
    if d < 5400:
        return f"{d / 60:.0f} min ago"
    if d < 129600:
        return f"{d / 3600:.0f} h ago"
    return f"{d / 86400:.0f} d ago"


def object_rows(last: PassResult | None) -> list[ObjectRow]:
    """Each object of the last pass (in apply order) with its action and health."""
    if last is None:
        return []
    rows = []
    seen = set()
    for c in last.changes.entries:
        key = str(c.ref)
        seen.add(key)
        h = last.health.get(key)
        rows.append(
            ObjectRow(
                object=key,
                kind=c.ref.kind,
                namespace=c.ref.namespace,
                name=c.ref.name,
                action=c.action.value,
                health=h.state.value if h else "",
                message=(h.message if h and not h.healthy else "") or c.message,
            )
        )
    for key, h in last.health.items():
        if key not in seen:
            kind, _, rest = key.partition("/")
            ns, _, name = rest.rpartition("/")
            rows.append(ObjectRow(object=key, kind=kind, namespace=ns, name=name, health=h.state.value))
    return rows


def pending_from_result(result: PassResult, computed_at: float) -> PendingChange:
    """The pending change of a dry-run pass: every entry that would be created, configured or deleted
    (deletions a guard would block included, with the reason in their message and in ``blocked``)."""
    entries = [
        DiffEntry(object=str(c.ref), action=c.action.value, diff=c.diff, message=c.message)
        for c in result.changes.entries
        if c.action in (Action.CREATED, Action.CONFIGURED, Action.DELETED)
    ]
    return PendingChange(
        environment=result.environment,
        revision=result.revision,
        ok=result.ok or result.blocked,
        error="" if result.blocked else result.error,
        blocked=result.error if result.blocked else "",
        computed_at=computed_at,
        entries=entries,
    )


_TRAILER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):\s+(.+)$")


def parse_trailers(message: str) -> dict[str, str]:
    """The trailers of a commit message (``Key: value`` lines of its last paragraph, as
    ``git interpret-trailers`` reads them); repeated keys are joined with ``, ``."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return {}
    out: dict[str, str] = {}
    lines = paragraphs[-1].splitlines()
    if not all(_TRAILER.match(line) or line.startswith((" ", "\t")) for line in lines):
        return {}
    for line in lines:
        m = _TRAILER.match(line)
        if m:
            key, value = m.group(1), m.group(2).strip()
            out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def commit_kind(subject: str, trailers: Mapping[str, str]) -> str:
    """``promotion`` (a ``Promotion-To`` trailer or a ``promote(`` subject), ``revert`` or ``change``."""
    if "Promotion-To" in trailers or subject.startswith("promote("):
        return "promotion"
    if subject.startswith(("Revert ", "revert(", "rollback(")):
        return "revert"
    return "change"


def mark_applied(entries: list[TimelineEntry], applied: str) -> list[TimelineEntry]:
    """Mark the entry of the applied revision (``main@sha1:…`` or a commit id) ``applied`` and the newer
    ones ``pending``; ``entries`` are newest first. Nothing is marked when the applied commit is absent;
    suspend, resume and sync entries (actions, not commits) are never marked."""
    sha = applied.rsplit("@sha1:", 1)[-1] if applied else ""
    if not sha or not any(e.sha == sha for e in entries):
        return entries
    before = True
    for e in entries:
        if e.kind in ("suspend", "resume", "sync"):  # actions noted on a commit, not commits applied
            continue
        e.applied = e.sha == sha
        e.pending = before and not e.applied
        if e.applied:
            before = False
    return entries


def diff_line_class(line: str) -> str:
    """CSS class of one unified-diff line: ``hdr`` (file headers), ``hunk``, ``add``, ``del`` or ``ctx``."""
    if line.startswith(("+++", "---")):
        return "hdr"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "ctx"
