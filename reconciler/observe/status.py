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
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel, Field

from reconciler.model import Action, HealthStatus, PassResult, verdict
from reconciler.observe.events import DriftEvent


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
    kind: str = Field(description="promotion | rollback | revert | change")
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


class EnvSummary(BaseModel):
    """One environment on the overview."""

    name: str
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


class EnvDetail(BaseModel):
    """One environment's page."""

    summary: EnvSummary
    objects: list[ObjectRow] = Field(default_factory=list)
    drift: list[DriftEvent] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    pending: PendingChange | None = None


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
) -> EnvSummary:
    """The overview row of one environment.

    Args:
        last: the last finished pass (of the branch's latest commit the daemon saw).
        applied: the last pass that succeeded (default: ``last`` when it succeeded).
        gate: the last health gate's result (``passed`` or ``failed: <outcome>``; "" when none ran).
    """
    if applied is None and last is not None and last.ok:
        applied = last
    health = last.health if last and last.health else applied.health if applied else {}
    v = verdict(health)
    return EnvSummary(
        name=name,
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
    )


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
    ones ``pending``; ``entries`` are newest first. Nothing is marked when the applied commit is absent."""
    sha = applied.rsplit("@sha1:", 1)[-1] if applied else ""
    if not sha or not any(e.sha == sha for e in entries):
        return entries
    before = True
    for e in entries:
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
