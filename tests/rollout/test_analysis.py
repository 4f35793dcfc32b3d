"""Rollout analysis against a real Prometheus: PromQL gates over the agentgateway-shaped metrics fixture,
whose simulated traffic follows an HTTPRoute's weights on the real API server. An empty or NaN result
fails unless the query says otherwise, an invalid query is an error, a Prometheus that is down is
inconclusive — never a pass on missing evidence."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest
from conftest import Served

from reconciler.cluster.client import KubeClient
from reconciler.model import ObjectRef
from reconciler.model.rollout import AnalysisQuery, OnEmpty, SampleOutcome
from reconciler.rollout.analysis import (
    Prometheus,
    QueryRejected,
    StepVerdict,
    decide,
    judge_values,
    sample,
)


def error_rate(which: str) -> str:
    """The 5xx ratio of one backend of the route over 30 s (``which``: the ``stable`` or ``canary``
    placeholder). A backend with no error at all has no 5xx series: ``or vector(0)`` makes that a 0, while
    a backend with no traffic at all stays empty (and fails)."""
    sel = 'route="{{namespace}}/{{route}}",backend="{{namespace}}/{{' + which + '}}"'
    errors = f'(sum(rate(agentgateway_requests_total{{{sel},status=~"5.."}}[30s])) or vector(0))'
    return f"{errors} / sum(rate(agentgateway_requests_total{{{sel}}}[30s]))"


def _q(**kw: Any) -> AnalysisQuery:
    return AnalysisQuery.model_validate(kw)


def test_values_are_judged_against_thresholds_and_empty_is_a_failure() -> None:
    q = _q(name="error-rate", query="x", max=0.05)
    assert judge_values(q, "x", [0.01], 0).outcome is SampleOutcome.PASSED
    failed = judge_values(q, "x", [0.12], 0)
    assert failed.outcome is SampleOutcome.FAILED and failed.message == "0.12 (max 0.05): Failed"
    assert (
        judge_values(q, "x", [], 0).message
        == "no data (empty result), counted as Failed (onEmpty: fail; max 0.05)"
    )
    assert judge_values(q, "x", [float("nan")], 0).outcome is SampleOutcome.FAILED
    lenient = _q(name="p", query="x", min=10, onEmpty="inconclusive")
    assert judge_values(lenient, "x", [], 0).outcome is SampleOutcome.INCONCLUSIVE
    assert judge_values(lenient, "x", [9.5], 0).message == "9.5 (min 10): Failed"
    assert judge_values(q, "x", [0.1, 0.2], 0).outcome is SampleOutcome.INCONCLUSIVE


def test_limits_decide_the_step() -> None:
    q = _q(name="e", query="x", max=1, failureLimit=1, inconclusiveLimit=1)
    fail = judge_values(q, "x", [2], 0)
    unsure = judge_values(q, "x", [], 0).model_copy(update={"outcome": SampleOutcome.INCONCLUSIVE})
    assert decide(q, [fail]) is StepVerdict.RUNNING
    assert decide(q, [fail, fail]) is StepVerdict.FAILED
    assert decide(q, [unsure, unsure]) is StepVerdict.INCONCLUSIVE
    error = fail.model_copy(update={"outcome": SampleOutcome.ERROR})
    assert decide(q, [error]) is StepVerdict.FAILED


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"name": "x", "query": "up"}, "set max, min or both"),
        ({"name": "x", "query": "up", "min": 2, "max": 1}, "min 2.0 is above max 1.0"),
        ({"name": "x", "query": "up{app='{{service}}'}", "max": 1}, "unknown placeholder(s) service"),
        ({"name": "x", "query": "up", "max": 1, "onEmpty": "ignore"}, "onEmpty"),
    ],
)
def test_bad_query_definitions_are_refused(bad: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        AnalysisQuery.model_validate(bad)


def _route(namespace: str, weights: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "clock", "namespace": namespace},
        "spec": {
            "rules": [{"backendRefs": [{"name": n, "port": 80, "weight": w} for n, w in weights.items()]}]
        },
    }


def _put(url: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def test_gates_on_a_real_prometheus(
    prometheus: Served, agw_metrics: Served, kube: KubeClient, namespace: str
) -> None:
    ref = ObjectRef(
        group="gateway.networking.k8s.io", version="v1", kind="HTTPRoute", namespace=namespace, name="clock"
    )
    kube.apply(_route(namespace, {"clock": 75, "clock-canary": 25}), ref, field_manager="tests")
    _put(
        f"{agw_metrics.url}/routes/{namespace}/clock",
        {"rate": 40, "backends": {"clock-canary": {"errorRatio": 0.5}, "clock": {"errorRatio": 0.0}}},
    )
    values = {"namespace": namespace, "route": "clock", "stable": "clock", "canary": "clock-canary"}
    canary = _q(name="canary-errors", query=error_rate("canary"), max=0.05)
    stable = _q(name="stable-errors", query=error_rate("stable"), max=0.05)
    prom = Prometheus(prometheus.url)

    async def until_data() -> Any:
        deadline = time.monotonic() + 30
        while True:
            got = await sample(prom, canary, values)
            if got.value is not None or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.5)

    got = asyncio.run(until_data())
    assert got.outcome is SampleOutcome.FAILED, got
    assert got.value is not None and 0.4 < got.value < 0.6
    assert f'backend="{namespace}/clock-canary"' in got.promql
    ok = asyncio.run(sample(prom, stable, values))
    assert ok.outcome is SampleOutcome.PASSED and ok.value == 0.0, ok

    # no traffic reaches a backend that is not in the route: an empty result fails, as Flagger
    absent = {**values, "canary": "clock-next"}
    empty = asyncio.run(sample(prom, canary, absent))
    assert empty.outcome is SampleOutcome.FAILED and empty.value is None and "no data" in empty.message
    lenient = canary.model_copy(update={"on_empty": OnEmpty.INCONCLUSIVE})
    assert asyncio.run(sample(prom, lenient, absent)).outcome is SampleOutcome.INCONCLUSIVE

    # an invalid query is the user's error, named as such; validation says so before any traffic moves
    broken = _q(name="broken", query="sum(rate(agentgateway_requests_total[1m]", max=1)
    err = asyncio.run(sample(prom, broken, values))
    assert err.outcome is SampleOutcome.ERROR and "Prometheus refused the query" in err.message
    with pytest.raises(QueryRejected):
        asyncio.run(prom.validate(broken.query))
    asyncio.run(prom.validate(canary.query.replace("{{", "").replace("}}", "")))

    # Prometheus down: no evidence, never a pass
    down = Prometheus(f"http://127.0.0.1:{prometheus.port + 1 if prometheus.port < 65535 else 1}", timeout=1)
    unsure = asyncio.run(sample(down, canary, values))
    assert unsure.outcome is SampleOutcome.INCONCLUSIVE and unsure.message.startswith("no evidence: ")
