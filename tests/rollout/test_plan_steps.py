"""The rollout's pure parts: the desired set a rollout makes (stable and canary Deployments and Services,
the weighted route, the header-match rule) and the step function (shift, pause, abort, promote)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.model.rollout import RolloutPhase, RolloutSpec, RolloutState, Sample, SampleOutcome
from reconciler.rollout.plan import (
    ROLLOUT_LABEL,
    PlanError,
    canary_deployment,
    replica_split,
    template_changed,
    transform,
    weighted_route,
)
from reconciler.rollout.steps import Move, advance, begin, schedule


def _deployment(tag: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "clock", "namespace": "shop", "labels": {"app.kubernetes.io/name": "clock"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "clock"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "clock", "tier": "mcp"}},
                "spec": {"containers": [{"name": "s", "image": f"ghcr.io/acme/clock:{tag}"}]},
            },
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "clock", "namespace": "shop"},
    "spec": {
        "clusterIP": "10.0.0.7",
        "selector": {"app.kubernetes.io/name": "clock", "tier": "mcp"},
        "ports": [{"port": 80}],
    },
}
ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "clock", "namespace": "shop"},
    "spec": {
        "parentRefs": [{"name": "agw"}],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/mcp"}}],
                "backendRefs": [{"name": "clock", "port": 80}],
            }
        ],
    },
}


def _spec(**strategy: Any) -> RolloutSpec:
    body: dict[str, Any] = {
        "app": "clock",
        "route": "clock",
        "strategy": strategy or {"canary": {"steps": [10, 50, 100], "interval": 10}},
        "analysis": {"queries": [{"name": "errors", "query": "x", "max": 0.05}]},
    }
    return RolloutSpec.model_validate(body)


def _sample(outcome: SampleOutcome, value: float | None = 0.01) -> Sample:
    return Sample(
        query="errors",
        promql="x",
        value=value,
        outcome=outcome,
        message=f"{value} (max 0.05): {outcome.value}",
        at=0,
    )


def _begin(spec: RolloutSpec, stable: str, candidate: str) -> RolloutState:
    return begin(
        spec,
        environment="prod",
        revision="r2",
        stable_revision="r1",
        stable=_deployment(stable),
        candidate=_deployment(candidate),
        now=0,
    )


def test_a_new_pod_template_starts_a_rollout_other_changes_do_not() -> None:
    old, new = _deployment("1.0"), _deployment("1.1")
    assert template_changed(old, new)
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    assert not template_changed(old, scaled)
    assert not template_changed(None, new)


def test_the_desired_set_during_a_canary() -> None:
    spec = _spec(canary={"steps": [10, 100], "headerMatch": {"name": "x-canary", "value": "always"}})
    state = _begin(spec, "1.0", "1.1")
    desired = [_deployment("1.1"), SERVICE, ROUTE]
    before = copy.deepcopy(desired)
    out = transform(desired, spec, state)
    assert desired == before, "inputs are not modified"
    by = {(o["kind"], o["metadata"]["name"]): o for o in out}
    stable, canary = by[("Deployment", "clock")], by[("Deployment", "clock-canary")]
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/clock:1.0"
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/clock:1.1"
    assert canary["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "clock-canary"}
    assert canary["spec"]["template"]["metadata"]["labels"] == {
        "app.kubernetes.io/name": "clock-canary",
        "tier": "mcp",
    }
    svc = by[("Service", "clock-canary")]
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "clock-canary", "tier": "mcp"}
    assert "clusterIP" not in svc["spec"]
    rules = by[("HTTPRoute", "clock")]["spec"]["rules"]
    assert rules[0]["backendRefs"] == [
        {"name": "clock", "port": 80, "weight": 90},
        {"name": "clock-canary", "port": 80, "weight": 10},
    ]
    assert rules[1]["matches"][0]["headers"] == [{"type": "Exact", "name": "x-canary", "value": "always"}]
    assert rules[1]["backendRefs"] == [{"name": "clock-canary", "port": 80, "weight": 100}]
    aborted = transform(desired, spec, state.model_copy(update={"phase": RolloutPhase.ABORTED}))
    by = {(o["kind"], o["metadata"]["name"]): o for o in aborted}
    assert by[("Deployment", "clock-canary")]["spec"]["replicas"] == 0
    assert by[("HTTPRoute", "clock")]["spec"]["rules"][0]["backendRefs"][1]["weight"] == 0
    done = transform(desired, spec, state.model_copy(update={"phase": RolloutPhase.SUCCEEDED}))
    assert done == desired


def test_a_route_that_does_not_fit_is_named() -> None:
    spec = _spec()
    with pytest.raises(PlanError, match="rule 0 sends no traffic to Service clock"):
        weighted_route({**ROUTE, "spec": {"rules": [{"backendRefs": [{"name": "other"}]}]}}, spec, 10)
    with pytest.raises(PlanError, match="rule 3 does not exist"):
        weighted_route(ROUTE, _spec().model_copy(update={"rule": 3}), 10)
    state = _begin(spec, "1", "2")
    with pytest.raises(PlanError, match="not in the desired set: HTTPRoute clock"):
        transform([_deployment("2"), SERVICE], spec, state)
    assert canary_deployment(_deployment("2"), replicas=0)["spec"]["replicas"] == 0


def test_steps_shift_pause_and_promote() -> None:
    spec = _spec()
    st = _begin(spec, "1", "2")
    assert (st.weight, st.phase) == (10, RolloutPhase.PROGRESSING)
    st, move = advance(spec, st, [_sample(SampleOutcome.PASSED)], now=5)
    assert move is Move.NONE and st.weight == 10, "a step lasts its interval"
    st, move = advance(spec, st, [_sample(SampleOutcome.PASSED)], now=10)
    assert move is Move.SHIFT and st.weight == 50 and st.samples == []
    st, move = advance(spec, st, [_sample(SampleOutcome.INCONCLUSIVE, None)], now=12)
    assert move is Move.NONE and st.phase is RolloutPhase.PAUSED and st.weight == 50
    st, move = advance(spec, st, [_sample(SampleOutcome.PASSED)], now=15)
    assert st.phase is RolloutPhase.PROGRESSING and move is Move.NONE, "the paused step starts over"
    st, move = advance(spec, st, [_sample(SampleOutcome.PASSED)], now=22)
    assert move is Move.SHIFT and st.weight == 100
    st, move = advance(spec, st, [_sample(SampleOutcome.PASSED)], now=32)
    assert move is Move.PROMOTE and st.phase is RolloutPhase.SUCCEEDED
    assert len(st.history) == 3 and st.history[0].startswith("step 1/3 at weight 10%: passed: errors: 0.01")
    assert advance(spec, st, [_sample(SampleOutcome.FAILED)], now=40) == (st, Move.NONE)


def test_a_failed_sample_aborts_at_once_and_says_why() -> None:
    spec = _spec()
    st = _begin(spec, "1", "2")
    st, move = advance(spec, st, [_sample(SampleOutcome.FAILED, 0.12)], now=1)
    assert move is Move.ABORT and st.phase is RolloutPhase.ABORTED and st.weight == 0
    assert st.message == "step 1/3 at weight 10%: analysis failed: errors: 0.12 (max 0.05): Failed"


def test_blue_green_is_a_preview_then_a_switch() -> None:
    spec = _spec(
        blueGreen={"preview": {"name": "x-preview", "value": "1"}, "previewDuration": 20, "scaleDownDelay": 5}
    )
    assert schedule(spec) == [(0, 20.0), (100, 5.0)]
    st = _begin(spec, "1", "2")
    route = {o["kind"]: o for o in transform([_deployment("2"), SERVICE, ROUTE], spec, st)}["HTTPRoute"]
    assert route["spec"]["rules"][0]["backendRefs"][1]["weight"] == 0
    assert route["spec"]["rules"][1]["backendRefs"][0]["name"] == "clock-canary"
    st, move = advance(spec, st, [_sample(SampleOutcome.PASSED)], now=20)
    assert move is Move.SHIFT and st.weight == 100


@pytest.mark.parametrize(
    ("total", "weight", "want"),
    [(4, 0, (4, 0)), (4, 10, (3, 1)), (4, 25, (3, 1)), (4, 50, (2, 2)), (4, 75, (1, 3)), (4, 100, (0, 4)),
     (1, 10, (1, 1)), (1, 100, (0, 1)), (10, 10, (9, 1)), (3, 99, (1, 3))],
)  # fmt: skip
def test_replica_split_keeps_one_of_each_between_the_ends(
    total: int, weight: int, want: tuple[int, int]
) -> None:
    assert replica_split(total, weight) == want


def test_split_by_replicas_shares_the_stable_service_and_leaves_the_weights_alone() -> None:
    spec = _spec(
        canary={
            "steps": [25, 100],
            "split": "replicas",
            "headerMatch": {"name": "x-canary", "value": "always"},
        }
    )
    state = _begin(spec, "1.0", "1.1")
    stable_manifest = _deployment("1.0")
    stable_manifest["spec"]["replicas"] = 4
    state = state.model_copy(update={"stable": stable_manifest})
    desired = [_deployment("1.1"), SERVICE, ROUTE]
    out = transform(desired, spec, state)
    by = {(o["kind"], o["metadata"]["name"]): o for o in out}
    stable, canary = by[("Deployment", "clock")], by[("Deployment", "clock-canary")]
    assert (stable["spec"]["replicas"], canary["spec"]["replicas"]) == (3, 1)
    pod_labels = canary["spec"]["template"]["metadata"]["labels"]
    # the stable Service selects the canary's pods too (sessions stay where the gateway pinned them) ...
    assert all(pod_labels.get(k) == v for k, v in SERVICE["spec"]["selector"].items())  # type: ignore[union-attr]
    # ... while the canary Deployment and Service select only them
    assert canary["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "clock",
        ROLLOUT_LABEL: "canary",
    }
    assert by[("Service", "clock-canary")]["spec"]["selector"] == {
        "app.kubernetes.io/name": "clock",
        "tier": "mcp",
        ROLLOUT_LABEL: "canary",
    }
    rules = by[("HTTPRoute", "clock")]["spec"]["rules"]
    assert rules[0]["backendRefs"] == [{"name": "clock", "port": 80}], "no per-request weights"
    assert rules[1]["backendRefs"] == [{"name": "clock-canary", "port": 80, "weight": 100}]
    aborted = transform(desired, spec, state.model_copy(update={"phase": RolloutPhase.ABORTED, "weight": 0}))
    by = {(o["kind"], o["metadata"]["name"]): o for o in aborted}
    assert (
        by[("Deployment", "clock")]["spec"]["replicas"],
        by[("Deployment", "clock-canary")]["spec"]["replicas"],
    ) == (4, 0)


def test_probe_gates_are_gates_like_queries() -> None:
    spec = RolloutSpec.model_validate(
        {
            "app": "clock",
            "route": "clock",
            "strategy": {"canary": {"steps": [50, 100], "interval": 10}},
            "analysis": {"probes": [{"name": "mcp", "failureLimit": 1}]},
        }
    )
    state = _begin(spec, "1.0", "1.1")
    probe = Sample(query="mcp", promql="mcp probe", outcome=SampleOutcome.FAILED, message="down", at=0)
    st, move = advance(spec, state, [probe], 1)
    assert move is Move.NONE, "one failure is within failureLimit 1"
    st, move = advance(spec, st, [probe.model_copy(update={"at": 2})], 2)
    assert move is Move.ABORT and "mcp: down" in st.message
    passed = probe.model_copy(update={"outcome": SampleOutcome.PASSED, "message": "ok", "at": 11})
    st, move = advance(spec, state, [passed], 11)
    assert move is Move.SHIFT
    with pytest.raises(ValueError, match="used twice"):
        RolloutSpec.model_validate(
            {
                "app": "clock",
                "route": "clock",
                "strategy": {"canary": {"steps": [100]}},
                "analysis": {"queries": [{"name": "x", "query": "up", "max": 1}], "probes": [{"name": "x"}]},
            }
        )


def test_a_statefulset_app_is_refused_with_what_to_do_instead() -> None:
    from reconciler.model import Environment
    from reconciler.reconcile.rollouts import lay_over

    env = Environment.model_validate(
        {"name": "dev", "overlay": "overlays/dev", "rollouts": [_spec().model_dump(by_alias=True)]}
    )
    sts = {**_deployment("1.0"), "kind": "StatefulSet"}
    with pytest.raises(PlanError, match="clock is a StatefulSet; rollouts canary Deployments only"):
        lay_over(None, "repo", env, [sts, SERVICE, ROUTE], "main@sha1:" + "a" * 40)  # type: ignore[arg-type]
