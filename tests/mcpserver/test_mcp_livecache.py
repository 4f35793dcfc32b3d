"""The MCP server's watch-backed status reads (reconciler/mcpserver/livecache.py) on the real session
cluster: the reader answers as direct reads do, sees changes made after its first read (an edit, a delete,
a new object, an inventory's label taken away), and ``listEnvironments``/``getObjectHealth`` through it
equal the same tools reading the API server, and `reconciler status -o json`, before and after a change."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.errors import NotFoundError
from reconciler.mcpserver.livecache import WatchedReader
from reconciler.mcpserver.tools import Backend
from reconciler.model import Inventory, ObjectRef

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], bool], what: str, within: float = 20.0) -> None:
    """Wait (bounded) until ``check()`` holds: watch events arrive asynchronously."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not seen within {within} s: {what}"
        time.sleep(0.05)


def configmap(kube: KubeClient, namespace: str, name: str, value: str) -> ObjectRef:
    ref = ObjectRef(kind="ConfigMap", namespace=namespace, name=name)
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"v": value},
    }
    kube.apply(obj, ref, field_manager="tests")
    return ref


@pytest.fixture
def reader(kube: KubeClient, kubeconfig: Path) -> Iterator[WatchedReader]:
    r = WatchedReader(kube, KubeClient(kubeconfig))
    yield r
    r.close()


def test_reader_answers_as_direct_reads_and_follows_changes(
    reader: WatchedReader, kube: KubeClient, namespace: str
) -> None:
    a = configmap(kube, namespace, "a", "1")
    first = reader.get(a)
    assert first is not None and first == kube.get(a)
    assert reader.live_mirrors() == 1
    assert reader.get(ObjectRef(kind="ConfigMap", namespace=namespace, name="nope")) is None

    configmap(kube, namespace, "a", "2")  # an edit after the first read
    eventually(lambda: (reader.get(a) or {}).get("data") == {"v": "2"}, "the edit")
    assert reader.get(a) == kube.get(a)

    b = configmap(kube, namespace, "b", "new")  # an object created after the mirror was listed
    eventually(lambda: reader.get(b) is not None, "the new object")
    kube.delete(a)
    eventually(lambda: reader.get(a) is None, "the delete")
    items, _ = reader.list("", "v1", "ConfigMap", namespace=namespace)
    direct, _ = kube.list("", "v1", "ConfigMap", namespace=namespace)
    assert sorted(i["metadata"]["name"] for i in items) == sorted(i["metadata"]["name"] for i in direct)


def test_reader_list_follows_the_label_selector(
    reader: WatchedReader, kube: KubeClient, namespace: str
) -> None:
    label = f"t-{uuid.uuid4().hex[:6]}"
    ref = configmap(kube, namespace, "labelled", "x")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "labelled", "namespace": namespace, "labels": {label: "yes"}},
        },
        ref,
        field_manager="tests",
    )

    def names() -> list[str]:
        items, _ = reader.list("", "v1", "ConfigMap", namespace=namespace, label_selector=label)
        return [i["metadata"]["name"] for i in items]

    assert names() == ["labelled"]
    kube.apply(  # the label taken away: the object leaves the selected list
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "labelled", "namespace": namespace}},
        ref,
        field_manager="tests",
    )
    eventually(lambda: names() == [], "the label removed")


def test_reader_reads_unlisted_kinds_directly(reader: WatchedReader, kube: KubeClient) -> None:
    with pytest.raises(NotFoundError):
        reader.get(
            ObjectRef(group="example.invalid", version="v1", kind="NoSuchKind", namespace="x", name="y")
        )
    assert reader.live_mirrors() == 0


@pytest.fixture
def environment(kube: KubeClient, namespace: str) -> Iterator[tuple[str, ObjectRef, ObjectRef]]:
    """An inventory of a ConfigMap and a Service in ``namespace``; the inventory deleted afterwards."""
    env = f"lc-{uuid.uuid4().hex[:6]}"
    cm = configmap(kube, namespace, f"{env}-config", "1")
    svc = ObjectRef(kind="Service", namespace=namespace, name=f"{env}-svc")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": svc.name, "namespace": namespace},
            "spec": {"selector": {"app": env}, "ports": [{"port": 80}]},
        },
        svc,
        field_manager="tests",
    )
    store = InventoryStore(kube, "livecache-test")
    store.save(Inventory(environment=env, revision=f"main@sha1:{'a' * 40}", entries=[cm, svc]))
    yield env, cm, svc
    store.delete(env)


def status_json(kubeconfig: Path, env: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["status", env, "-o", "json", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 0, result.output
    out: list[dict[str, Any]] = json.loads(result.stdout)
    return out


def test_list_environments_through_the_cache_equals_direct_reads_and_status(
    kube: KubeClient, kubeconfig: Path, environment: tuple[str, ObjectRef, ObjectRef], monkeypatch: Any
) -> None:
    monkeypatch.delenv("RECONCILER_PROBE_ADDRESSES", raising=False)
    env, cm, svc = environment
    cached, direct = Backend(kubeconfig=kubeconfig), Backend(kubeconfig=kubeconfig, watch_cache=False)
    try:
        first = cached.list_environments([env])
        assert first.read_from == "watch" and first.checked_at
        assert direct.list_environments([env]).read_from == "api"

        def rows(b: Backend) -> list[dict[str, Any]]:
            return [e.model_dump(mode="json") for e in b.list_environments([env]).environments]

        assert rows(cached) == rows(direct) == status_json(kubeconfig, env)
        assert rows(cached)[0]["objects"] == 2 and rows(cached)[0]["health"] == "Healthy"

        kube.delete(svc)  # a change after the first call: the Service is gone
        eventually(lambda: rows(cached) == rows(direct), "the deleted Service in listEnvironments")
        after = rows(cached)
        assert after[0]["health"] != "Healthy" and after == status_json(kubeconfig, env)
        health = cached.object_health(env)
        assert health.read_from == "watch"
        states = {o.object: o.state for o in health.objects}
        assert states[str(svc)] == "Failed" and states[str(cm)] == "Healthy"
        assert health.model_dump(exclude={"checked_at", "read_from"}) == direct.object_health(env).model_dump(
            exclude={"checked_at", "read_from"}
        )

        InventoryStore(kube, "livecache-test").save(  # a new revision of the inventory
            Inventory(environment=env, revision=f"main@sha1:{'b' * 40}", entries=[cm])
        )
        eventually(lambda: rows(cached)[0]["revision"].endswith("b" * 40), "the new inventory revision")
        assert rows(cached) == rows(direct) == status_json(kubeconfig, env)
    finally:
        cached.close()
        direct.close()
