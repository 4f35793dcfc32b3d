"""The example environments and deploy/ on the real local control plane (CRDs from deploy/crds installed
by the session fixtures): every environment applies with ``run_pass`` and every rendered object passes a
server-side dry-run; custom resources whose controllers do not run here report Unverified; the kustomize
base and the Helm chart apply into a namespace whose PodSecurity level is "restricted" and their RBAC
grants what the daemon needs and nothing it must not have; the pull-request workflow validates and diffs
against the cluster."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from _platform_support import (
    ENVS,
    PLATFORM_GROUPS,
    ROOT,
    STATUS_KINDS,
    group_of,
    helm_template,
    render_env,
    render_kustomize_deploy,
    run_workflow,
)
from reconciler_testing import EnvRepo

from reconciler.cluster.client import KubeClient
from reconciler.cluster.manager import ResourceManager, prepare
from reconciler.model import Action, HealthState, ObjectRef, ref_of
from reconciler.reconcile import PassContext, assess_health, load_environment, run_pass
from reconciler.source import GitSource

pytestmark = pytest.mark.integration


def _isolated_env(repo: EnvRepo, env: str) -> str:
    """A copy of ``envs/<env>.yaml`` under a unique name, so this test's inventory is its own, with a copy
    of what the policies allow ``env`` (policies/environments/<env>/: allow-lists are per environment)."""
    name = f"{env}-{uuid.uuid4().hex[:6]}"
    repo.write(f"envs/{name}.yaml", (ROOT / "envs" / f"{env}.yaml").read_text())
    for data in (ROOT / "policies" / "environments" / env).iterdir():
        repo.write(f"policies/environments/{name}/{data.name}", data.read_text())
    repo.commit(f"test: environment {name} = {env}")
    return name


def _ctx(repo: EnvRepo, kube: KubeClient, cache_dir: Path) -> PassContext:
    return PassContext(source=GitSource(str(repo.remote), "main", cache_dir), client=kube)


def _writes(kube: KubeClient, before: dict[str, int]) -> int:
    return sum(kube.calls[v] - before.get(v, 0) for v in ("apply", "delete", "dry-run", "create", "update"))


@pytest.mark.parametrize("env", ENVS)
def test_environment_applies_and_every_object_passes_server_side_dry_run(
    env: str, example_repo: EnvRepo, kube: KubeClient, cache_dir: Path
) -> None:
    name = _isolated_env(example_repo, env)
    ctx = _ctx(example_repo, kube, cache_dir)
    result = run_pass(ctx, name, with_health=False)
    assert result.ok, result.error
    assert result.error == ""
    assert not [c for c in result.changes.entries if c.action is Action.FAILED]

    rendered = render_env(env, decrypt=True)
    assert {str(c.ref) for c in result.changes.entries} == {str(ref_of(o)) for o in rendered}
    for obj in rendered:
        ref = ref_of(obj)
        assert kube.get(ref) is not None, f"{ref} is not live"
        kube.apply(obj, ref, field_manager="reconciler", dry_run=True)  # raises on any rejection

    before = dict(kube.calls)
    again = run_pass(ctx, name, with_health=False)
    assert again.ok, again.error
    assert {c.action for c in again.changes.entries} == {Action.UNCHANGED}
    assert _writes(kube, before) == 0  # no perpetual diff: the live objects compare equal to Git


def test_custom_resources_report_no_controller_never_healthy(
    example_repo: EnvRepo, kube: KubeClient, cache_dir: Path
) -> None:
    ctx = _ctx(example_repo, kube, cache_dir)
    refs: list[ObjectRef] = []
    for env in ENVS:
        result = run_pass(ctx, _isolated_env(example_repo, env))
        assert result.ok, result.error
        for ref_text, status in result.health.items():
            if ref_text.split("/")[0] in STATUS_KINDS:  # just applied: not judged healthy
                assert status.state is not HealthState.HEALTHY, (ref_text, status)
        refs += [c.ref for c in result.changes.entries]
    tracked = [r for r in refs if r.group in PLATFORM_GROUPS and r.kind in STATUS_KINDS]
    assert {r.kind for r in tracked} == STATUS_KINDS
    clock = [r for r in refs if r.kind == "Deployment" and r.name == "clock-mcp"]
    after = max(load_environment(ROOT / "envs" / f"{env}.yaml").health.no_controller_after for env in ENVS)

    deadline = time.monotonic() + after + 60
    while True:
        health = {
            k: v.state for k, v in assess_health(kube, tracked + clock, no_controller_after=after).items()
        }
        for r in tracked:  # before the deadline "waiting for the controller", afterwards Unverified
            assert health[str(r)] in (HealthState.PROGRESSING, HealthState.UNVERIFIED), (r, health[str(r)])
        crs_done = all(health[str(r)] is HealthState.UNVERIFIED for r in tracked)
        if crs_done and all(health[str(r)] is HealthState.HEALTHY for r in clock):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    late = {str(r): health[str(r)] for r in tracked if health[str(r)] is not HealthState.UNVERIFIED}
    assert not late, f"not Unverified {after} s after creation: {late}"
    # the same reading judges built-in workloads normally (kwok runs their pods)
    assert {health[str(r)] for r in clock} == {HealthState.HEALTHY}


# ---------------------------------------------------------------------------------------------------
# deploy/


def _restricted(kube: KubeClient, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
        ObjectRef(kind="Namespace", name=namespace),
        field_manager="tests",
    )


def _sar(kube: KubeClient, user: str, verb: str, group: str, resource: str, namespace: str = "") -> bool:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": resource,
                "namespace": namespace,
            },
        },
    }
    out: dict[str, Any] = kube.request(
        "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=body
    )
    return bool(out["status"].get("allowed"))


def _pods(kube: KubeClient, namespace: str) -> list[dict[str, Any]]:
    out: dict[str, Any] = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods")
    return list(out["items"])


@pytest.mark.parametrize("flavour", ["kustomize", "helm"])
def test_deploy_applies_with_least_privilege(flavour: str, kube: KubeClient, namespace: str) -> None:
    if flavour == "kustomize":
        objs = render_kustomize_deploy(namespace)
        (ns_obj,) = [o for o in objs if o["kind"] == "Namespace"]
        assert ns_obj["metadata"]["name"] == namespace
        assert ns_obj["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    else:
        objs = helm_template(namespace, namespace)
        for obj in objs:  # as `helm install --namespace` does: namespaced objects go into the release's
            ref = ref_of(obj)
            if kube.resource(ref.group, ref.version, ref.kind).namespaced:
                obj["metadata"].setdefault("namespace", namespace)
        _restricted(kube, namespace)
    cluster_scoped = [ref_of(o) for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    try:
        changes, _ = ResourceManager(kube).apply_set(prepare(objs))
        actions = {str(c.ref): c.action for c in changes.entries}
        assert len(actions) == len(objs)
        assert set(actions.values()) <= {Action.CREATED, Action.CONFIGURED}, actions
        for obj in objs:
            assert kube.get(ref_of(obj)) is not None

        # every pod was admitted under PodSecurity "restricted" (the controllers could create them all)
        wanted = sum(o["spec"]["replicas"] for o in objs if o["kind"] in ("Deployment", "StatefulSet"))
        deadline = time.monotonic() + 60
        while len(_pods(kube, namespace)) < wanted and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(_pods(kube, namespace)) == wanted

        (sa,) = [o for o in objs if o["kind"] == "ServiceAccount" and "automountServiceAccountToken" not in o]
        user = f"system:serviceaccount:{namespace}:{sa['metadata']['name']}"
        # what the daemon must be able to do: everything to every kind of the example environments ...
        kinds = {
            (group_of(o), o["apiVersion"].split("/")[-1], o["kind"]) for env in ENVS for o in render_env(env)
        }
        for group, version, kind in sorted(kinds):
            plural = kube.resource(group, version, kind).plural
            for verb in ("get", "list", "watch", "create", "patch", "delete"):
                assert _sar(kube, user, verb, group, plural, "agents-dev"), f"{verb} {plural}.{group}"
        assert _sar(kube, user, "watch", "apiextensions.k8s.io", "customresourcedefinitions")
        assert _sar(kube, user, "create", "events.k8s.io", "events", "agents-dev")
        assert _sar(kube, user, "update", "coordination.k8s.io", "leases", namespace)
        # ... and what it must not
        assert not _sar(kube, user, "update", "coordination.k8s.io", "leases", "kube-system")
        assert not _sar(kube, user, "create", "rbac.authorization.k8s.io", "clusterrolebindings")
        assert not _sar(kube, user, "delete", "apiextensions.k8s.io", "customresourcedefinitions")
        assert not _sar(kube, user, "create", "", "pods", "agents-dev")
        assert not _sar(kube, user, "create", "", "pods/exec", "agents-dev")
        for other in [o for o in objs if o["kind"] == "ServiceAccount" and o is not sa]:
            nobody = f"system:serviceaccount:{namespace}:{other['metadata']['name']}"
            assert not _sar(kube, nobody, "get", "", "secrets", namespace)
    finally:
        for ref in cluster_scoped:
            kube.delete(ref)


# ---------------------------------------------------------------------------------------------------
# The pull-request workflow against the cluster


def test_workflow_validates_and_diffs_against_the_cluster(
    example_repo: EnvRepo, kubeconfig: Path, tmp_path: Path
) -> None:
    run = run_workflow(
        example_repo.work,
        secrets={"RECONCILER_KUBECONFIG": kubeconfig.read_text()},
        skip_names=("Install reconciler",),
        extra_env={"RECONCILER_CACHE_DIR": str(tmp_path / "cache")},
    )
    for step in run.steps:
        assert step.returncode == 0, f"{step.name}:\n{step.stdout}\n{step.stderr}"
    assert run.outputs["kube"]["available"] == "true"
    assert run.step("Validate").ran and run.step("Diff").ran
    assert run.step("Check the change").ran
    check, _, diffs = run.summary.partition("## What merging this pull request changes")
    assert "### reconciler check: passed" in check and "No environment changes." in check, check
    sections = dict(part.split("\n", 1) for part in diffs.split("### ")[1:])
    assert sorted(sections) == sorted(ENVS)
    for env, text in sections.items():  # each environment's diff names its objects, or says it has none
        assert f"agents-{env}" in text or "no differences" in text, text
