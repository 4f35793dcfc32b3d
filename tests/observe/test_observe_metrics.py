"""Metrics: each observe_* call shows up in the exposition with the right labels and values."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.model import Action, ChangeSet, HealthState, HealthStatus, ObjectRef, PassResult
from reconciler.observe.metrics import Metrics, default_metrics, observe_webhook


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = m.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _ref(kind: str, name: str) -> ObjectRef:
    return ObjectRef(group="apps" if kind == "Deployment" else "", kind=kind, namespace="ns", name=name)


def _result(env: str = "dev", *, ok: bool = True, sha: str = "a" * 40, duration: float = 0.7) -> PassResult:
    changes = ChangeSet()
    changes.add(_ref("Deployment", "web"), Action.CREATED)
    changes.add(_ref("Service", "web"), Action.CONFIGURED)
    changes.add(_ref("ConfigMap", "old"), Action.DELETED)
    changes.add(_ref("ConfigMap", "gone"), Action.DELETED)
    changes.add(_ref("ConfigMap", "same"), Action.UNCHANGED)
    health = {
        str(_ref("Deployment", "web")): HealthStatus(state=HealthState.PROGRESSING, message="0/1"),
        str(_ref("Service", "web")): HealthStatus(state=HealthState.HEALTHY),
        str(_ref("ConfigMap", "same")): HealthStatus(state=HealthState.HEALTHY),
    }
    return PassResult(
        environment=env,
        revision=f"main@sha1:{sha}",
        ok=ok,
        changes=changes,
        health=health if ok else {},
        started_at=1_700_000_000.0,
        duration=duration,
    )


def test_pass_counts_duration_revision_health_changes_and_prunes() -> None:
    m = Metrics()
    m.observe_pass(_result(duration=0.7))
    m.observe_pass(_result(ok=False, duration=3.0))
    s = _samples(m)
    env_ok = (("environment", "dev"), ("result", "success"))
    env_bad = (("environment", "dev"), ("result", "failure"))
    assert s[("reconciler_reconcile_total", env_ok)] == 1
    assert s[("reconciler_reconcile_total", env_bad)] == 1
    assert s[("reconciler_reconcile_duration_seconds_count", env_ok)] == 1
    assert s[("reconciler_reconcile_duration_seconds_sum", env_ok)] == pytest.approx(0.7)
    # 0.7 s falls into the 1.0 bucket but not the 0.5 one
    assert s[("reconciler_reconcile_duration_seconds_bucket", (*env_ok[:1], ("le", "0.5"), env_ok[1]))] == 0
    assert s[("reconciler_reconcile_duration_seconds_bucket", (*env_ok[:1], ("le", "1.0"), env_ok[1]))] == 1
    info = [k for k in s if k[0] == "reconciler_last_applied_revision_info"]
    assert len(info) == 1
    assert dict(info[0][1]) == {
        "environment": "dev",
        "revision": "main@sha1:" + "a" * 40,
        "branch": "main",
        "sha": "a" * 40,
    }
    assert s[("reconciler_objects", (("environment", "dev"), ("health", "Healthy")))] == 2
    assert s[("reconciler_objects", (("environment", "dev"), ("health", "Progressing")))] == 1
    assert s[("reconciler_objects", (("environment", "dev"), ("health", "Degraded")))] == 0
    # the failed pass counted its changes too (what it attempted), twice the prunes in all
    assert s[("reconciler_prunes_total", (("environment", "dev"),))] == 4
    assert s[("reconciler_object_changes_total", (("action", "created"), ("environment", "dev")))] == 2
    assert ("reconciler_object_changes_total", (("action", "unchanged"), ("environment", "dev"))) not in s


def test_new_revision_replaces_the_info_and_health_gauges_follow_the_last_pass() -> None:
    m = Metrics()
    m.observe_pass(_result(sha="a" * 40))
    healthy = _result(sha="b" * 40)
    healthy.health = {k: HealthStatus(state=HealthState.HEALTHY) for k in healthy.health}
    m.observe_pass(healthy)
    s = _samples(m)
    shas = [dict(k[1])["sha"] for k in s if k[0] == "reconciler_last_applied_revision_info"]
    assert shas == ["b" * 40]
    assert s[("reconciler_objects", (("environment", "dev"), ("health", "Progressing")))] == 0
    assert s[("reconciler_objects", (("environment", "dev"), ("health", "Healthy")))] == 3
    # a failed pass keeps the last known revision and health
    m.observe_pass(_result(ok=False, sha="c" * 40))
    s = _samples(m)
    assert [dict(k[1])["sha"] for k in s if k[0] == "reconciler_last_applied_revision_info"] == ["b" * 40]
    assert s[("reconciler_objects", (("environment", "dev"), ("health", "Healthy")))] == 3


def test_dry_run_passes_are_not_counted() -> None:
    m = Metrics()
    m.observe_pass(_result(), dry_run=True)
    assert not [k for k in _samples(m) if k[0].startswith("reconciler_reconcile_total")]


def test_drift_git_webhook_and_consumer_lag() -> None:
    m = Metrics()
    m.observe_drift({"environment": "dev", "mode": "correct", "corrected": True})
    m.observe_drift({"environment": "dev", "mode": "correct", "corrected": False, "error": "conflict"})
    m.observe_drift({"environment": "prod", "mode": "warn", "corrected": False})
    m.observe_git("fetch", 0.03)
    m.observe_git("push", 1.2, ok=False)
    m.observe_webhook("github", "accepted")
    m.observe_webhook("github", "accepted")
    m.observe_webhook("harbor", "unauthorized")
    m.set_consumer_lag("RECONCILER", "reconciler-daemon-triggers", 7, 2)
    s = _samples(m)
    assert s[("reconciler_drift_detected_total", (("environment", "dev"), ("mode", "correct")))] == 2
    assert s[("reconciler_drift_detected_total", (("environment", "prod"), ("mode", "warn")))] == 1
    assert s[("reconciler_drift_corrected_total", (("environment", "dev"),))] == 1
    assert ("reconciler_drift_corrected_total", (("environment", "prod"),)) not in s
    fetch = (("operation", "fetch"), ("result", "success"))
    assert s[("reconciler_git_operation_duration_seconds_count", fetch)] == 1
    assert s[("reconciler_git_operation_duration_seconds_sum", fetch)] == pytest.approx(0.03)
    push = (("operation", "push"), ("result", "failure"))
    assert s[("reconciler_git_operation_duration_seconds_sum", push)] == pytest.approx(1.2)
    assert s[("reconciler_webhook_deliveries_total", (("provider", "github"), ("result", "accepted")))] == 2
    assert (
        s[("reconciler_webhook_deliveries_total", (("provider", "harbor"), ("result", "unauthorized")))] == 1
    )
    lag = (("consumer", "reconciler-daemon-triggers"), ("stream", "RECONCILER"))
    assert s[("reconciler_nats_consumer_pending_messages", lag)] == 7
    assert s[("reconciler_nats_consumer_ack_pending_messages", lag)] == 2


def test_webhook_result_words_are_bounded() -> None:
    with pytest.raises(ValueError, match="not one of"):
        Metrics().observe_webhook("github", "whatever")


def test_registries_are_separate_and_the_default_is_shared_per_process() -> None:
    a, b = Metrics(), Metrics()
    a.observe_webhook("gitlab", "ignored")
    assert (
        "reconciler_webhook_deliveries_total",
        (("provider", "gitlab"), ("result", "ignored")),
    ) in _samples(a)
    assert not [k for k in _samples(b) if k[0] == "reconciler_webhook_deliveries_total"]
    before = _samples(default_metrics()).get(
        ("reconciler_webhook_deliveries_total", (("provider", "quay"), ("result", "malformed"))), 0
    )
    observe_webhook("quay", "malformed")
    after = _samples(default_metrics())[
        ("reconciler_webhook_deliveries_total", (("provider", "quay"), ("result", "malformed")))
    ]
    assert after == before + 1


def test_forget_environment_drops_its_gauges() -> None:
    m = Metrics()
    m.observe_pass(_result(env="old"))
    m.forget_environment("old")
    s = _samples(m)
    assert not [k for k in s if k[0] in ("reconciler_objects", "reconciler_last_applied_revision_info")]
    assert s[("reconciler_reconcile_total", (("environment", "old"), ("result", "success")))] == 1
