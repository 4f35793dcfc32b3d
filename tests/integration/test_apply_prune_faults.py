"""Issue 15 on the real control plane: a pass must never delete what it has just applied.

* an object whose API group (or version) moved in Git, between resources the API server serves as one
  stored object: prune keeps it (same ``metadata.uid``), the inventory records the new apiVersion only;
* a set that brings its own Namespaces or CRDs: the cluster-scoped stage is validated and written first,
  then the rest is validated and written, in one pass; a failure after the stage names the object;
* Secret ``stringData`` drift is reported at the live path (``data.token``) with the Git path it came
  from, never with a value.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from reconciler_testing import EnvRepo, daemon_settings, until
from rich.console import Console

from reconciler.cli_observe import pending_change, print_diff
from reconciler.cluster.client import KubeClient, ResourceInfo
from reconciler.cluster.drift import WRITE_ONLY_FIELDS, diff_fields
from reconciler.cluster.inventory import InventoryStore
from reconciler.model import Action, ObjectRef, PassResult
from reconciler.reconcile import PassContext, run_pass
from reconciler.runtime import Daemon
from reconciler.source import GitSource

EVENT_TIME = "2026-01-02T03:04:05.000000Z"


def _ctx(repo: EnvRepo, kube: KubeClient, cache_dir: Path) -> PassContext:
    return PassContext(source=GitSource(str(repo.remote), "main", cache_dir), client=kube)


def _inventory(kube: KubeClient, repo: EnvRepo, env: str) -> list[ObjectRef]:
    return InventoryStore(kube, source=str(repo.remote)).load(env).entries


def _dump(*objs: dict[str, Any]) -> str:
    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objs)


def _write_env(
    repo: EnvRepo, env: str, objs: list[dict[str, Any]], *, namespace: str = "", extra: str = ""
) -> str:
    head = f"overlay: overlays/{env}\n" + (f"namespace: {namespace}\n" if namespace else "") + extra
    repo.write(f"envs/{env}.yaml", head)
    repo.write(f"overlays/{env}/kustomization.yaml", "resources:\n- objects.yaml\n")
    repo.write(f"overlays/{env}/objects.yaml", _dump(*objs))
    return repo.commit(f"{env}: {len(objs)} objects")


# --------------------------------------------------------------------------------------------------
# equivalent resources


def _core_event(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "target", "namespace": ns},
        "reason": "Synced",
        "message": "applied by the test",
        "type": "Normal",
        "action": "Apply",
        "eventTime": EVENT_TIME,
        "reportingComponent": "reconciler.dev/test",
        "reportingInstance": "test-1",
    }


def _events_k8s_io_event(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "name": "target", "namespace": ns},
        "reason": "Synced",
        "note": "applied by the test",
        "type": "Normal",
        "action": "Apply",
        "eventTime": EVENT_TIME,
        "reportingController": "reconciler.dev/test",
        "reportingInstance": "test-1",
    }


def _hpa(version: str) -> Callable[[str, str], dict[str, Any]]:
    def build(ns: str, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 3,
        }
        if version == "v1":
            spec["targetCPUUtilizationPercentage"] = 80
        else:
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ]
        return {
            "apiVersion": f"autoscaling/{version}",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }

    return build


# One manifest per (group, version, resource) that kube-apiserver serves as one stored resource under
# several groups or versions. The test below asks the server which those are and fails for any without
# a manifest here, so a new pair in a later Kubernetes version cannot be skipped silently.
MANIFESTS: dict[tuple[str, str, str], Callable[[str, str], dict[str, Any]]] = {
    ("", "v1", "events"): _core_event,
    ("events.k8s.io", "v1", "events"): _events_k8s_io_event,
    ("autoscaling", "v1", "horizontalpodautoscalers"): _hpa("v1"),
    ("autoscaling", "v2", "horizontalpodautoscalers"): _hpa("v2"),
}


def _crd_groups(kube: KubeClient) -> set[str]:
    items, _ = kube.list("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
    return {str(i["spec"]["group"]) for i in items}


def _builtin_pairs(kube: KubeClient) -> list[tuple[ResourceInfo, ResourceInfo]]:
    """Every ordered pair of resources the server serves as one stored resource (built-in groups)."""
    custom = _crd_groups(kube)
    pairs = []
    for same in kube.equivalent_resources():
        members = [m for m in same if m.group not in custom]
        pairs.extend((a, b) for a in members for b in members if a != b)
    return pairs


def _key(info: ResourceInfo) -> tuple[str, str, str]:
    return (info.group, info.version, info.plural)


def test_equivalent_resources_served_by_the_api_server(kube: KubeClient) -> None:
    pairs = _builtin_pairs(kube)
    served = {(_key(a), _key(b)) for a, b in pairs}
    # core v1 and events.k8s.io/v1 Events are one stored resource (the data-loss report of issue 15)
    assert (("", "v1", "events"), ("events.k8s.io", "v1", "events")) in served
    missing = sorted({_key(i) for pair in pairs for i in pair} - set(MANIFESTS))
    assert missing == [], f"equivalent resources without a test manifest: {missing}"


def test_group_move_of_one_stored_object_deletes_nothing(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    pairs = _builtin_pairs(kube)
    assert pairs, "the server must serve at least the core/events.k8s.io Event pair"
    ctx = _ctx(env_repo, kube, cache_dir)
    for n, (old, new) in enumerate(pairs):
        env = f"move{n}"
        name = f"moved-{n}"
        where = f"{old.group or 'core'}/{old.version} -> {new.group or 'core'}/{new.version} {new.plural}"
        # two objects that stay, so the mass-prune guard (more than half) is not what protects the moved one
        stay = [_cm(f"{name}-a"), _cm(f"{name}-b")]
        _write_env(env_repo, env, [MANIFESTS[_key(old)](namespace, name), *stay], namespace=namespace)
        first = run_pass(ctx, env, with_health=False)
        assert first.ok, (where, first.error)
        old_ref = ObjectRef(
            group=old.group, version=old.version, kind=old.kind, namespace=namespace, name=name
        )
        new_ref = ObjectRef(
            group=new.group, version=new.version, kind=new.kind, namespace=namespace, name=name
        )
        uid = (kube.get(old_ref) or {})["metadata"]["uid"]

        _write_env(env_repo, env, [MANIFESTS[_key(new)](namespace, name), *stay], namespace=namespace)
        moved = run_pass(ctx, env, with_health=False)
        assert moved.ok, (where, moved.error)
        assert [c for c in moved.changes.entries if c.action in (Action.DELETED, Action.FAILED)] == [], where
        live = kube.get(new_ref)
        assert live is not None and live["metadata"]["uid"] == uid, where
        assert (kube.get(old_ref) or {}).get("metadata", {}).get("uid") == uid, where
        entries = [(e.api_version, e.kind, e.name) for e in _inventory(kube, env_repo, env) if e.name == name]
        assert entries == [(new_ref.api_version, new.kind, name)], where

        again = run_pass(ctx, env, with_health=False)
        assert again.ok and {c.action for c in again.changes.entries} == {Action.UNCHANGED}, (where, again)
        assert (kube.get(new_ref) or {}).get("metadata", {}).get("uid") == uid, where


def test_group_move_with_mass_prune_guard_and_a_real_prune(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    """The moved Event does not count as a deletion for the guard, while a ConfigMap that left Git with it
    is still pruned (the same-object rule must not keep everything)."""
    ctx = _ctx(env_repo, kube, cache_dir)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gone"}, "data": {"a": "b"}}
    _write_env(env_repo, "guard", [_core_event(namespace, "ev"), cm], namespace=namespace)
    assert run_pass(ctx, "guard", with_health=False).ok
    _write_env(env_repo, "guard", [_events_k8s_io_event(namespace, "ev")], namespace=namespace)
    result = run_pass(ctx, "guard", with_health=False)
    assert result.ok and result.error == "", result.error
    deleted = [str(c.ref) for c in result.changes.entries if c.action is Action.DELETED]
    assert deleted == [f"ConfigMap/{namespace}/gone"]
    assert kube.get(ObjectRef(kind="ConfigMap", namespace=namespace, name="gone")) is None
    assert (
        kube.get(ObjectRef(group="events.k8s.io", kind="Event", namespace=namespace, name="ev")) is not None
    )
    assert [e.api_version for e in _inventory(kube, env_repo, "guard")] == ["events.k8s.io/v1"]


# --------------------------------------------------------------------------------------------------
# cluster-scoped prerequisites in the same pass


@pytest.fixture
def fresh_namespaces(kube: KubeClient) -> Iterator[Callable[[], str]]:
    """Names for namespaces the test's passes create; all deleted afterwards."""
    made: list[str] = []

    def new() -> str:
        made.append(f"n-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield new
    for name in made:
        kube.delete(ObjectRef(kind="Namespace", name=name))


def _ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _sa(name: str, ns: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} | ({"namespace": ns} if ns else {})
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def _cm(name: str, ns: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} | ({"namespace": ns} if ns else {})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def _bad_service(name: str, ns: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} | ({"namespace": ns} if ns else {})
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": [{"port": 99999}]}}


def _order(result: PassResult) -> list[str]:
    return [f"{c.ref.kind}/{c.ref.name}" for c in result.changes.entries]


def test_explicit_namespace_objects_and_their_contents_in_one_pass(
    env_repo: EnvRepo, kube: KubeClient, cache_dir: Path, fresh_namespaces: Callable[[], str]
) -> None:
    a, b = fresh_namespaces(), fresh_namespaces()
    objs = [_sa("agent", a), _cm("settings", b), _ns(a), _sa("agent", b), _ns(b)]
    _write_env(env_repo, "explicit", objs)
    before = kube.calls["dry-run"]
    result = run_pass(_ctx(env_repo, kube, cache_dir), "explicit", with_health=False)
    assert result.ok, result.error
    # every object validated exactly once (none waits for its namespace through a failing call)
    assert kube.calls["dry-run"] - before == len(objs)
    assert {c.action for c in result.changes.entries} == {Action.CREATED}
    order = _order(result)
    assert max(order.index(f"Namespace/{a}"), order.index(f"Namespace/{b}")) < min(
        i for i, o in enumerate(order) if not o.startswith("Namespace/")
    )
    for ref in (
        ObjectRef(kind="ServiceAccount", namespace=a, name="agent"),
        ObjectRef(kind="ServiceAccount", namespace=b, name="agent"),
        ObjectRef(kind="ConfigMap", namespace=b, name="settings"),
    ):
        assert kube.get(ref) is not None, ref
    assert len(_inventory(kube, env_repo, "explicit")) == 5


def test_environment_namespace_default_with_its_namespace_in_the_set(
    env_repo: EnvRepo, kube: KubeClient, cache_dir: Path, fresh_namespaces: Callable[[], str]
) -> None:
    ns = fresh_namespaces()
    _write_env(env_repo, "envdefault", [_sa("agent"), _cm("settings"), _ns(ns)], namespace=ns)
    result = run_pass(_ctx(env_repo, kube, cache_dir), "envdefault", with_health=False)
    assert result.ok, result.error
    assert kube.get(ObjectRef(kind="ServiceAccount", namespace=ns, name="agent")) is not None
    assert kube.get(ObjectRef(kind="ConfigMap", namespace=ns, name="settings")) is not None


def test_environment_namespace_that_nothing_creates_fails_before_any_write(
    env_repo: EnvRepo, kube: KubeClient, cache_dir: Path, fresh_namespaces: Callable[[], str]
) -> None:
    """The environment's ``namespace:`` fills in metadata.namespace only; it never creates a namespace
    (as Flux: the Namespace belongs in the set), and the error says so before anything is written."""
    ns = fresh_namespaces()
    _write_env(env_repo, "nons", [_cm("settings"), _sa("agent")], namespace=ns)
    result = run_pass(_ctx(env_repo, kube, cache_dir), "nons", with_health=False)
    assert not result.ok
    assert f"namespace '{ns}' does not exist and the desired set does not create it" in result.error
    assert "nothing applied" in result.error
    assert kube.get(ObjectRef(kind="Namespace", name=ns)) is None
    assert _inventory(kube, env_repo, "nons") == []


def test_invalid_object_in_a_new_namespace_fails_after_the_cluster_scoped_stage(
    env_repo: EnvRepo, kube: KubeClient, cache_dir: Path, fresh_namespaces: Callable[[], str]
) -> None:
    ns = fresh_namespaces()
    ctx = _ctx(env_repo, kube, cache_dir)
    _write_env(env_repo, "late", [_ns(ns), _cm("settings"), _bad_service("web")], namespace=ns)
    result = run_pass(ctx, "late", with_health=False)
    assert not result.ok
    assert "after the cluster-scoped stage was applied" in result.error
    assert f"Service/{ns}/web" in result.error and "99999" not in result.error.split("Invalid value")[0]
    assert [(c.ref.kind, c.action) for c in result.changes.entries] == [("Namespace", Action.CREATED)]
    # the namespace was written and is tracked; nothing namespaced was written
    assert kube.get(ObjectRef(kind="Namespace", name=ns)) is not None
    assert [str(r) for r in _inventory(kube, env_repo, "late")] == [f"Namespace/{ns}"]
    assert kube.get(ObjectRef(kind="ConfigMap", namespace=ns, name="settings")) is None

    # Git fixes the Service: the next pass converges
    fixed = _bad_service("web")
    fixed["spec"]["ports"] = [{"port": 8080}]
    _write_env(env_repo, "late", [_ns(ns), _cm("settings"), fixed], namespace=ns)
    again = run_pass(ctx, "late", with_health=False)
    assert again.ok, again.error
    assert kube.get(ObjectRef(kind="Service", namespace=ns, name="web")) is not None
    assert len(_inventory(kube, env_repo, "late")) == 3


def test_invalid_object_in_an_existing_namespace_writes_nothing_at_all(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path, fresh_namespaces: Callable[[], str]
) -> None:
    ns = fresh_namespaces()
    _write_env(env_repo, "early", [_ns(ns), _cm("settings", ns), _bad_service("web", namespace)])
    result = run_pass(_ctx(env_repo, kube, cache_dir), "early", with_health=False)
    assert not result.ok
    assert result.error.startswith("validation failed, nothing applied: ") and f"Service/{namespace}/web" in (
        result.error
    )
    assert kube.get(ObjectRef(kind="Namespace", name=ns)) is None
    assert _inventory(kube, env_repo, "early") == []


def _pool_crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"pools.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Pool", "plural": "pools", "singular": "pool", "listKind": "PoolList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["model"],
                                    "properties": {"model": {"type": "string"}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_and_its_first_custom_resources_in_a_new_namespace(
    env_repo: EnvRepo, kube: KubeClient, cache_dir: Path, fresh_namespaces: Callable[[], str]
) -> None:
    ns = fresh_namespaces()
    group = f"g{uuid.uuid4().hex[:6]}.example.test"
    crd_ref = ObjectRef(
        group="apiextensions.k8s.io", version="v1", kind="CustomResourceDefinition", name=f"pools.{group}"
    )

    def pool(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": f"{group}/v1", "kind": "Pool", "metadata": {"name": name}, "spec": spec}

    ctx = _ctx(env_repo, kube, cache_dir)
    try:
        # an invalid custom resource: the CRD and the Namespace are written (and tracked), the rest not
        _write_env(
            env_repo,
            "crd",
            [pool("a", {"model": "m"}), pool("b", {}), _pool_crd(group), _ns(ns)],
            namespace=ns,
        )
        bad = run_pass(ctx, "crd", with_health=False)
        assert not bad.ok
        assert "after the cluster-scoped stage was applied" in bad.error and f"Pool/{ns}/b" in bad.error
        assert "spec.model" in bad.error
        assert sorted(str(r) for r in _inventory(kube, env_repo, "crd")) == sorted(
            [f"CustomResourceDefinition/pools.{group}", f"Namespace/{ns}"]
        )
        kube.forget_discovery()
        pool_a = ObjectRef(group=group, version="v1", kind="Pool", namespace=ns, name="a")
        assert kube.get(pool_a) is None

        _write_env(
            env_repo,
            "crd",
            [pool("a", {"model": "m"}), pool("b", {"model": "n"}), _pool_crd(group), _ns(ns)],
            namespace=ns,
        )
        good = run_pass(ctx, "crd", with_health=False)
        assert good.ok, good.error
        assert (kube.get(pool_a) or {}).get("spec") == {"model": "m"}
    finally:
        kube.delete(crd_ref)
        kube.forget_discovery()


def test_dry_run_marks_objects_it_could_not_validate(
    env_repo: EnvRepo, kube: KubeClient, cache_dir: Path, fresh_namespaces: Callable[[], str]
) -> None:
    ns = fresh_namespaces()
    _write_env(env_repo, "dry", [_ns(ns), _cm("settings")], namespace=ns)
    result = run_pass(_ctx(env_repo, kube, cache_dir), "dry", with_health=False, dry_run=True)
    assert result.ok, result.error
    messages = {str(c.ref): c.message for c in result.changes.entries}
    assert messages[f"ConfigMap/{ns}/settings"] == f"not validated: needs Namespace/{ns} from this set"
    assert kube.get(ObjectRef(kind="Namespace", name=ns)) is None


# --------------------------------------------------------------------------------------------------
# write-only fields


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRET_VALUE = "s3cr3t-from-git"
ROTATED_VALUE = "r0tated-by-someone"


def _secret(ns: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "api-key"} | ({"namespace": ns} if ns else {})
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"token": SECRET_VALUE}}


def _rotate(kube: KubeClient, ns: str) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api-key", "namespace": ns},
            "data": {"token": _b64(ROTATED_VALUE)},
        },
        ObjectRef(kind="Secret", namespace=ns, name="api-key"),
        field_manager="someone-else",
        force=True,
    )


def test_secret_string_data_drift_is_reported_at_the_live_path(
    env_repo: EnvRepo, kube: KubeClient, kubeconfig: Path, namespace: str, cache_dir: Path
) -> None:
    ctx = _ctx(env_repo, kube, cache_dir)
    reported: list[tuple[str, list[str]]] = []
    ctx.on_drift = lambda env, ref, paths: reported.append((str(ref), paths))
    _write_env(env_repo, "secret", [_secret()], namespace=namespace, extra="sync: {drift: warn}\n")
    assert run_pass(ctx, "secret", with_health=False).ok
    live = kube.get(ObjectRef(kind="Secret", namespace=namespace, name="api-key")) or {}
    assert "stringData" not in live and live["data"]["token"] == _b64(SECRET_VALUE)

    _rotate(kube, namespace)
    warned = run_pass(ctx, "secret", with_health=False)
    assert warned.ok, warned.error
    (change,) = warned.changes.entries
    assert change.action is Action.SKIPPED
    assert change.message == "drift not corrected (drift: warn): data.token (from stringData.token)"
    assert reported == [(f"Secret/{namespace}/api-key", ["data.token (from stringData.token)"])]

    # the diff of a dry-run names the live path and its Git path, and shows no value
    _write_env(env_repo, "secret", [_secret()], namespace=namespace)
    planned = run_pass(ctx, "secret", with_health=False, dry_run=True)
    (change,) = planned.changes.entries
    assert change.action is Action.CONFIGURED
    assert " data.token (from stringData.token): Secret value differs (not shown)" in change.diff.splitlines()
    text = json.dumps(planned.model_dump(mode="json"))
    for value in (SECRET_VALUE, ROTATED_VALUE, _b64(SECRET_VALUE), _b64(ROTATED_VALUE)):
        assert value not in text

    # the same through `reconciler diff` (text and JSON output)
    pending = pending_change(str(env_repo.remote), "main", "secret", kubeconfig, None, cache_dir)
    console = Console(record=True, width=200, color_system=None)
    print_diff(console, pending)
    shown = console.export_text() + json.dumps(pending.model_dump(mode="json"))
    assert "data.token (from stringData.token): Secret value differs (not shown)" in shown
    for value in (SECRET_VALUE, ROTATED_VALUE, _b64(SECRET_VALUE), _b64(ROTATED_VALUE)):
        assert value not in shown


async def test_secret_drift_event_of_the_daemon_carries_live_and_git_paths(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path, nats_url: str
) -> None:
    _write_env(env_repo, "dev", [_secret()], namespace=namespace, extra="sync: {interval: 3600}\n")
    results: list[PassResult] = []
    drifts: list[dict[str, Any]] = []
    settings = daemon_settings(env_repo.remote, kubeconfig, cache_dir, nats_url=nats_url)
    daemon = Daemon(settings, on_result=results.append, on_drift=drifts.append)
    await daemon.start()
    try:
        await until(lambda: results, 30)
        assert results[0].ok, results[0].error
        await asyncio.to_thread(_rotate, kube, namespace)
        await until(lambda: any(d.get("corrected") for d in drifts), 10)
        event = next(d for d in drifts if d.get("corrected"))
        assert event["paths"] == ["data.token"]
        assert event["fields"] == [{"live": "data.token", "git": "stringData.token"}]
        text = json.dumps(event)
        for value in (SECRET_VALUE, ROTATED_VALUE, _b64(SECRET_VALUE), _b64(ROTATED_VALUE)):
            assert value not in text
        live = await asyncio.to_thread(
            kube.get, ObjectRef(kind="Secret", namespace=namespace, name="api-key")
        )
        assert (live or {})["data"]["token"] == _b64(SECRET_VALUE)
    finally:
        await daemon.stop()


def _leaves(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            yield from _leaves(v, (*path, str(k)))
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, str(i)))
    else:
        yield path


def _has(obj: Any, path: tuple[str, ...]) -> bool:
    for token in path:
        if isinstance(obj, dict) and token in obj:
            obj = obj[token]
        elif isinstance(obj, list) and token.isdigit() and int(token) < len(obj):
            obj = obj[int(token)]
        else:
            return False
    return True


# Objects that use the fields the API server converts on write (deprecated aliases and write-only
# inputs of the built-in types); the server-side dry-run shows what it would store.
WRITES = [
    _secret(),
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc"},
        "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "dep"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {
                    "serviceAccount": "default",
                    "containers": [{"name": "c", "image": "example.test/x:1"}],
                },
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "claim"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "dataSource": {"kind": "PersistentVolumeClaim", "name": "other"},
        },
    },
]


def test_write_only_fields_are_the_ones_the_server_drops(kube: KubeClient, namespace: str) -> None:
    """Every field of these manifests survives a write, except exactly the write-only ones the drift
    module knows; and each is reported at its live path with its Git path."""
    dropped: set[tuple[str, str, str]] = set()
    for obj in WRITES:
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["namespace"] = namespace
        group, _, version = obj["apiVersion"].rpartition("/")
        ref = ObjectRef(
            group=group, version=version, kind=obj["kind"], namespace=namespace, name=obj["metadata"]["name"]
        )
        stored = kube.apply(obj, ref, field_manager="tests", dry_run=True)
        for leaf in _leaves(obj):
            if not _has(stored, leaf):
                dropped.add((group, obj["kind"], leaf[0]))
    assert dropped == {(f.group, f.kind, f.git) for f in WRITE_ONLY_FIELDS}

    stored_secret = kube.apply(
        {**_secret(namespace)},
        ObjectRef(kind="Secret", namespace=namespace, name="api-key"),
        field_manager="tests",
        dry_run=True,
    )
    stored_secret["data"]["token"] = _b64(ROTATED_VALUE)
    (found,) = diff_fields(_secret(namespace), stored_secret)
    assert (found.live, found.git, str(found)) == (
        "data.token",
        "stringData.token",
        "data.token (from stringData.token)",
    )


def test_a_key_removed_from_string_data_is_removed_from_the_live_secret(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    """Server-side apply owns what was sent; sent as stringData, a key that later leaves Git would stay in
    the live data forever (the server drops stringData, so there is nothing to un-own). The pass sends
    data, owns data.<key>, and removes the key."""
    ctx = _ctx(env_repo, kube, cache_dir)
    ref = ObjectRef(kind="Secret", namespace=namespace, name="api-key")
    two = _secret()
    two["stringData"]["old"] = "legacy-value"
    _write_env(env_repo, "keys", [two], namespace=namespace)
    assert run_pass(ctx, "keys", with_health=False).ok
    live = kube.get(ref) or {}
    assert sorted(live["data"]) == ["old", "token"]
    (owned,) = [m for m in live["metadata"]["managedFields"] if m["manager"] == "reconciler"]
    assert owned["fieldsV1"] == {"f:data": {"f:old": {}, "f:token": {}}}

    _write_env(env_repo, "keys", [_secret()], namespace=namespace)
    result = run_pass(ctx, "keys", with_health=False)
    assert result.ok, result.error
    assert [(c.action, c.message) for c in result.changes.entries] == [(Action.CONFIGURED, "data.old")]
    assert sorted((kube.get(ref) or {})["data"]) == ["token"]
    again = run_pass(ctx, "keys", with_health=False)
    assert [c.action for c in again.changes.entries] == [Action.UNCHANGED]


def test_a_field_the_server_drops_on_write_is_named_in_the_change(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    """kube-apiserver 1.36 drops fields of feature gates that are off (here ContainerStopSignals, alpha)
    without an error; such a field would show as drift on every pass, so the change names it."""
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "example.test/web:1", "lifecycle": {"stopSignal": "SIGUSR1"}}
                    ]
                },
            },
        },
    }
    _write_env(env_repo, "dropped", [dep], namespace=namespace)
    ctx = _ctx(env_repo, kube, cache_dir)
    result = run_pass(ctx, "dropped", with_health=False)
    assert result.ok, result.error
    field = "spec.template.spec.containers[name=c].lifecycle.stopSignal"
    assert [(c.action, c.message) for c in result.changes.entries] == [
        (Action.CREATED, f"not stored by the API server (dropped or changed on write): {field}")
    ]
    live = kube.get(ObjectRef(group="apps", kind="Deployment", namespace=namespace, name="web")) or {}
    assert "lifecycle" not in live["spec"]["template"]["spec"]["containers"][0]
    planned = run_pass(ctx, "dropped", with_health=False, dry_run=True)
    assert [c.message for c in planned.changes.entries] == [
        f"{field}; not stored by the API server (dropped or changed on write): {field}"
    ]
