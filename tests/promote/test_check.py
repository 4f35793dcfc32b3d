"""``reconciler check`` (reconciler/promote/check.py): the environments a branch touches, what it adds,
changes and removes, a render failure named by file, and — on the real API server — a dry-run pass that
refuses what the cluster would refuse, with nothing written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from reconciler_testing import EnvRepo
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.cluster.client import KubeClient
from reconciler.model import ObjectRef
from reconciler.promote.check import check_change


def _env(ns: str, name: str) -> str:
    return json.dumps({"overlay": f"overlays/{name}", "namespace": ns})


def _overlay(tag: str, replicas: str = "1") -> dict[str, str]:
    return {
        "kustomization.yaml": "resources: [deployment.yaml]\n"
        f"images:\n- name: ghcr.io/acme/clock\n  newTag: '{tag}'\n",
        "deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: clock}\n"
        f"spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: clock}}}}\n"
        "  template:\n    metadata: {labels: {app: clock}}\n"
        "    spec: {containers: [{name: s, image: ghcr.io/acme/clock:0}]}\n",
    }


def _seed(repo: EnvRepo, ns: str) -> None:
    for env in ("dev", "staging"):
        repo.write(f"envs/{env}.yaml", _env(ns, env))
        for rel, text in _overlay("1.0").items():
            repo.write(f"overlays/{env}/{rel}", text)
    repo.commit("dev and staging at 1.0")


def _branch(repo: EnvRepo, name: str, files: dict[str, str], message: str) -> None:
    git = ["git", "-C", str(repo.work)]
    subprocess.run([*git, "checkout", "-q", "-b", name, "main"], check=True)
    for rel, text in files.items():
        repo.write(rel, text)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", message], check=True)
    subprocess.run([*git, "push", "-q", "origin", name], check=True)
    subprocess.run([*git, "checkout", "-q", "main"], check=True)


def test_only_the_touched_environment_is_checked_and_its_changes_listed(
    env_repo: EnvRepo, tmp_path: Path
) -> None:
    _seed(env_repo, "shop")
    _branch(
        env_repo,
        "promote/staging",
        {"overlays/staging/kustomization.yaml": _overlay("1.1")["kustomization.yaml"]},
        "1.1",
    )
    report = check_change(str(env_repo.remote), "main", "promote/staging", tmp_path / "cache")
    assert [e.environment for e in report.environments] == ["staging"]
    staging = report.environments[0]
    assert staging.ok and staging.changed == ["Deployment/shop/clock"] and staging.dry_run == "skipped"
    assert report.ok and report.summary() == "1 environment: staging ok"
    assert "changed: `Deployment/shop/clock`" in report.markdown()
    result = CliRunner().invoke(
        app,
        ["check", "--repo", str(env_repo.remote), "--head", "promote/staging", "--exit-code", "-o", "json",
         "--cache-dir", str(tmp_path / "cache")],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["environments"][0]["environment"] == "staging"


def test_a_branch_that_breaks_the_render_fails_naming_the_file(env_repo: EnvRepo, tmp_path: Path) -> None:
    _seed(env_repo, "shop")
    broken = {"overlays/staging/kustomization.yaml": "resources: [deployment.yaml, missing.yaml]\n"}
    _branch(env_repo, "broken", broken, "refer to a file that is not there")
    report = check_change(str(env_repo.remote), "main", "broken", tmp_path / "cache")
    assert not report.ok
    (staging,) = report.environments
    assert "missing.yaml" in staging.error
    assert report.summary().startswith("1 environment: staging FAILED (render): ")
    result = CliRunner().invoke(
        app,
        ["check", "--repo", str(env_repo.remote), "--head", "broken", "--cache-dir", str(tmp_path / "cache")],
    )
    assert result.exit_code == 1


def test_with_a_cluster_the_dry_run_refuses_what_the_api_server_would(
    env_repo: EnvRepo, tmp_path: Path, kube: KubeClient, kubeconfig: Path, namespace: str
) -> None:
    _seed(env_repo, namespace)
    # renders fine, but the API server refuses a negative replica count
    bad = {"overlays/staging/deployment.yaml": _overlay("1.0", replicas="-3")["deployment.yaml"]}
    _branch(env_repo, "bad-replicas", bad, "replicas -3")
    report = check_change(str(env_repo.remote), "main", "bad-replicas", tmp_path / "cache", client=kube)
    (staging,) = report.environments
    assert not staging.ok and staging.dry_run == "failed" and "replicas" in staging.error, staging
    assert staging.refused_by == "api-server"
    good = {"overlays/staging/kustomization.yaml": _overlay("1.1")["kustomization.yaml"]}
    _branch(env_repo, "good", good, "1.1")
    report = check_change(str(env_repo.remote), "main", "good", tmp_path / "cache", client=kube)
    assert report.ok and report.environments[0].dry_run == "passed", report
    ref = ObjectRef(group="apps", version="v1", kind="Deployment", namespace=namespace, name="clock")
    assert kube.get(ref) is None, "a check writes nothing"


def test_the_check_says_which_layer_refused_what(
    env_repo: EnvRepo, tmp_path: Path, kube: KubeClient, namespace: str
) -> None:
    """The same branch passes the render and the API server's validation but a ValidatingAdmissionPolicy
    of the cluster refuses it in the dry-run: the check names admission as the layer."""
    import time
    import uuid

    name = f"max-replicas-{uuid.uuid4().hex[:6]}"
    group = "admissionregistration.k8s.io"
    policy = {
        "apiVersion": f"{group}/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                     "resources": ["deployments"]}
                ]
            },
            "validations": [{"expression": "object.spec.replicas <= 5", "message": "at most 5 replicas"}],
        },
    }  # fmt: skip
    binding = {
        "apiVersion": f"{group}/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    refs = [ObjectRef(group=group, version="v1", kind=o["kind"], name=name) for o in (policy, binding)]
    for obj, ref in zip((policy, binding), refs, strict=True):
        kube.apply(obj, ref, field_manager="tests")
    try:
        _seed(env_repo, namespace)
        many = {"overlays/staging/deployment.yaml": _overlay("1.0", replicas="9")["deployment.yaml"]}
        _branch(env_repo, "nine", many, "nine replicas")
        deadline = time.monotonic() + 30  # the API server takes a moment to enforce a new policy
        while True:
            report = check_change(str(env_repo.remote), "main", "nine", tmp_path / "cache", client=kube)
            (staging,) = report.environments
            if not staging.ok or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not staging.ok and staging.refused_by == "admission", staging
        assert "at most 5 replicas" in staging.error
        assert "staging FAILED (admission)" in report.summary()
        assert "> refused by admission: " in report.markdown()
    finally:
        for ref in reversed(refs):
            kube.delete(ref)
