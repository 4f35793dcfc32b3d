"""The set of environments follows ``envs/`` without a restart, on the real control plane and Git: a
file a commit adds starts its environment; a file a commit removes stops it, and its objects stay
(orphaned, with their inventory) unless the file said ``deletionPolicy: delete``."""

from __future__ import annotations

import functools
from pathlib import Path

from reconciler_testing import EnvRepo, daemon_settings, until

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.model import ObjectRef, PassResult
from reconciler.runtime import Daemon

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  ENV: {name}\n"


def _env(repo: EnvRepo, name: str, namespace: str, extra: str = "") -> None:
    repo.write(
        f"envs/{name}.yaml",
        f"overlay: overlays/{name}\nnamespace: {namespace}\nsync: {{interval: 3600}}\n{extra}",
    )
    repo.write(f"overlays/{name}/kustomization.yaml", "resources:\n- cm.yaml\n")
    repo.write(f"overlays/{name}/cm.yaml", CM.format(name=name))


def _passed(results: list[PassResult], env: str, sha: str) -> bool:
    return any(r.environment == env and r.ok and r.revision.endswith(sha) for r in results)


async def test_environments_are_added_and_removed_by_commits(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    _env(env_repo, "dev", namespace)
    env_repo.commit("dev")
    results: list[PassResult] = []
    daemon = Daemon(
        daemon_settings(env_repo.remote, kubeconfig, cache_dir, envs=[]), on_result=results.append
    )
    await daemon.start()
    cm = functools.partial(ObjectRef, kind="ConfigMap", namespace=namespace)
    store = InventoryStore(kube, source=str(env_repo.remote))
    try:
        assert sorted(daemon.envs) == ["dev"]
        await until(lambda: any(r.environment == "dev" and r.ok for r in results), 60, "dev's first pass")

        _env(env_repo, "qa", namespace)
        _env(env_repo, "tmp", namespace, "deletionPolicy: delete\n")
        added = env_repo.commit("add qa and tmp")
        await daemon.trigger("dev", "git-push")  # a push webhook: dev's pass reads the new envs/
        await until(
            lambda: _passed(results, "qa", added) and _passed(results, "tmp", added), 60, "qa and tmp"
        )
        assert sorted(daemon.envs) == ["dev", "qa", "tmp"]
        assert kube.get(cm(name="qa")) and kube.get(cm(name="tmp"))

        env_repo.remove("envs/qa.yaml")
        env_repo.remove("envs/tmp.yaml")
        removed = env_repo.commit("remove qa and tmp")
        await daemon.trigger("dev", "git-push")
        await until(lambda: sorted(daemon.envs) == ["dev"], 60, "qa and tmp stopped")
        await until(  # its objects are deleted first, then its removal is recorded
            lambda: kube.get(cm(name="tmp")) is None and "tmp" in daemon.removed,
            30,
            "tmp's objects deleted (deletionPolicy) and its removal recorded",
        )
        assert not store.load("tmp").entries, "tmp's inventory goes with its objects"
        # qa (the default deletionPolicy: orphan) keeps its objects and its inventory
        assert kube.get(cm(name="qa")) is not None
        assert [r.name for r in store.load("qa").entries] == ["qa"]
        assert daemon.removed["qa"]["policy"] == "orphan" and daemon.removed["qa"]["revision"] == removed
        assert daemon.removed["tmp"]["policy"] == "delete"
        # dev goes on
        again = await daemon.trigger("dev", "test")
        assert again.ok and again.revision.endswith(removed)
        assert "qa" not in daemon.envs and not any(
            r.environment == "qa" and r.revision.endswith(removed) for r in results
        )
    finally:
        await daemon.stop()
