"""One owner per object, on the real control plane: an object another environment's inventory holds, or
that another GitOps tool marks as its own, blocks the pass before any write, naming both owners; the
``reconciler.dev/ownership: take`` annotation hands an object over, and prune never deletes an object
another inventory holds."""

from __future__ import annotations

from pathlib import Path

from reconciler_testing import EnvRepo, until_sync

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.model import Inventory, ObjectRef
from reconciler.reconcile import PassContext, run_pass
from reconciler.source import GitSource

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{meta}data:\n  OWNER: {owner}\n"
TAKE = "  annotations:\n    reconciler.dev/ownership: take\n"


def _env(repo: EnvRepo, env: str, namespace: str, names: list[str], take: bool = False) -> None:
    repo.write(f"envs/{env}.yaml", f"overlay: overlays/{env}\nnamespace: {namespace}\n")
    repo.write(f"overlays/{env}/kustomization.yaml", "resources:\n" + "".join(f"- {n}.yaml\n" for n in names))
    for n in names:
        meta = TAKE if take and n == "shared" else ""
        repo.write(f"overlays/{env}/{n}.yaml", CM.format(name=n, meta=meta, owner=env))


def test_two_environments_never_fight_over_one_object(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", cache_dir), client=kube)
    store = InventoryStore(kube, source=str(env_repo.remote))
    cm = lambda name: ObjectRef(kind="ConfigMap", namespace=namespace, name=name)  # noqa: E731
    _env(env_repo, "dev", namespace, ["shared", "dev-only"])
    _env(env_repo, "qa", namespace, ["shared", "qa-only"])
    env_repo.commit("dev and qa both render ConfigMap shared")

    assert run_pass(ctx, "dev", with_health=False).ok
    qa = run_pass(ctx, "qa", with_health=False)
    assert qa.blocked and not qa.ok, qa.error
    assert f"ConfigMap/{namespace}/shared is held by environment 'dev'" in qa.error
    assert "environment 'qa'" in qa.error and "reconciler.dev/ownership: take" in qa.error
    assert kube.get(cm("qa-only")) is None, "a blocked pass writes nothing"
    assert (kube.get(cm("shared")) or {})["data"] == {"OWNER": "dev"}
    assert store.load("qa").entries == []

    # the dry-run (`reconciler diff`) says the same
    plan = run_pass(ctx, "qa", with_health=False, dry_run=True)
    assert plan.blocked and "held by environment 'dev'" in plan.error

    # qa takes the object over explicitly; dev is then blocked on it until one of them lets go
    _env(env_repo, "qa", namespace, ["shared", "qa-only"], take=True)
    env_repo.commit("qa takes over shared")
    taken = run_pass(ctx, "qa", with_health=False)
    assert taken.ok, taken.error
    assert (kube.get(cm("shared")) or {})["data"] == {"OWNER": "qa"}
    dev = run_pass(ctx, "dev", with_health=False)
    assert dev.blocked and "held by environment 'qa'" in dev.error
    assert (kube.get(cm("shared")) or {})["data"] == {"OWNER": "qa"}, "dev wrote nothing back"

    # dev lets go: its prune leaves the object to qa instead of deleting it
    _env(env_repo, "dev", namespace, ["dev-only"])
    env_repo.remove("overlays/dev/shared.yaml")
    env_repo.commit("dev lets go of shared")
    released = run_pass(ctx, "dev", with_health=False)
    assert released.ok, released.error
    assert not [c for c in released.changes.entries if c.action.value == "deleted"]
    assert kube.get(cm("shared")) is not None
    assert [r.name for r in store.load("dev").entries] == ["dev-only"]
    assert sorted(r.name for r in store.load("qa").entries) == ["qa-only", "shared"]


def test_an_object_another_gitops_tool_owns_blocks_the_pass(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "shared",
                "namespace": namespace,
                "labels": {
                    "kustomize.toolkit.fluxcd.io/name": "apps",
                    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                },
            },
            "data": {"OWNER": "flux"},
        },
        ObjectRef(kind="ConfigMap", namespace=namespace, name="shared"),
        field_manager="kustomize-controller",
    )
    _env(env_repo, "dev", namespace, ["shared"])
    env_repo.commit("dev renders Flux's ConfigMap")
    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", cache_dir), client=kube)
    result = run_pass(ctx, "dev", with_health=False)
    assert result.blocked, result.error
    assert "held by Flux Kustomization flux-system/apps" in result.error
    live = kube.get(ObjectRef(kind="ConfigMap", namespace=namespace, name="shared")) or {}
    assert live["data"] == {"OWNER": "flux"}


def test_the_demo_refuses_a_cluster_that_runs_the_example_from_another_repository(
    kube: KubeClient, kubeconfig: Path
) -> None:
    """`reconciler up --demo` on a cluster where an earlier `reconciler up` runs the example stops before
    writing anything, and says how to get a cluster of its own; it deletes no inventory to get round it."""
    import pytest

    from reconciler.cli import _demo_needs_its_own_cluster
    from reconciler.errors import ReconcilerError
    from reconciler.model import Inventory

    other = InventoryStore(kube, source="/elsewhere/earlier-up/remote.git")
    entry = ObjectRef(kind="ConfigMap", namespace="nowhere-demo-test", name="x")
    other.save(Inventory(environment="staging", revision="main@sha1:" + "1" * 40, entries=[entry]))
    try:
        with pytest.raises(
            ReconcilerError, match=r"example environments [a-z, ]*staging.*--state-dir <a new directory>"
        ):
            _demo_needs_its_own_cluster(kubeconfig, "/new/demo/remote.git", None)
        assert other.load("staging").entries == [entry], "nothing was erased"
    finally:
        other.delete("staging")


def test_the_inventory_watch_guards_as_a_list_does_without_reading_per_pass(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    """A daemon keeps every inventory by a watch (ownership.InventoryWatch): its view equals a fresh list,
    follows other writers' saves and deletions, sees this process's own writes at once, and the guard then
    blocks exactly as with a list, with one list call fewer per pass."""
    from reconciler.cluster.inventory import NAMESPACE
    from reconciler.cluster.ownership import INVENTORY_LABEL

    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", cache_dir), client=kube)
    targets = ctx.clusters
    target = targets.default_target
    _env(env_repo, "dev", namespace, ["shared", "dev-only"])
    _env(env_repo, "qa", namespace, ["shared", "qa-only"])
    env_repo.commit("dev and qa both render ConfigMap shared")
    assert run_pass(ctx, "dev", with_health=False).ok

    def versions(items: list[dict[str, object]] | None) -> dict[str, str] | None:
        if items is None:
            return None
        return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}  # type: ignore[index]

    def listed() -> dict[str, str] | None:
        items, _ = kube.list("", "v1", "ConfigMap", namespace=NAMESPACE, label_selector=INVENTORY_LABEL)
        return versions(items)

    kube.calls.clear()
    plain = run_pass(ctx, "qa", with_health=False)
    lists_without = kube.calls["list"] - kube.calls["retry"]  # a retried list counts once

    def same() -> bool:
        return versions(targets.inventories(target)) == listed()

    targets.watch_inventories = True
    try:
        until_sync(same, 15, "the watch listed")
        kube.calls.clear()
        qa = run_pass(ctx, "qa", with_health=False)
        lists_with = kube.calls["list"] - kube.calls["retry"]
        assert lists_with == lists_without - 1, "the guard read the watch's view, not a list"
        assert qa.blocked and qa.error == plain.error and "held by environment 'dev'" in qa.error

        # this process's own writes are in the view at once: qa takes shared over, dev is blocked next
        _env(env_repo, "qa", namespace, ["shared", "qa-only"], take=True)
        env_repo.commit("qa takes over shared")
        assert run_pass(ctx, "qa", with_health=False).ok
        dev = run_pass(ctx, "dev", with_health=False)
        assert dev.blocked and "held by environment 'qa'" in dev.error, dev.error

        # another writer's save and deletion reach the view through the watch
        other = InventoryStore(kube, source="https://example.invalid/other.git")
        held = [ObjectRef(kind="ConfigMap", namespace=namespace, name="x")]
        other.save(Inventory(environment="elsewhere", entries=held))
        until_sync(same, 15, "the watch saw the save")
        other.delete("elsewhere")
        until_sync(same, 15, "the watch saw the deletion")
    finally:
        targets.close()
