"""Shared drift cases 11, 13 and 15 (../shared/cases) on the real API server.

For each case: apply ``desired.yaml`` (namespace rewritten to the test namespace) with the
ResourceManager, read back what the API server stores and check it compares in sync; make the case's one
real change with another field manager and check exactly the expected path is reported; correct it with
a pass and check the object is in sync again and further passes write nothing (no sync loop).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _applyengine_support import (
    fields_json,
    in_namespace,
    load_docs,
    scale,
    strategic_patch,
    until,
    writes,
)
from reconciler_testing import shared_dir

from reconciler.cluster.client import KubeClient
from reconciler.cluster.drift import diff_paths
from reconciler.cluster.manager import Desired, ResourceManager, prepare
from reconciler.model import ChangeSet

pytestmark = pytest.mark.integration


def _case(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    case = shared_dir() / "cases" / name
    return load_docs(case / "desired.yaml"), json.loads((case / "expected.json").read_text())


def _drift(kube: KubeClient, desired: list[Desired]) -> dict[str, list[str]]:
    """``{Kind: paths}`` of every desired object against the object the API server returns now."""
    out = {}
    for d in desired:
        live = kube.get(d.ref)
        assert live is not None, f"{d.ref} is missing"
        out[d.ref.kind] = diff_paths(d.obj, live, ignore=d.ignore)
    return out


def _actions(changes: ChangeSet) -> dict[str, str]:
    return {c.ref.kind: c.action.value for c in changes.entries}


def _apply(manager: ResourceManager, desired: list[Desired]) -> ChangeSet:
    changes, _ = manager.apply_set(desired)
    return changes


def _assert_no_loop(kube: KubeClient, manager: ResourceManager, desired: list[Desired]) -> None:
    """Two more passes: every object unchanged, zero write calls."""
    for _ in range(2):
        before = dict(kube.calls)
        changes = _apply(manager, desired)
        assert {a for a in _actions(changes).values()} == {"unchanged"}
        assert writes(kube, before) == 0


def test_case11_quantities_in_sync_after_real_apply_and_one_edit_is_one_path(
    kube: KubeClient, namespace: str
) -> None:
    objects, expected = _case("11-drift-statefulset-quantity-normalization")
    desired = prepare(in_namespace(objects, namespace))
    manager = ResourceManager(kube)
    assert _actions(_apply(manager, desired)) == {"StatefulSet": "created"}
    # the server stores canonical quantities (1, 1G, 2, 2Gi, 10Gi): still in sync
    live = kube.get(desired[0].ref)
    assert live is not None
    requests = live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": "1", "memory": "1G"}
    assert (
        _drift(kube, desired)
        == {"StatefulSet": expected["comparisons"][0]["differing_paths"]}
        == {"StatefulSet": []}
    )
    _assert_no_loop(kube, manager, desired)

    # control: someone raises the memory request by hand
    strategic_patch(
        kube,
        desired[0].ref,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "store", "resources": {"requests": {"memory": "2G"}}}]}
                }
            }
        },
        manager="kubectl-edit",
    )
    want = expected["comparisons"][1]["differing_paths"]
    assert want == ["spec.template.spec.containers[name=store].resources.requests.memory"]
    assert _drift(kube, desired) == {"StatefulSet": want}

    changes = _apply(manager, desired)
    assert _actions(changes) == {"StatefulSet": "configured"}
    assert changes.entries[0].message == want[0]
    assert _drift(kube, desired) == {"StatefulSet": []}
    live = kube.get(desired[0].ref) or {}
    assert live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] == "1G"
    _assert_no_loop(kube, manager, desired)


def test_case13_empty_and_absent_in_sync_after_real_apply(kube: KubeClient, namespace: str) -> None:
    objects, expected = _case("13-drift-empty-vs-missing-fields")
    desired = prepare(in_namespace(objects, namespace))
    manager = ResourceManager(kube)
    assert _actions(_apply(manager, desired)) == {"StatefulSet": "created", "Service": "created"}
    sts = kube.get(desired[0].ref) or {}
    svc = kube.get(desired[1].ref) or {}
    # what the case says the server does with the empty values
    assert "annotations" not in sts["metadata"]
    assert "env" not in sts["spec"]["template"]["spec"]["containers"][0]
    assert "loadBalancerSourceRanges" not in svc["spec"]
    in_sync = {k.split("/")[-3]: v for k, v in expected["comparisons"][0]["per_object"].items()}
    assert _drift(kube, desired) == in_sync == {"StatefulSet": [], "Service": []}
    _assert_no_loop(kube, manager, desired)

    strategic_patch(
        kube,
        desired[0].ref,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "cache",
                                "image": "registry.example.test/agents/prompt-cache:1.9.0-debug",
                            }
                        ]
                    }
                }
            }
        },
        manager="kubectl-edit",
    )
    drifted = {k.split("/")[-3]: v for k, v in expected["comparisons"][1]["per_object"].items()}
    assert drifted == {"StatefulSet": ["spec.template.spec.containers[name=cache].image"], "Service": []}
    assert _drift(kube, desired) == drifted

    assert _actions(_apply(manager, desired)) == {"StatefulSet": "configured", "Service": "unchanged"}
    assert _drift(kube, desired) == {"StatefulSet": [], "Service": []}
    _assert_no_loop(kube, manager, desired)


def test_case15_hpa_owned_replicas_neither_compared_nor_sent(kube: KubeClient, namespace: str) -> None:
    objects, expected = _case("15-drift-hpa-owned-replicas")
    desired = prepare(in_namespace(objects, namespace))
    deploy = next(d for d in desired if d.ref.kind == "Deployment")
    # the apply payload never carries spec.replicas
    assert "replicas" not in deploy.obj["spec"]
    assert expected["self_heal_on_live_changed"]["apply_payload_for_deployment_must_not_contain"] == [
        "spec.replicas"
    ]
    manager = ResourceManager(kube)
    assert _actions(_apply(manager, desired)) == {
        "Deployment": "created",
        "HorizontalPodAutoscaler": "created",
    }
    assert _drift(kube, desired) == {"Deployment": [], "HorizontalPodAutoscaler": []}

    # the autoscaler scales through the scale subresource
    scale(kube, deploy.ref, 2, manager="horizontal-pod-autoscaler")
    live = kube.get(deploy.ref) or {}
    assert live["spec"]["replicas"] == 2
    assert '"f:replicas"' not in fields_json(live, "reconciler")  # we never owned it
    assert _drift(kube, desired) == {"Deployment": [], "HorizontalPodAutoscaler": []}
    _assert_no_loop(kube, manager, desired)
    assert (kube.get(deploy.ref) or {})["spec"]["replicas"] == 2

    # control: a hand-edited image is the only drift, and correcting it leaves replicas alone
    strategic_patch(
        kube,
        deploy.ref,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "registry.example.test/agents/chat-frontend:2.3.0-hotfix",
                            }
                        ]
                    }
                }
            }
        },
        manager="kubectl-edit",
    )
    per_object = expected["comparisons"][1]["per_object"]
    want = per_object[f"apps/v1/Deployment/agents/{deploy.ref.name}"]
    assert _drift(kube, desired) == {"Deployment": want, "HorizontalPodAutoscaler": []}
    generation = (kube.get(deploy.ref) or {})["metadata"]["generation"]

    assert _actions(_apply(manager, desired)) == {
        "Deployment": "configured",
        "HorizontalPodAutoscaler": "unchanged",
    }
    live = kube.get(deploy.ref) or {}
    after = expected["self_heal_on_live_changed"]["live_after_sync"]
    assert live["spec"]["replicas"] == after["spec.replicas"] == 2
    assert (
        live["spec"]["template"]["spec"]["containers"][0]["image"]
        == after["spec.template.spec.containers[name=web].image"]
    )
    # exactly one spec change (the image), no scale change by us
    assert live["metadata"]["generation"] == generation + 1
    assert '"f:replicas"' not in fields_json(live, "reconciler")
    assert _drift(kube, desired) == {"Deployment": [], "HorizontalPodAutoscaler": []}
    _assert_no_loop(kube, manager, desired)
    # the real HPA controller (minReplicas 2) agrees: replicas stays 2 for a while
    until(lambda: (kube.get(deploy.ref) or {})["spec"]["replicas"] == 2, 5)
