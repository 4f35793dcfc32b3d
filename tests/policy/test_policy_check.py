"""``reconciler check`` with policies: the head of each touched environment is judged by its policies (a deny
fails the check, warnings are listed), policies that cannot be evaluated fail it, and the report comes as
text, JSON, JUnit XML and SARIF 2.1.0 with the exit codes of the command (0 clean, 1 violations, 3 changes
with --exit-code). The last test adds the cluster: denied heads get no dry-run, clean ones do."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from reconciler_testing import EnvRepo
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.cluster.client import KubeClient
from reconciler.model import ObjectRef
from reconciler.promote.check import check_change
from reconciler.promote.check_formats import junit, sarif

POLICY = """\
package images

deny_latest contains msg if {
	some c in input.spec.template.spec.containers
	endswith(c.image, ":latest")
	msg := sprintf("%s runs a moving tag", [c.name])
}

warn_single_replica contains "one replica: no redundancy" if {
	input.kind == "Deployment"
	input.spec.replicas == 1
}
"""


def _overlay(image: str, replicas: int = 2) -> dict[str, str]:
    return {
        "kustomization.yaml": "resources: [deployment.yaml]\n",
        "deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: clock}\n"
        f"spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: clock}}}}\n"
        "  template:\n    metadata: {labels: {app: clock}}\n"
        f"    spec: {{containers: [{{name: s, image: '{image}'}}]}}\n",
    }


def _seed(repo: EnvRepo, ns: str) -> None:
    for env in ("dev", "staging"):
        repo.write(f"envs/{env}.yaml", json.dumps({"overlay": f"overlays/{env}", "namespace": ns}))
        for rel, text in _overlay("ghcr.io/acme/clock:1.0").items():
            repo.write(f"overlays/{env}/{rel}", text)
    repo.write("policies/images.rego", POLICY)
    repo.commit("dev and staging at 1.0, with policies")


def _branch(repo: EnvRepo, name: str, files: dict[str, str]) -> None:
    git = ["git", "-C", str(repo.work)]
    subprocess.run([*git, "checkout", "-q", "-b", name, "main"], check=True)
    for rel, text in files.items():
        repo.write(rel, text)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", name], check=True)
    subprocess.run([*git, "push", "-q", "origin", name], check=True)
    subprocess.run([*git, "checkout", "-q", "main"], check=True)


def _cli(repo: EnvRepo, head: str, cache: Path, *extra: str) -> Any:
    argv = ["check", "--repo", str(repo.remote), "--head", head, "--cache-dir", str(cache), *extra]
    return CliRunner().invoke(app, argv)


def test_a_policy_denial_fails_the_check_in_every_format(env_repo: EnvRepo, tmp_path: Path) -> None:
    _seed(env_repo, "shop")
    latest = _overlay("ghcr.io/acme/clock:latest", replicas=1)["deployment.yaml"]
    _branch(env_repo, "latest", {"overlays/staging/deployment.yaml": latest})
    report = check_change(str(env_repo.remote), "main", "latest", tmp_path / "cache")
    (staging,) = report.environments
    assert not report.ok and staging.policies == "denied" and staging.dry_run == "skipped"
    assert [(f.rule_id, f.object, f.message) for f in staging.denials] == [
        ("images.deny_latest", "Deployment/shop/clock", "s runs a moving tag")
    ]
    assert [f.rule for f in staging.warnings] == ["warn_single_replica"]
    assert staging.error.startswith("policy denied 1: policies/images.rego:3: images.deny_latest: ")
    md = report.markdown()
    assert "**staging**: FAILED (policies: denied, dry-run: skipped)" in md
    assert (
        "- policy deny: `images.deny_latest` `Deployment/shop/clock`: s runs a moving tag "
        "(policies/images.rego:3)" in md
    )
    assert "- policy warn: `images.warn_single_replica`" in md

    text = _cli(env_repo, "latest", tmp_path / "cache")
    assert text.exit_code == 1 and "images.deny_latest" in text.output

    as_junit = _cli(env_repo, "latest", tmp_path / "cache", "-o", "junit")
    assert as_junit.exit_code == 1
    suites = ET.fromstring(as_junit.stdout)
    assert suites.tag == "testsuites" and suites.get("failures") == "1"
    (suite,) = suites.findall("testsuite")
    assert suite.get("name") == "staging"
    cases = {(c.get("classname"), c.get("name")): c for c in suite.findall("testcase")}
    failed = cases[("staging.images", "deny_latest Deployment/shop/clock")].find("failure")
    assert failed is not None and failed.text == "s runs a moving tag (policies/images.rego:3)"
    warned = cases[("staging.images", "warn_single_replica Deployment/shop/clock")]
    assert warned.find("failure") is None and "warning: one replica" in (warned.findtext("system-out") or "")
    assert cases[("staging", "render")].find("failure") is None
    assert cases[("staging", "dry-run")].find("skipped") is not None
    assert int(suite.get("tests") or 0) == len(cases)

    as_sarif = _cli(env_repo, "latest", tmp_path / "cache", "-o", "sarif")
    assert as_sarif.exit_code == 1
    log = json.loads(as_sarif.stdout)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["images.deny_latest", "images.warn_single_replica"]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    deny = by_rule["images.deny_latest"]
    assert deny["level"] == "error" and deny["ruleIndex"] == 0
    assert deny["message"]["text"] == "Deployment/shop/clock: s runs a moving tag"
    (location,) = deny["locations"]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "envs/staging.yaml"
    assert location["logicalLocations"] == [
        {"fullyQualifiedName": "staging/Deployment/shop/clock", "name": "clock", "kind": "resource"}
    ]
    related = deny["relatedLocations"][0]["physicalLocation"]
    assert related == {"artifactLocation": {"uri": "policies/images.rego"}, "region": {"startLine": 3}}
    assert by_rule["images.warn_single_replica"]["level"] == "warning"
    assert run["properties"]["ok"] is False


def test_warnings_alone_pass_and_exit_3_with_changes(env_repo: EnvRepo, tmp_path: Path) -> None:
    _seed(env_repo, "shop")
    _branch(
        env_repo,
        "one",
        {"overlays/dev/deployment.yaml": _overlay("ghcr.io/acme/clock:1.1", 1)["deployment.yaml"]},
    )
    report = check_change(str(env_repo.remote), "main", "one", tmp_path / "cache")
    (dev,) = report.environments
    assert (
        report.ok and dev.policies == "passed" and [f.rule for f in dev.warnings] == ["warn_single_replica"]
    )
    assert _cli(env_repo, "one", tmp_path / "cache").exit_code == 0
    assert _cli(env_repo, "one", tmp_path / "cache", "--exit-code", "-o", "sarif").exit_code == 3
    log = sarif(report)
    assert [r["level"] for r in log["runs"][0]["results"]] == ["warning"]
    assert ET.fromstring(junit(report)).get("failures") == "0"


def test_policies_that_cannot_be_evaluated_fail_the_check(env_repo: EnvRepo, tmp_path: Path) -> None:
    _seed(env_repo, "shop")
    broken = POLICY.replace("endswith(c.image", "endswith(c.image,,")
    _branch(
        env_repo,
        "broken-policy",
        {"policies/images.rego": broken, "overlays/dev/deployment.yaml": _overlay("x:2")["deployment.yaml"]},
    )
    report = check_change(str(env_repo.remote), "main", "broken-policy", tmp_path / "cache")
    (dev,) = report.environments  # staging renders what it rendered: only dev is touched
    assert not report.ok and dev.policies == "failed"
    assert dev.error.startswith("policy evaluation failed: policies/images.rego:5: rego_parse_error"), (
        dev.error
    )
    cases = {c.get("name"): c for c in ET.fromstring(junit(report)).iter("testcase")}
    assert cases["policies"].find("failure") is not None and cases["render"].find("failure") is None
    (result,) = sarif(report)["runs"][0]["results"]
    assert result["ruleId"] == "reconciler.policy" and result["level"] == "error"
    assert _cli(env_repo, "broken-policy", tmp_path / "cache", "-o", "junit").exit_code == 1


def test_a_render_failure_is_the_render_stage(env_repo: EnvRepo, tmp_path: Path) -> None:
    _seed(env_repo, "shop")
    _branch(
        env_repo, "missing", {"overlays/dev/kustomization.yaml": "resources: [deployment.yaml, gone.yaml]\n"}
    )
    report = check_change(str(env_repo.remote), "main", "missing", tmp_path / "cache")
    (dev,) = report.environments
    assert dev.policies == "skipped" and "gone.yaml" in dev.error
    cases = {c.get("name"): c for c in ET.fromstring(junit(report)).iter("testcase")}
    assert cases["render"].find("failure") is not None and cases["policies"].find("skipped") is not None
    assert sarif(report)["runs"][0]["results"][0]["ruleId"] == "reconciler.render"


def test_bad_output_is_a_usage_error(env_repo: EnvRepo, tmp_path: Path) -> None:
    _seed(env_repo, "shop")
    assert _cli(env_repo, "main", tmp_path / "cache", "-o", "xml").exit_code == 2


@pytest.mark.integration
def test_with_a_cluster_a_denied_head_gets_no_dry_run_and_a_clean_one_does(
    env_repo: EnvRepo, tmp_path: Path, kube: KubeClient, namespace: str
) -> None:
    _seed(env_repo, namespace)
    _branch(env_repo, "latest", {"overlays/staging/deployment.yaml": _overlay("x:latest")["deployment.yaml"]})
    _branch(env_repo, "fine", {"overlays/staging/deployment.yaml": _overlay("x:1.2")["deployment.yaml"]})
    denied = check_change(str(env_repo.remote), "main", "latest", tmp_path / "cache", client=kube)
    assert [(e.policies, e.dry_run) for e in denied.environments] == [("denied", "skipped")]
    fine = check_change(str(env_repo.remote), "main", "fine", tmp_path / "cache", client=kube)
    assert fine.ok and [(e.policies, e.dry_run) for e in fine.environments] == [("passed", "passed")], fine
    ref = ObjectRef(group="apps", version="v1", kind="Deployment", namespace=namespace, name="clock")
    assert kube.get(ref) is None, "a check writes nothing"
