"""Shared acceptance cases 17, 18 and 22 (../shared/cases) on the real control plane."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from reconciler_testing import EnvRepo, shared_dir

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.model import Action, ObjectRef, PassOutcome
from reconciler.reconcile import PassContext, run_pass
from reconciler.source import GitSource


def _ctx(repo: EnvRepo, kube: KubeClient, cache_dir: Path) -> PassContext:
    return PassContext(source=GitSource(str(repo.remote), "main", cache_dir), client=kube)


def _kind_name(entry: str) -> str:
    """``apiextensions.k8s.io/CustomResourceDefinition/x`` or ``v1/Namespace/agents`` → ``Kind/name``."""
    parts = entry.split("/")
    kind_index = next(i for i, p in enumerate(parts) if p[:1].isupper())
    return f"{parts[kind_index]}/{parts[-1]}"


def _ref_str(entry: dict[str, str]) -> str:
    return (
        f"{entry['kind']}/{entry['namespace']}/{entry['name']}"
        if entry.get("namespace")
        else (f"{entry['kind']}/{entry['name']}")
    )


def test_case22_crd_and_namespace_before_custom_resources(
    env_repo: EnvRepo, kube: KubeClient, cache_dir: Path
) -> None:
    case = shared_dir() / "cases" / "22-apply-crd-before-custom-resource"
    expected = json.loads((case / "expected.json").read_text())
    shutil.copytree(case / "app", env_repo.work / "overlays" / "app")
    env_repo.write("envs/case22.yaml", "overlay: overlays/app\n")
    env_repo.commit("case 22")
    try:
        result = run_pass(_ctx(env_repo, kube, cache_dir), "case22", with_health=False)
        assert result.ok, result.error
        order = [f"{c.ref.kind}/{c.ref.name}" for c in result.changes.entries]
        created = {f"{c.ref.kind}/{c.ref.name}" for c in result.changes.entries if c.action is Action.CREATED}
        want = {_kind_name(e) for e in expected["result_after_one_reconcile"]["created"]}
        assert (
            created
            == {
                "Namespace/agents",
                "CustomResourceDefinition/agentpools.platform.example.test",
                "AgentPool/research",
                "AgentPool/support",
            }
            == want
        )
        # phase 1 (CRD + Namespace) strictly before phase 3 (the custom resources), in one pass
        assert max(
            order.index("Namespace/agents"),
            order.index("CustomResourceDefinition/agentpools.platform.example.test"),
        ) < min(order.index("AgentPool/research"), order.index("AgentPool/support"))
        pool = kube.get(
            ObjectRef(
                group="platform.example.test",
                version="v1alpha1",
                kind="AgentPool",
                namespace="agents",
                name="support",
            )
        )
        assert pool is not None and pool["spec"]["maxConcurrency"] == 8
    finally:
        kube.delete(
            ObjectRef(
                group="apiextensions.k8s.io",
                version="v1",
                kind="CustomResourceDefinition",
                name="agentpools.platform.example.test",
            )
        )
        kube.delete(ObjectRef(kind="Namespace", name="agents"))


def _store(kube: KubeClient, repo: EnvRepo) -> InventoryStore:
    return InventoryStore(kube, source=str(repo.remote))


def _seed_sandbox(repo: EnvRepo, namespace: str, *, allow_mass_prune: bool) -> None:
    repo.write(
        "envs/sandbox.yaml",
        f"overlay: overlays/sandbox\nnamespace: {namespace}\n"
        f"sync: {{allowMassPrune: {str(allow_mass_prune).lower()}}}\n",
    )
    repo.write("overlays/sandbox/kustomization.yaml", "resources:\n- deployment.yaml\n- service.yaml\n")
    repo.write(
        "overlays/sandbox/deployment.yaml",
        """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: code-sandbox}
spec:
  selector: {matchLabels: {app: code-sandbox}}
  template:
    metadata: {labels: {app: code-sandbox}}
    spec:
      containers: [{name: sandbox, image: registry.example.test/code-sandbox:1.0.0}]
""",
    )
    repo.write(
        "overlays/sandbox/service.yaml",
        """\
apiVersion: v1
kind: Service
metadata: {name: code-sandbox}
spec:
  selector: {app: code-sandbox}
  ports: [{port: 8080}]
""",
    )
    repo.commit("sandbox")


def _empty_desired_set(repo: EnvRepo) -> None:
    case = shared_dir() / "cases" / "18-prune-empty-desired-set"
    shutil.copy(case / "desired" / "kustomization.yaml", repo.work / "overlays/sandbox/kustomization.yaml")
    repo.remove("overlays/sandbox/deployment.yaml")
    repo.remove("overlays/sandbox/service.yaml")
    repo.commit("remove the last manifests")


def test_case18_empty_desired_set_still_prunes(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    expected = json.loads((shared_dir() / "cases/18-prune-empty-desired-set/expected.json").read_text())
    _seed_sandbox(env_repo, namespace, allow_mass_prune=True)
    ctx = _ctx(env_repo, kube, cache_dir)
    assert run_pass(ctx, "sandbox", with_health=False).ok
    _empty_desired_set(env_repo)
    result = run_pass(ctx, "sandbox", with_health=False)
    assert result.ok and result.error == ""
    deleted = sorted(str(c.ref) for c in result.changes.entries if c.action is Action.DELETED)
    assert deleted == sorted(f"{e.split('/')[-3]}/{namespace}/{e.split('/')[-1]}" for e in expected["delete"])
    assert _store(kube, env_repo).load("sandbox").entries == expected["inventory_after"]
    assert (
        kube.get(ObjectRef(group="apps", kind="Deployment", namespace=namespace, name="code-sandbox")) is None
    )


def test_case18_guard_variant_blocks_without_error(
    env_repo: EnvRepo, kube: KubeClient, kubeconfig: Path, namespace: str, cache_dir: Path
) -> None:
    _seed_sandbox(env_repo, namespace, allow_mass_prune=False)
    ctx = _ctx(env_repo, kube, cache_dir)
    assert run_pass(ctx, "sandbox", with_health=False).ok
    before = _store(kube, env_repo).load("sandbox")
    _empty_desired_set(env_repo)
    result = run_pass(ctx, "sandbox", with_health=False)
    # a blocked prune is its own status: neither a generic failure nor a success
    assert result.blocked and not result.ok and result.outcome is PassOutcome.BLOCKED
    assert result.error.startswith("prune blocked")
    assert [c for c in result.changes.entries if c.action is Action.DELETED] == []
    after = _store(kube, env_repo).load("sandbox")
    assert {r.key for r in after.entries} == {r.key for r in before.entries}
    assert after.revision == before.revision, "a blocked revision is never recorded as applied"
    assert kube.get(ObjectRef(group="apps", kind="Deployment", namespace=namespace, name="code-sandbox"))
    # the dry-run (what `reconciler diff` shows) lists the deletions the guard stops, marked blocked
    plan = run_pass(ctx, "sandbox", with_health=False, dry_run=True)
    assert plan.blocked
    stopped = [c for c in plan.changes.entries if c.action is Action.DELETED]
    assert len(stopped) == 2 and all(c.message.startswith("blocked: prune blocked") for c in stopped)
    # and `reconciler diff --exit-code`, the pull-request check, does not pass a "delete everything"
    from typer.testing import CliRunner

    from reconciler.cli import app

    args = ["diff", "sandbox", "--repo", str(env_repo.remote), "--kubeconfig", str(kubeconfig), "--exit-code"]
    out = CliRunner().invoke(app, args, env={"RECONCILER_CACHE_DIR": str(cache_dir)})
    assert out.exit_code == 3, out.output
    assert "(deleted — blocked by a guard)" in out.stdout and "BLOCKED" in out.stdout, out.stdout


POSTGRES_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "postgresclusters.db.example.test"},
    "spec": {
        "group": "db.example.test",
        "scope": "Namespaced",
        "names": {
            "kind": "PostgresCluster",
            "plural": "postgresclusters",
            "singular": "postgrescluster",
            "listKind": "PostgresClusterList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def test_case17_prune_only_inventory_never_copied_labels(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    from reconciler.cluster.manager import ResourceManager

    case = shared_dir() / "cases" / "17-prune-copied-tracking-labels"
    expected = json.loads((case / "expected.json").read_text())
    crd_ref = ObjectRef(
        group="apiextensions.k8s.io",
        version="v1",
        kind="CustomResourceDefinition",
        name="postgresclusters.db.example.test",
    )
    kube.apply(POSTGRES_CRD, crd_ref, field_manager="tests")
    ResourceManager(kube).wait_established([crd_ref], 30)
    kube.forget_discovery()
    try:
        desired = (case / "desired.yaml").read_text().replace("namespace: agents", f"namespace: {namespace}")
        env_repo.write("overlays/db/desired.yaml", desired)
        env_repo.write("overlays/db/kustomization.yaml", "resources:\n- desired.yaml\n")
        env_repo.write("envs/db.yaml", f"overlay: overlays/db\nnamespace: {namespace}\n")
        env_repo.commit("memory-db")
        ctx = _ctx(env_repo, kube, cache_dir)
        first = run_pass(ctx, "db", with_health=False)
        assert first.ok, first.error
        applied = sorted(str(c.ref) for c in first.changes.entries)
        assert applied == sorted(_ref_str({**e, "namespace": namespace}) for e in expected["inventory_after"])

        # the operator's Services carry copies of every label of the PostgresCluster
        for name in ("memory-db-replicas", "memory-db-pods"):
            kube.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "labels": {
                            "reconciler.dev/environment": "db",
                            "app.kubernetes.io/managed-by": "reconciler",
                        },
                    },
                    "spec": {"ports": [{"port": 5432}]},
                },
                ObjectRef(kind="Service", namespace=namespace, name=name),
                field_manager="db-operator",
            )
        again = run_pass(ctx, "db", with_health=False)
        assert again.ok and [c for c in again.changes.entries if c.action is Action.DELETED] == []

        # variant: the Secret leaves Git → exactly the Secret is deleted
        parts = desired.split("---\n")
        env_repo.write("overlays/db/desired.yaml", "---\n".join(p for p in parts if "kind: Secret" not in p))
        env_repo.commit("drop the secret")
        third = run_pass(ctx, "db", with_health=False)
        assert third.ok, third.error
        deleted = [str(c.ref) for c in third.changes.entries if c.action is Action.DELETED]
        assert deleted == [f"Secret/{namespace}/memory-db-auth"]
        for name in ("memory-db-replicas", "memory-db-pods", "memory-db"):
            assert kube.get(ObjectRef(kind="Service", namespace=namespace, name=name)) is not None
    finally:
        kube.delete(crd_ref)
