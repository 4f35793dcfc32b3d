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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from reconciler_testing import EnvRepo, daemon_settings, until

from reconciler.cluster.client import KubeClient
from reconciler.cluster.drift import WRITE_ONLY_FIELDS, diff_fields
from reconciler.cluster.inventory import InventoryStore
from reconciler.model import Action, ObjectRef, PassResult
from reconciler.reconcile import PassContext, run_pass
from reconciler.runtime import Daemon
from reconciler.source import GitSource


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


# --------------------------------------------------------------------------------------------------
# cluster-scoped prerequisites in the same pass


def _cm(name: str, ns: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} | ({"namespace": ns} if ns else {})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


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
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
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
