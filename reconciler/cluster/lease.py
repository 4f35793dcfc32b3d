"""A coordination.k8s.io/v1 Lease used as a leader-election lock.

Follows client-go's leaderelection semantics: the holder renews ``renewTime`` every retry period; another
candidate takes the lease only when ``renewTime + leaseDurationSeconds`` has passed. Every write is a
compare-and-swap on ``resourceVersion`` (PUT), so two candidates can never both win.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from reconciler.cluster.client import KubeClient
from reconciler.errors import ConflictError, NotFoundError
from reconciler.model import ObjectRef


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fmt(t: dt.datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class LeaseRecord:
    """What the Lease says right now."""

    holder: str
    renew_time: dt.datetime | None
    duration: float
    transitions: int


class LeaseLock:
    """Acquire and renew a Lease.

    Args:
        client: the Kubernetes client.
        namespace: the Lease's namespace (created by the caller).
        name: the Lease's name.
        identity: this candidate's unique identity (host and pid).
        duration: seconds a holder keeps the lease without renewing it.
    """

    def __init__(self, client: KubeClient, namespace: str, name: str, identity: str, duration: float = 10.0):
        self.client = client
        self.ref = ObjectRef(
            group="coordination.k8s.io", version="v1", kind="Lease", namespace=namespace, name=name
        )
        self.identity = identity
        self.duration = duration

    def read(self) -> LeaseRecord | None:
        """The current record, or ``None`` when no Lease exists."""
        obj = self.client.get(self.ref)
        if obj is None:
            return None
        spec = obj.get("spec") or {}
        return LeaseRecord(
            holder=str(spec.get("holderIdentity") or ""),
            renew_time=_parse(spec.get("renewTime")),
            duration=float(spec.get("leaseDurationSeconds") or self.duration),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True when this candidate holds the lease afterwards."""
        now = _now()
        obj = self.client.get(self.ref)
        if obj is None:
            body = self._body(now, transitions=0, acquire=now)
            try:
                self.client.create(body, self.ref)
            except ConflictError:
                return False
            return True
        spec: dict[str, Any] = obj.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        renew = _parse(spec.get("renewTime"))
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        expired = renew is None or now > renew + dt.timedelta(seconds=duration)
        if holder and holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        acquire = _parse(spec.get("acquireTime")) if holder == self.identity else now
        body = self._body(now, transitions=transitions, acquire=acquire or now)
        body["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
        try:
            self.client.replace(body, self.ref)
        except (ConflictError, NotFoundError):
            return False
        return True

    def release(self) -> None:
        """Give the lease up (holder cleared) if this candidate holds it."""
        obj = self.client.get(self.ref)
        if obj is None or (obj.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        body = self._body(
            _now(), transitions=int((obj.get("spec") or {}).get("leaseTransitions") or 0), acquire=None
        )
        body["spec"]["holderIdentity"] = ""
        body["spec"]["leaseDurationSeconds"] = 1
        body["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
        try:
            self.client.replace(body, self.ref)
        except (ConflictError, NotFoundError):
            return

    def _body(self, now: dt.datetime, *, transitions: int, acquire: dt.datetime | None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": _fmt(now),
            "leaseTransitions": transitions,
        }
        if acquire is not None:
            spec["acquireTime"] = _fmt(acquire)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.ref.name, "namespace": self.ref.namespace},
            "spec": spec,
        }
