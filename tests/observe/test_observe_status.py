"""Status rules: sync state, health summaries, trailers, diff classes and the Event manifests."""

from __future__ import annotations

import pytest

from reconciler.model import Action, ChangeSet, HealthState, HealthStatus, ObjectRef, PassResult
from reconciler.observe.events import DriftEvent, drift_note, event_manifest, pass_events
from reconciler.observe.status import (
    PendingChange,
    SyncState,
    commit_kind,
    diff_line_class,
    health_counts,
    object_rows,
    parse_trailers,
    pending_from_result,
    summarize_env,
    sync_state,
)

DEP = ObjectRef(group="apps", kind="Deployment", namespace="agents", name="web")
SVC = ObjectRef(kind="Service", namespace="agents", name="web")
NS = ObjectRef(kind="Namespace", name="agents")


def _last(ok: bool = True, started: float = 100.0) -> PassResult:
    changes = ChangeSet()
    changes.add(NS, Action.UNCHANGED)
    changes.add(DEP, Action.CONFIGURED, diff="--- live\n+++ desired\n@@ -1 +1 @@\n-a\n+b")
    changes.add(SVC, Action.DELETED)
    return PassResult(
        environment="dev",
        revision="main@sha1:" + "1" * 40,
        ok=ok,
        error="" if ok else "Deployment/agents/web: Invalid",
        changes=changes,
        health={
            str(NS): HealthStatus(state=HealthState.HEALTHY),
            str(DEP): HealthStatus(state=HealthState.PROGRESSING, message="0/1 available"),
        },
        started_at=started,
        duration=2.0,
        trigger="poll",
    )


def test_sync_state_rules() -> None:
    last = _last()
    rev = last.revision
    assert sync_state(applied="") is SyncState.NOT_RECONCILED
    assert sync_state(applied=rev) is SyncState.UNKNOWN  # the branch's head is not known
    assert sync_state(applied=rev, head=rev, failed=True) is SyncState.FAILED
    assert sync_state(applied="", head=rev, failed=True) is SyncState.FAILED
    assert sync_state(applied=rev, head=rev, since=100.0) is SyncState.SYNCED
    pending = PendingChange(
        environment="dev", computed_at=150.0, entries=[{"object": str(DEP), "action": "configured"}]
    )
    assert sync_state(applied=rev, head=rev, pending=pending, since=100.0) is SyncState.OUT_OF_SYNC
    stale = pending.model_copy(update={"computed_at": 50.0})  # older than the last pass: says nothing
    assert sync_state(applied=rev, head=rev, pending=stale, since=100.0) is SyncState.SYNCED
    empty = PendingChange(environment="dev", computed_at=150.0)
    assert sync_state(applied=rev, head=rev, pending=empty, since=100.0) is SyncState.SYNCED
    assert sync_state(applied=rev, head="main@sha1:" + "2" * 40) is SyncState.OUT_OF_SYNC
    warn = DriftEvent(
        environment="dev", object=str(DEP), paths=["spec.replicas"], mode="warn", detected_at=120.0
    )
    assert sync_state(applied=rev, head=rev, drift=[warn], since=100.0) is SyncState.DRIFTED
    old = warn.model_copy(update={"detected_at": 90.0})
    fixed = warn.model_copy(update={"corrected": True})
    assert sync_state(applied=rev, head=rev, drift=[old, fixed], since=100.0) is SyncState.SYNCED


def test_a_blocked_pass_is_blocked_never_synced() -> None:
    applied = _last()
    blocked = _last(ok=False).model_copy(
        update={"revision": "main@sha1:" + "3" * 40, "blocked": True, "error": "prune blocked: 3 of 4"}
    )
    assert blocked.outcome.value == "Blocked"
    s = summarize_env("dev", blocked, applied=applied)
    assert (s.sync.value, s.revision, s.attempted) == ("Blocked", applied.revision, blocked.revision)
    assert s.error == "prune blocked: 3 of 4"
    plan = pending_from_result(blocked, 200.0)
    assert plan.ok and plan.blocked == "prune blocked: 3 of 4" and plan.error == ""


def test_a_running_pass_does_not_change_the_sync_state() -> None:
    last = _last()
    assert summarize_env("dev", last, running=True).sync is SyncState.SYNCED
    assert summarize_env("dev", last, running=True).running


def test_a_failed_pass_keeps_the_applied_revision_and_shows_the_attempted_one() -> None:
    applied = _last()
    failed = _last(ok=False).model_copy(update={"revision": "main@sha1:" + "2" * 40, "error": "bad"})
    s = summarize_env("dev", failed, applied=applied)
    assert (s.sync, s.revision, s.attempted, s.error) == (
        SyncState.FAILED,
        applied.revision,
        failed.revision,
        "bad",
    )


def test_health_summary_and_rows() -> None:
    last = _last()
    assert health_counts(last.health) == {"Progressing": 1, "Healthy": 1}
    s = summarize_env("dev", last, passes=3)
    assert (s.sync, s.health, s.objects, s.passes, s.revision) == (
        SyncState.SYNCED,
        "Progressing",
        2,
        3,
        "main@sha1:" + "1" * 40,
    )
    rows = object_rows(last)
    assert [(r.object, r.action, r.health) for r in rows] == [
        ("Namespace/agents", "unchanged", "Healthy"),
        ("Deployment/agents/web", "configured", "Progressing"),
        ("Service/agents/web", "deleted", ""),
    ]
    assert rows[1].message == "0/1 available"
    assert summarize_env("dev", None).sync is SyncState.NOT_RECONCILED


def test_unverified_objects_make_the_summary_unverified_with_the_missing_controllers() -> None:
    last = _last()
    health = {
        str(NS): HealthStatus(state=HealthState.HEALTHY),
        "Agent/agents/a": HealthStatus(state=HealthState.UNVERIFIED, message="never written", judge="kagent"),
        "MCPServer/agents/m": HealthStatus(state=HealthState.UNVERIFIED, judge="kmcp"),
    }
    s = summarize_env("dev", last.model_copy(update={"health": health}))
    assert (s.health, s.health_counts, s.missing) == (
        "Unverified",
        {"Unverified": 2, "Healthy": 1},
        ["kagent", "kmcp"],
    )
    assert s.verdict == "2 of 3 objects Unverified (no controller: kagent, kmcp)"


def test_pending_keeps_only_what_would_change() -> None:
    p = pending_from_result(_last(), 200.0)
    assert [(e.object, e.action) for e in p.entries] == [
        ("Deployment/agents/web", "configured"),
        ("Service/agents/web", "deleted"),
    ]
    assert p.differs and p.computed_at == 200.0


def test_trailers_and_commit_kinds() -> None:
    msg = (
        "promote(prod): agents from staging @ 1a2b3c4\n\nMoves the research agent.\n\n"
        "Promotion-From: staging\nPromotion-To: prod\nImage: a=b:1\nImage: c=d:2\n"
    )
    t = parse_trailers(msg)
    assert t == {"Promotion-From": "staging", "Promotion-To": "prod", "Image": "a=b:1, c=d:2"}
    assert commit_kind("promote(prod): x", t) == "promotion"
    assert parse_trailers("just a subject") == {}
    assert (
        parse_trailers("subject\n\nA body line that is prose.\nNot: a trailer block because of prose") == {}
    )
    assert commit_kind('Revert "promote(prod): x"', {}) == "revert"
    assert commit_kind("dev: bump clock", {}) == "change"


@pytest.mark.parametrize(
    ("line", "cls"),
    [
        ("--- live/x", "hdr"),
        ("+++ desired/x", "hdr"),
        ("@@ -1 +1 @@", "hunk"),
        ("+a", "add"),
        ("-b", "del"),
        (" c", "ctx"),
    ],
)
def test_diff_classes(line: str, cls: str) -> None:
    assert diff_line_class(line) == cls


def test_event_manifest_fields() -> None:
    ev = event_manifest(DEP, reason="Configured", note="x" * 5000, uid="u-1", resource_version="42", now=0.0)
    assert ev["apiVersion"] == "events.k8s.io/v1"
    assert ev["metadata"]["namespace"] == "agents"
    assert ev["metadata"]["name"].startswith("web.")
    assert ev["regarding"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "namespace": "agents",
        "uid": "u-1",
        "resourceVersion": "42",
    }
    assert ev["eventTime"] == "1970-01-01T00:00:00.000000Z"
    assert len(ev["note"].encode()) <= 1024
    cluster = event_manifest(NS, reason="Created", note="n")
    assert cluster["metadata"]["namespace"] == "default" and "namespace" not in cluster["regarding"]
    assert event_manifest(NS, reason="Created", note="n")["metadata"]["name"] != cluster["metadata"]["name"]
    with pytest.raises(ValueError, match="Normal or Warning"):
        event_manifest(NS, reason="x", note="y", type_="Error")


def test_pass_and_drift_events() -> None:
    last = _last()
    last.changes.add(SVC, Action.FAILED, message="Service/agents/web: Invalid: port")
    evs = pass_events(last)
    assert [(str(r), t, reason) for r, t, reason, _, _ in evs] == [
        ("Deployment/agents/web", "Normal", "Configured"),
        ("Service/agents/web", "Normal", "Pruned"),
        ("Service/agents/web", "Warning", "ApplyFailed"),
    ]
    assert "main@sha1:" + "1" * 40 in evs[0][4] and "Invalid: port" in evs[2][4]
    assert pass_events(PassResult(environment="dev", ok=False, started_at=0, duration=0)) == []
    d = DriftEvent(environment="dev", object=str(DEP), paths=["spec.replicas"], managers=["kubectl-edit"])
    assert drift_note(d.model_copy(update={"corrected": True}))[:2] == ("Normal", "DriftCorrected")
    assert drift_note(d)[:2] == ("Warning", "DriftDetected")
    assert drift_note(d.model_copy(update={"error": "conflict"}))[:2] == ("Warning", "DriftCorrectionFailed")
    assert "spec.replicas" in drift_note(d)[3] and "kubectl-edit" in drift_note(d)[3]
