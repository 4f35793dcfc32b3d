"""Rule-level tests of ``reconciler.cluster.health`` beyond the golden files: bad input, the default
clock, purity, ``missing_tools`` and properties that must hold for any status."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from _health_golden import CASES, epoch, load_case, run_case
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.cluster.health import HealthInputError, assess, judge, missing_tools
from reconciler.model import HealthState, ObjectRef

NOW = epoch("2026-08-01T10:00:00Z")


def _deployment(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "generation": 1},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, **status},
    }


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ({"kind": "Deployment", "metadata": {"name": "x"}}, "Deployment: live object has no apiVersion"),
        ({"apiVersion": "v1", "metadata": {"name": "x"}}, "has no kind"),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {}}, "Pod: metadata.name is missing"),
        (
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": []},
            "Pod p: status must be",
        ),
        (_deployment(replicas="2"), "Deployment shop/web: status.replicas must be an integer, got '2'"),
        (_deployment(availableReplicas=-1), "status.availableReplicas must be a non-negative integer"),
        (_deployment(conditions=[{"type": "Available", "status": "yes"}]), "status.conditions[0].status"),
        (_deployment(conditions=[{"status": "True"}]), "status.conditions[0].type is missing"),
        (_deployment(conditions={"type": "Available"}), "status.conditions must be a list"),
        (
            {
                "apiVersion": "kagent.dev/v1alpha2",
                "kind": "Agent",
                "metadata": {"name": "a", "namespace": "agents", "creationTimestamp": "yesterday"},
            },
            "Agent agents/a: metadata.creationTimestamp must be an RFC 3339 timestamp",
        ),
        (
            {
                "apiVersion": "autoscaling/v1",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {
                    "name": "h",
                    "namespace": "ops",
                    "annotations": {"autoscaling.alpha.kubernetes.io/conditions": "[{not json"},
                },
            },
            "metadata.annotations[autoscaling.alpha.kubernetes.io/conditions] must be a JSON list",
        ),
    ],
)
def test_bad_input_names_object_and_field(obj: dict[str, Any], fragment: str) -> None:
    with pytest.raises(HealthInputError) as err:
        assess(obj, now=NOW)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)


def test_bad_related_deployment_is_reported_with_its_own_name() -> None:
    agent = load_case(Path(__file__).parent / "golden" / "agent-healthy.yaml")["object"]
    bad = _deployment(updatedReplicas=[2])
    bad["metadata"]["name"] = "helpdesk"
    with pytest.raises(HealthInputError, match=r"Deployment shop/helpdesk: status.updatedReplicas"):
        assess(agent, lookup=lambda ref: bad, now=NOW)


def test_default_now_is_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    obj = {
        "apiVersion": "kagent.dev/v1alpha2",
        "kind": "ModelConfig",
        "metadata": {"name": "m", "namespace": "agents", "creationTimestamp": "2026-08-01T10:00:00Z"},
    }
    monkeypatch.setattr("reconciler.cluster.health.time.time", lambda: NOW + 30)
    assert assess(obj).state is HealthState.PROGRESSING
    monkeypatch.setattr("reconciler.cluster.health.time.time", lambda: NOW + 61)
    assert assess(obj).state is HealthState.UNVERIFIED
    assert assess(obj, no_controller_after=120).state is HealthState.PROGRESSING


def test_no_creation_timestamp_never_claims_no_controller() -> None:
    obj = {
        "apiVersion": "agentgateway.dev/v1alpha1",
        "kind": "AgentgatewayBackend",
        "metadata": {"name": "b"},
    }
    status = assess(obj, now=NOW + 10**9)
    assert status.state is HealthState.PROGRESSING
    assert "no creationTimestamp" in status.message


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_assess_does_not_mutate_inputs(path: Path) -> None:
    data = load_case(path)
    before = copy.deepcopy(data)
    run_case(data)
    assert data == before


def test_lookup_is_only_called_for_the_owned_deployment() -> None:
    data = load_case(Path(__file__).parent / "golden" / "mcpserver-healthy.yaml")
    _, lookup = run_case(data)
    assert lookup.calls == [
        ObjectRef(group="apps", version="v1", kind="Deployment", namespace="agents", name="clock-v1")
    ]
    built_in = load_case(Path(__file__).parent / "golden" / "deployment-healthy.yaml")
    _, lookup = run_case(built_in)
    assert lookup.calls == []


def test_missing_tools_keeps_order_and_reports_absent_names() -> None:
    rmcps = load_case(Path(__file__).parent / "golden" / "remotemcpserver-healthy.yaml")["object"]
    assert missing_tools(rmcps, ["get_doc", "search_docs"]) == []
    assert missing_tools(rmcps, ["delete_doc", "search_docs", "docs_search"]) == ["delete_doc", "docs_search"]
    broken = copy.deepcopy(rmcps)
    broken["status"]["discoveredTools"] = [{"name": 7}]
    with pytest.raises(HealthInputError, match=r"status.discoveredTools\[0\].name must be a string"):
        missing_tools(broken, ["x"])


_PLATFORM = [
    ("kagent.dev/v1alpha2", "Agent"),
    ("kagent.dev/v1alpha2", "ModelConfig"),
    ("kagent.dev/v1alpha2", "ModelProviderConfig"),
    ("kagent.dev/v1alpha2", "RemoteMCPServer"),
    ("kagent.dev/v1alpha1", "MCPServer"),
    ("gateway.networking.k8s.io/v1", "GatewayClass"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("agentgateway.dev/v1alpha1", "AgentgatewayBackend"),
    ("agentgateway.dev/v1alpha1", "AgentgatewayPolicy"),
]
_DEFAULT_PENDING = {
    "type": "Accepted",
    "status": "Unknown",
    "reason": "Pending",
    "message": "Waiting for controller",
    "lastTransitionTime": "1970-01-01T00:00:00Z",
}


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(_PLATFORM),
    age=st.integers(min_value=0, max_value=10**7),
    status=st.sampled_from(
        [
            None,
            {},
            {"observedGeneration": 0},
            {"conditions": []},
            {"conditions": [_DEFAULT_PENDING]},
            {"parents": []},
            {"ancestors": []},
            {"discoveredTools": [], "conditions": []},
        ]
    ),
    limit=st.integers(min_value=0, max_value=10**6),
)
def test_unwritten_platform_status_is_never_healthy(
    kind: tuple[str, str], age: int, status: dict[str, Any] | None, limit: int
) -> None:
    obj: dict[str, Any] = {
        "apiVersion": kind[0],
        "kind": kind[1],
        "metadata": {
            "name": "x",
            "namespace": "agents",
            "generation": 1,
            "creationTimestamp": "2026-08-01T10:00:00Z",
        },
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    result = assess(obj, lookup=lambda ref: None, now=NOW + age, no_controller_after=limit)
    expected = HealthState.UNVERIFIED if age >= limit else HealthState.PROGRESSING
    assert result.state is expected
    assert result.message


_COND = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["Accepted", "Ready", "ResolvedRefs", "Programmed", "Stalled", "Reconciling"]
        ),
        "status": st.sampled_from(["True", "False", "Unknown"]),
        "reason": st.sampled_from(["", "Pending", "Reconciled", "Invalid", "PartiallyValid"]),
        "message": st.text(max_size=300),
        "observedGeneration": st.integers(min_value=1, max_value=3),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([*_PLATFORM, ("example.com/v1", "Widget")]),
    conditions=st.lists(_COND, min_size=1, max_size=5, unique_by=lambda c: c["type"]),
    generation=st.integers(min_value=1, max_value=3),
)
def test_any_condition_set_gives_a_short_message_and_respects_generation(
    kind: tuple[str, str], conditions: list[dict[str, Any]], generation: int
) -> None:
    obj = {
        "apiVersion": kind[0],
        "kind": kind[1],
        "metadata": {"name": "x", "namespace": "agents", "generation": generation},
        "status": {"conditions": conditions, "discoveredTools": [{"name": "t"}]},
    }
    result = assess(obj, now=NOW)
    assert len(result.message) <= 300
    stale = any(c["observedGeneration"] < generation for c in conditions)
    if result.state is HealthState.HEALTHY:
        assert not stale


MALFORMED_STATUSES = [
    (
        "conditions not a list",
        {"observedGeneration": 1, "conditions": {"type": "Ready"}},
        "status.conditions",
    ),
    (
        "condition status not True/False/Unknown",
        {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "Yes"}]},
        "status",
    ),
    (
        "a condition that is a string",
        {"observedGeneration": 1, "conditions": ["Ready"]},
        "status.conditions[0]",
    ),
    ("observedGeneration a word", {"observedGeneration": "latest", "conditions": []}, "observedGeneration"),
]


@pytest.mark.parametrize(
    ("what", "status", "field"), MALFORMED_STATUSES, ids=[m[0] for m in MALFORMED_STATUSES]
)
@pytest.mark.parametrize(
    ("api_version", "kind"),
    [("kagent.dev/v1alpha2", "Agent"), ("apps/v1", "Deployment"), ("example.com/v1", "Widget")],
)
def test_malformed_status_is_unverified_with_the_field_named(
    what: str, status: dict[str, object], field: str, api_version: str, kind: str
) -> None:
    """A controller that writes status the rules cannot read leaves the object unjudged: Unverified,
    with the field at fault in the message, never a crash and never Healthy."""
    obj = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": "x",
            "namespace": "ns",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"replicas": 1},
        "status": status,
    }
    h = judge(obj, now=1.9e9)
    assert h.state is HealthState.UNVERIFIED, (what, h)
    assert h.message.startswith("status cannot be judged:") and field in h.message, h.message
