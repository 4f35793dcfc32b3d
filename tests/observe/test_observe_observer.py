"""The Observer glue with in-memory stand-ins: hooks chain, metrics count, Events are queued with the
object's uid, drift events find their object, Git fetch timings are recorded."""

from __future__ import annotations

from typing import Any

import structlog.testing
from prometheus_client.parser import text_string_to_metric_families

from reconciler.errors import ServerError
from reconciler.model import Action, ChangeSet, ObjectRef, PassResult
from reconciler.observe import EventRecorder, Metrics, Observer

DEP = ObjectRef(group="apps", kind="Deployment", namespace="agents", name="web")


class FakeClient:
    """Records Event POSTs; answers GETs with a uid; can refuse."""

    def __init__(self, refuse: bool = False) -> None:
        self.posted: list[dict[str, Any]] = []
        self.refuse = refuse

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return {"metadata": {"uid": f"uid-{ref.name}", "resourceVersion": "7"}}

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        if self.refuse:
            raise ServerError("Event", 503, "ServiceUnavailable", "try later")
        assert (
            method == "POST"
            and path == f"/apis/events.k8s.io/v1/namespaces/{body['metadata']['namespace']}/events"
        )
        self.posted.append(body)
        return body

    def close(self) -> None:
        pass


class Hooks:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.on_result: Any = lambda r: self.seen.append("result")
        self.on_drift: Any = lambda e: self.seen.append("drift")


class Source:
    last_fetch_seconds = 0.125


def _result(**kw: Any) -> PassResult:
    changes = ChangeSet()
    changes.add(DEP, Action.CONFIGURED)
    changes.add(ObjectRef(kind="Service", namespace="agents", name="web"), Action.UNCHANGED)
    base = dict(
        environment="dev",
        revision="main@sha1:" + "a" * 40,
        ok=True,
        changes=changes,
        started_at=1.0,
        duration=0.5,
    )
    base.update(kw)
    return PassResult(**base)


def _value(m: Metrics, name: str, **labels: str) -> float:
    body, _ = m.render()
    for f in text_string_to_metric_families(body.decode()):
        for s in f.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def test_attach_chains_hooks_counts_and_writes_events() -> None:
    client = FakeClient()
    recorder = EventRecorder(client)  # type: ignore[arg-type]
    metrics = Metrics()
    observer = Observer(metrics, recorder)
    hooks = Hooks()
    observer.attach(hooks, Source())
    hooks.on_result(_result())
    hooks.on_drift(
        {
            "environment": "dev",
            "object": str(DEP),
            "paths": ["spec.replicas"],
            "managers": ["kubectl"],
            "corrected": True,
        }
    )
    hooks.on_drift(
        {"environment": "dev", "object": "Deployment/agents/unknown", "paths": ["x"], "corrected": True}
    )
    observer.close()
    assert hooks.seen == ["result", "drift", "drift"]  # the daemon's own hooks still run, first
    assert _value(metrics, "reconciler_reconcile_total", environment="dev", result="success") == 1
    assert _value(metrics, "reconciler_drift_corrected_total", environment="dev") == 2
    assert (
        _value(metrics, "reconciler_git_operation_duration_seconds_sum", operation="fetch", result="success")
        == 0.125
    )
    reasons = [(e["reason"], e["regarding"]["name"], e["regarding"].get("uid")) for e in client.posted]
    # the unchanged Service gets no event; the drift on an object never applied gets none either
    assert reasons == [("Configured", "web", "uid-web"), ("DriftCorrected", "web", "uid-web")]
    assert recorder.written == 2 and recorder.failed == 0


def test_failed_fetch_and_refused_events_are_counted_not_raised() -> None:
    client = FakeClient(refuse=True)
    recorder = EventRecorder(client)  # type: ignore[arg-type]
    metrics = Metrics()
    observer = Observer(metrics, recorder)
    hooks = Hooks()
    observer.attach(hooks, Source())
    hooks.on_result(_result())
    hooks.on_result(
        PassResult(
            environment="dev", ok=False, error="git fetch /x main: unreachable", started_at=1.0, duration=2.0
        )
    )
    observer.close()
    assert recorder.failed == 1 and recorder.written == 0
    assert (
        _value(
            metrics, "reconciler_git_operation_duration_seconds_count", operation="fetch", result="failure"
        )
        == 1
    )
    assert _value(metrics, "reconciler_reconcile_total", environment="dev", result="failure") == 1


def test_malformed_drift_event_is_logged_not_raised() -> None:
    client = FakeClient()
    observer = Observer(Metrics(), EventRecorder(client))  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        observer.on_drift({"object": 3})  # no environment, object not a string: reported, not raised
    observer.close()
    assert [e["event"] for e in logs] == ["drift.malformed_event"]
    assert client.posted == []
