"""Immutable field changes on the real API server: a clear error naming the object (nothing applied) by
default; delete and recreate with the ``reconciler.dev/recreate: "true"`` annotation."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.cluster.client import KubeClient
from reconciler.cluster.manager import RECREATE_ANNOTATION, ApplyError, ResourceManager, prepare
from reconciler.model import Action, ref_of

pytestmark = pytest.mark.integration


def _service(ns: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "fixed-ip", "namespace": ns},
        "spec": {"clusterIP": ip, "selector": {"app": "fixed"}, "ports": [{"name": "http", "port": 80}]},
    }


def _deployment(ns: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "web", "image": "reg.test/web:1"}]},
            },
        },
    }


def _job(ns: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": ns},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": image}]}
            }
        },
    }


def _statefulset(ns: str, storage: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "agent", "namespace": ns},
        "spec": {
            "serviceName": "agent",
            "replicas": 1,
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "reg.test/agent:1"}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "state"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": storage}},
                    },
                }
            ],
        },
    }


def _configmap(ns: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": ns},
        "data": {"value": value},
    }


def _ip(ns: str, n: int) -> str:
    """A Service IP of this test's own (the range is shared, and a deleted namespace frees its IPs late)."""
    h = int(hashlib.sha256(ns.encode()).hexdigest(), 16)
    return f"10.96.{200 + h % 50}.{2 + (h >> 8) % 200 + n}"


# (object before, object after, the changed field as the API server names it, a getter of the new value)
CASES: dict[str, tuple[Callable[[str], dict[str, Any]], Callable[[str], dict[str, Any]], str, Any]] = {
    "service-clusterIP": (
        lambda ns: _service(ns, _ip(ns, 0)),
        lambda ns: _service(ns, _ip(ns, 1)),
        "spec.clusterIP",
        lambda live: live["spec"]["clusterIP"],
    ),
    "deployment-selector": (
        lambda ns: _deployment(ns, "web"),
        lambda ns: _deployment(ns, "web-v2"),
        "spec.selector",
        lambda live: live["spec"]["selector"]["matchLabels"]["app"],
    ),
    "job-template": (
        lambda ns: _job(ns, "reg.test/migrate:1"),
        lambda ns: _job(ns, "reg.test/migrate:2"),
        "spec.template",
        lambda live: live["spec"]["template"]["spec"]["containers"][0]["image"],
    ),
    # the API server names only "spec" here; the error names the field from the plan
    "statefulset-volumeClaimTemplates": (
        lambda ns: _statefulset(ns, "1Gi"),
        lambda ns: _statefulset(ns, "2Gi"),
        "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
        lambda live: live["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
    ),
}
NEW_VALUES: dict[str, Callable[[str], str]] = {
    "service-clusterIP": lambda ns: _ip(ns, 1),
    "deployment-selector": lambda ns: "web-v2",
    "job-template": lambda ns: "reg.test/migrate:2",
    "statefulset-volumeClaimTemplates": lambda ns: "2Gi",
}


def _annotated(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("annotations", {})[RECREATE_ANNOTATION] = "true"
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_immutable_change_fails_clearly_and_applies_nothing(
    kube: KubeClient, namespace: str, case: str
) -> None:
    before, after, field, value_of = CASES[case]
    manager = ResourceManager(kube)
    created, _ = manager.apply_set(prepare([before(namespace)]))
    ref = created.entries[0].ref
    uid = (kube.get(ref) or {})["metadata"]["uid"]

    # one immutable change plus an ordinary change in the same set: nothing of it may be applied
    desired = prepare([after(namespace), _configmap(namespace, "new")])
    with pytest.raises(ApplyError) as info:
        manager.apply_set(desired)
    message = str(info.value)
    assert str(ref) in message  # names the object as Kind/namespace/name
    assert field in message  # and the field
    assert any(w in message for w in ("immutable", "may not change", "are forbidden"))
    assert RECREATE_ANNOTATION in message  # and says how to allow delete and recreate
    assert len(message) < 1200, message  # readable: the server's dump of the whole value is elided
    live = kube.get(ref) or {}
    assert live["metadata"]["uid"] == uid
    assert value_of(live) != NEW_VALUES[case](namespace)
    assert kube.get(ref_of(_configmap(namespace, "new"))) is None


@pytest.mark.parametrize("case", sorted(CASES))
def test_immutable_change_with_recreate_annotation_deletes_and_recreates(
    kube: KubeClient, namespace: str, case: str
) -> None:
    before, after, _field, value_of = CASES[case]
    manager = ResourceManager(kube)
    created, _ = manager.apply_set(prepare([_annotated(before(namespace))]))
    ref = created.entries[0].ref
    uid = (kube.get(ref) or {})["metadata"]["uid"]

    changes, _ = manager.apply_set(prepare([_annotated(after(namespace))]))
    assert [(str(c.ref), c.action) for c in changes.entries] == [(str(ref), Action.CONFIGURED)]
    live = kube.get(ref) or {}
    assert live["metadata"]["uid"] != uid  # a new object
    assert value_of(live) == NEW_VALUES[case](namespace)
    # and the next pass is a no-op
    again, _ = manager.apply_set(prepare([_annotated(after(namespace))]))
    assert again.count(Action.UNCHANGED) == 1


def test_ordinary_changes_are_not_recreated_even_when_annotated(kube: KubeClient, namespace: str) -> None:
    manager = ResourceManager(kube)
    first = _annotated(_deployment(namespace, "web"))
    manager.apply_set(prepare([first]))
    uid = (kube.get(ref_of(first)) or {})["metadata"]["uid"]
    changed = copy.deepcopy(first)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "reg.test/web:2"
    manager.apply_set(prepare([changed]))
    live = kube.get(ref_of(first)) or {}
    assert live["metadata"]["uid"] == uid
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "reg.test/web:2"
