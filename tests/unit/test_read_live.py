"""Reading live state in few calls: one list per (kind, namespace) with several objects, a get otherwise;
a failed read is reported per object (health says Unverified naming it), never taken for absence."""

from __future__ import annotations

import threading
from typing import Any

from reconciler.cluster.manager import LIST_AT, ResourceManager, read_live
from reconciler.errors import KubeError, NotFoundError, ServerError
from reconciler.model import HealthState, ObjectRef
from reconciler.reconcile import assess_health


def _cm(ns: str, name: str) -> ObjectRef:
    return ObjectRef(kind="ConfigMap", namespace=ns, name=name)


def _obj(ref: ObjectRef, **extra: Any) -> dict[str, Any]:
    api = f"{ref.group}/{ref.version}" if ref.group else ref.version
    meta = {"name": ref.name} | ({"namespace": ref.namespace} if ref.namespace else {})
    return {"apiVersion": api, "kind": ref.kind, "metadata": meta, **extra}


class MemoryClient:
    """An in-memory stand-in for KubeClient's get and list, counting calls; ``broken`` kinds fail with a
    server error, ``unserved`` kinds as the API server answers for a kind it does not serve."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str, str]] = []
        self.broken: set[str] = set()
        self.unserved: set[str] = set()
        self._lock = threading.Lock()

    def _check(self, kind: str) -> None:
        if kind in self.broken:
            raise ServerError(kind, 500, "InternalError", "etcd timeout")
        if kind in self.unserved:
            raise NotFoundError(kind, 404, "NoKindMatch", f"no kind {kind} is served")

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        with self._lock:
            self.calls.append(("get", ref.kind, ref.namespace))
        self._check(ref.kind)
        for o in self.objects:
            m = o["metadata"]
            if o["kind"] == ref.kind and m["name"] == ref.name and m.get("namespace", "") == ref.namespace:
                return o
        return None

    def list(
        self, group: str, version: str, kind: str, *, namespace: str | None = None, label_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        with self._lock:
            self.calls.append(("list", kind, namespace or ""))
        self._check(kind)
        items = [
            o
            for o in self.objects
            if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]
        return items, "1"


def test_one_list_per_kind_and_namespace_and_gets_for_the_few() -> None:
    many = [_cm("a", f"c{i}") for i in range(LIST_AT + 2)]
    few = [_cm("b", "only")]
    absent = _cm("a", "gone")
    other = _obj(_cm("a", "not-ours"))
    client = MemoryClient([_obj(r) for r in many + few] + [other])
    found, errors = read_live(client, [*many, *few, absent])  # type: ignore[arg-type]
    assert errors == {}
    assert set(found) == {r.key for r in many + few}  # not the other object of the namespace, not the absent
    assert sorted(client.calls) == [("get", "ConfigMap", "b"), ("list", "ConfigMap", "a")]


def test_a_failed_read_is_an_error_of_each_object_it_covers_not_an_absence() -> None:
    cms = [_cm("a", f"c{i}") for i in range(LIST_AT)]
    dep = ObjectRef(group="apps", version="v1", kind="Deployment", namespace="a", name="d")
    client = MemoryClient([_obj(r) for r in cms] + [_obj(dep)])
    client.broken.add("ConfigMap")
    found, errors = read_live(client, [*cms, dep])  # type: ignore[arg-type]
    assert set(errors) == {r.key for r in cms} and all(isinstance(e, KubeError) for e in errors.values())
    assert set(found) == {dep.key}
    # the manager's index raises the first failure instead
    manager = ResourceManager(client)  # type: ignore[arg-type]
    try:
        manager.live_index([*cms, dep])
    except ServerError as exc:
        assert "etcd timeout" in str(exc)
    else:
        raise AssertionError("a failed list was taken for an empty one")


def test_an_unserved_kind_is_absent_for_apply_and_unverified_for_health() -> None:
    agent = ObjectRef(group="kagent.dev", version="v1alpha2", kind="Agent", namespace="a", name="helper")
    client = MemoryClient([])
    client.unserved.add("Agent")
    found, errors = read_live(client, [agent])  # type: ignore[arg-type]
    assert (found, errors) == ({}, {})  # the apply creates it after its CRD
    found, errors = read_live(client, [agent], unserved_kind_fails=True)  # type: ignore[arg-type]
    assert list(errors) == [agent.key]
    health = assess_health(client, [agent])  # type: ignore[arg-type]
    assert health[str(agent)].state is HealthState.UNVERIFIED
    assert "cannot be read" in health[str(agent)].message and "no kind Agent" in health[str(agent)].message


def test_health_reads_by_list_and_judges_each_object() -> None:
    cms = [_cm("a", f"c{i}") for i in range(LIST_AT + 1)]
    missing = _cm("a", "missing")
    broken = ObjectRef(kind="Service", namespace="a", name="s")
    client = MemoryClient([_obj(r, data={"k": "v"}) for r in cms])
    client.broken.add("Service")
    health = assess_health(client, [*cms, missing, broken])  # type: ignore[arg-type]
    assert list(health) == [str(r) for r in [*cms, missing, broken]]  # in the order asked
    assert all(health[str(r)].state is HealthState.HEALTHY for r in cms)
    assert health[str(missing)].state is HealthState.FAILED and health[str(missing)].message == "not found"
    assert (
        health[str(broken)].state is HealthState.UNVERIFIED and "etcd timeout" in health[str(broken)].message
    )
    assert [c for c in client.calls if c[1] == "ConfigMap"] == [("list", "ConfigMap", "a")]
