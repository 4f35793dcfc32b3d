"""Kubernetes Events on managed objects: applies, prunes, apply failures and drift.

Events are written with the ``events.k8s.io/v1`` API (https://kubernetes.io/docs/reference/kubernetes-api/
cluster-resources/event-v1/), which ``kubectl describe`` and ``kubectl events`` show beside the object:
``regarding`` names the object (with its ``uid`` when the object still exists, so ``describe`` matches
it), ``reportingController`` is ``reconciler.dev/reconciler``, ``note`` is at most 1 KiB. Cluster-scoped
objects get their events in the ``default`` namespace, as the API server's own controllers do.

Writes happen on one background thread per :class:`EventRecorder` (a bounded queue), never in the event
loop and never inside a pass, so a slow or refusing API server delays nothing else. Failures are logged
and counted (:attr:`EventRecorder.failed`), never raised: events are a report, not part of the pass.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from reconciler.errors import KubeError
from reconciler.model import Action, ObjectRef, PassResult

if TYPE_CHECKING:
    from reconciler.cluster.client import KubeClient

log = logging.getLogger("reconciler.events")

REPORTING_CONTROLLER = "reconciler.dev/reconciler"
NOTE_MAX = 1024
#: Events waiting to be written beyond which new ones are dropped (and counted in ``dropped``).
QUEUE_MAX = 1000

_REASONS = {
    Action.CREATED: ("Normal", "Created", "Apply"),
    Action.CONFIGURED: ("Normal", "Configured", "Apply"),
    Action.DELETED: ("Normal", "Pruned", "Prune"),
    Action.FAILED: ("Warning", "ApplyFailed", "Apply"),
}


class DriftField(BaseModel):
    """One drifted field: its dot path on the live object and the dot path in Git it came from."""

    live: str
    git: str


class DriftEvent(BaseModel):
    """A drift event as the daemon publishes it on ``reconciler.drift.<env>`` (paths, never values).

    ``paths`` are the live object's dot paths; ``fields`` pairs each with the Git path it came from,
    which differs for a write-only field (Secret ``data.token`` from ``stringData.token``).
    """

    model_config = ConfigDict(extra="allow")

    environment: str
    object: str = Field(description="Kind/namespace/name")
    cluster: str = Field(default="", description="the target cluster the object lives in (its label)")
    paths: list[str] = Field(default_factory=list)
    fields: list[DriftField] = Field(default_factory=list)
    mode: str = "correct"
    managers: list[str] = Field(default_factory=list)
    detected_at: float = Field(default=0.0, description="UNIX time, seconds")
    corrected: bool = False
    corrected_at: float | None = None
    error: str = ""
    ref: ObjectRef | None = Field(default=None, description="the object's full identity, when sent")

    def described_paths(self) -> list[str]:
        """Each live path, followed by ``(from <git path>)`` where Git wrote it elsewhere."""
        sources = {f.live: f.git for f in self.fields if f.git != f.live}
        return [f"{p} (from {sources[p]})" if p in sources else p for p in self.paths]


def _micro_time(ts: float | None = None) -> str:
    """A Kubernetes ``MicroTime``: RFC 3339 with microseconds, UTC."""
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )


def event_manifest(
    ref: ObjectRef,
    *,
    reason: str,
    note: str,
    type_: str = "Normal",
    action: str = "Apply",
    uid: str = "",
    resource_version: str = "",
    instance: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    """The ``events.k8s.io/v1`` Event for one object.

    Args:
        ref: the object the event is about.
        reason: a CamelCase reason (``Created``, ``DriftCorrected`` …), at most 128 characters.
        note: human-readable text; cut to 1 KiB.
        type_: ``Normal`` or ``Warning``.
        action: what was done (``Apply``, ``Prune``, ``CorrectDrift``).
        uid: the object's uid ("" when unknown or deleted).
        resource_version: the object's resourceVersion the event refers to ("" when unknown).
        instance: ``reportingInstance`` (default: ``<hostname>-<pid>``).
        now: UNIX seconds of ``eventTime``; default now.

    Raises:
        ValueError: for a ``type_`` other than Normal/Warning.
    """
    if type_ not in ("Normal", "Warning"):
        raise ValueError(f"event type {type_!r} must be Normal or Warning")
    namespace = ref.namespace or "default"
    regarding: dict[str, Any] = {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name}
    if ref.namespace:
        regarding["namespace"] = ref.namespace
    if uid:
        regarding["uid"] = uid
    if resource_version:
        regarding["resourceVersion"] = resource_version
    if len(note.encode()) > NOTE_MAX:
        note = note.encode()[: NOTE_MAX - 3].decode("utf-8", "ignore") + "..."
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": f"{ref.name[:200]}.{uuid.uuid4().hex[:16]}",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "reconciler"},
        },
        "eventTime": _micro_time(now),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": (instance or f"{socket.gethostname()}-{os.getpid()}")[:128],
        "action": action[:128],
        "reason": reason[:128],
        "type": type_,
        "note": note,
        "regarding": regarding,
    }


def pass_events(result: PassResult) -> list[tuple[ObjectRef, str, str, str, str]]:
    """What a finished pass reports: ``(ref, type, reason, action, note)`` for each object it created,
    configured, pruned or failed to apply (unchanged and skipped objects get no event)."""
    out: list[tuple[ObjectRef, str, str, str, str]] = []
    if not result.revision:
        return out
    for change in result.changes.entries:
        spec = _REASONS.get(change.action)
        if spec is None:
            continue
        type_, reason, action = spec
        verb = {"Created": "created", "Configured": "configured", "Pruned": "pruned (left Git)"}.get(
            reason, "could not be applied"
        )
        note = f"{change.ref.kind} {verb} by environment {result.environment} at {result.revision}"
        if change.message and change.action is Action.FAILED:
            note += f": {change.message}"
        out.append((change.ref, type_, reason, action, note))
    return out


def drift_note(event: DriftEvent) -> tuple[str, str, str, str]:
    """``(type, reason, action, note)`` for a drift event (paths only, never values)."""
    paths = ", ".join(event.described_paths()) or "(unknown)"
    by = f" by {', '.join(event.managers)}" if event.managers else ""
    if event.corrected:
        return (
            "Normal",
            "DriftCorrected",
            "CorrectDrift",
            f"drift on {paths}{by} corrected for environment {event.environment}",
        )
    if event.error:
        return (
            "Warning",
            "DriftCorrectionFailed",
            "CorrectDrift",
            f"drift on {paths}{by} not corrected for environment {event.environment}: {event.error}",
        )
    return (
        "Warning",
        "DriftDetected",
        "ReportDrift",
        f"drift on {paths}{by} in environment {event.environment} (drift: warn, left as is)",
    )


class EventRecorder:
    """Writes Kubernetes Events through ``client`` on one background thread.

    Args:
        client: a client of its own is best (its call counters then count only events).
        instance: ``reportingInstance``; default ``<hostname>-<pid>``.
        close_client: close ``client`` in :meth:`close`.
        clients: the client of a target cluster by its label (``PassResult.cluster``,
            ``DriftEvent.cluster``), so each Event is written in the cluster its object lives in; ``None``
            from it drops the Event (never written to another cluster). Without it every Event goes
            through ``client``.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        instance: str = "",
        close_client: bool = False,
        clients: Callable[[str], KubeClient | None] | None = None,
    ) -> None:
        self.client = client
        self.clients = clients
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.close_client = close_client
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="k8s-events")
        self._pending = 0
        self._lock = threading.Lock()
        self.written = 0
        self.failed = 0
        self.dropped = 0

    def record(
        self,
        ref: ObjectRef,
        *,
        reason: str,
        note: str,
        type_: str = "Normal",
        action: str = "Apply",
        lookup_uid: bool = True,
        cluster: str = "",
    ) -> dict[str, Any] | None:
        """Write one Event now (blocking); returns the stored Event, ``None`` when it failed.

        Args:
            ref: the object.
            reason, note, type_, action: see :func:`event_manifest`.
            lookup_uid: read the object first for its uid and resourceVersion (one GET), so that
                ``kubectl describe`` lists the event.
            cluster: the label of the object's target cluster ("": ``client``'s).
        """
        client = self.client if not cluster or self.clients is None else self.clients(cluster)
        if client is None:
            with self._lock:
                self.dropped += 1
            return None
        uid = rv = ""
        if lookup_uid:
            try:
                live = client.get(ref)
            except KubeError:
                live = None
            meta = (live or {}).get("metadata") or {}
            uid, rv = str(meta.get("uid", "")), str(meta.get("resourceVersion", ""))
        body = event_manifest(
            ref,
            reason=reason,
            note=note,
            type_=type_,
            action=action,
            uid=uid,
            resource_version=rv,
            instance=self.instance,
        )
        ns = body["metadata"]["namespace"]
        try:
            stored: dict[str, Any] = client.request(
                "POST",
                f"/apis/events.k8s.io/v1/namespaces/{ns}/events",
                body=body,
                verb="event",
                obj=f"Event for {ref}",
            )
        except KubeError as exc:
            with self._lock:
                self.failed += 1
            log.warning("could not record event %s on %s: %s", reason, ref, exc)
            return None
        with self._lock:
            self.written += 1
        return stored

    def submit(
        self,
        ref: ObjectRef,
        *,
        reason: str,
        note: str,
        type_: str = "Normal",
        action: str = "Apply",
        cluster: str = "",
    ) -> Future[dict[str, Any] | None] | None:
        """Queue one Event for the background thread; ``None`` when the queue is full (dropped)."""
        with self._lock:
            if self._pending >= QUEUE_MAX:
                self.dropped += 1
                return None
            self._pending += 1

        def run() -> dict[str, Any] | None:
            try:
                return self.record(ref, reason=reason, note=note, type_=type_, action=action, cluster=cluster)
            finally:
                with self._lock:
                    self._pending -= 1

        return self._pool.submit(run)

    def submit_pass(self, result: PassResult) -> list[Future[dict[str, Any] | None]]:
        """Queue the events of a finished pass (see :func:`pass_events`)."""
        futures = []
        for ref, type_, reason, action, note in pass_events(result):
            f = self.submit(ref, reason=reason, note=note, type_=type_, action=action, cluster=result.cluster)
            if f is not None:
                futures.append(f)
        return futures

    def submit_drift(
        self, event: DriftEvent, refs: dict[str, ObjectRef] | None = None
    ) -> Future[dict[str, Any] | None] | None:
        """Queue the event of one drift report.

        Args:
            event: the drift event.
            refs: ``str(ref) → ref`` for events without ``ref`` (the daemon's desired objects); an
                object found in neither gets no event.
        """
        ref = event.ref or (refs or {}).get(event.object)
        if ref is None:
            return None
        type_, reason, action, note = drift_note(event)
        return self.submit(ref, reason=reason, note=note, type_=type_, action=action, cluster=event.cluster)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting up to ``timeout`` seconds in all), then stop the thread."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending == 0:
                    break
            time.sleep(0.02)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.close_client:
            self.client.close()
