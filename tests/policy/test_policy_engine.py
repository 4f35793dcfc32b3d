"""reconciler.policy on the real OPA (the pinned build), without a cluster: rule discovery and conftest's
conventions, what a denial names, the environment's policy directories, the example repository's own
policies (their `opa test` unit tests, and the example passing them), and bad input failing closed with
file and line."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from reconciler_testing import REPO_ROOT

from reconciler.model import Environment
from reconciler.model.policy import Severity
from reconciler.policy import (
    EngineUnavailable,
    PolicyError,
    PolicyEvaluator,
    ensure_opa,
    evaluate,
    load_policy_set,
)
from reconciler.promote.check_policy import fill_namespaces
from reconciler.render import build

ENVS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def opa() -> Path:
    return ensure_opa()


def _env(name: str = "dev", **policies: Any) -> Environment:
    return Environment.model_validate(
        {"name": name, "overlay": f"overlays/{name}", "namespace": f"agents-{name}", "policies": policies}
    )


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _deployment(name: str, image: str, namespace: str = "agents-dev") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}},
    }


NO_LATEST = """package main

deny contains msg if {
	some c in input.spec.template.spec.containers
	endswith(c.image, ":latest")
	msg := sprintf("container %s uses latest", [c.name])
}
"""


def _check(root: Path, env: Environment, objects: list[dict[str, Any]], opa: Path) -> Any:
    return PolicyEvaluator(opa=opa).check(root, env, objects)


# ---------------------------------------------------------------------------------------------------
# The example repository's policies


def test_shipped_policies_unit_tests_pass(opa: Path) -> None:
    proc = subprocess.run(
        [str(opa), "test", "policies", "-v"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = proc.stdout.count(": PASS")
    assert passed >= 40, proc.stdout[-2000:]
    for policy in ("images", "resources", "tools", "network", "models", "secrets"):  # each has its test
        assert (REPO_ROOT / "policies" / f"{policy}_test.rego").is_file()
        assert f"data.policies.{policy}_test." in proc.stdout


def test_shipped_policies_are_formatted(opa: Path) -> None:
    proc = subprocess.run(
        [str(opa), "fmt", "--list", "policies"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def _example(env_name: str) -> list[dict[str, Any]]:
    """The example's rendered objects of ``env_name``, namespaces filled in as a pass fills them."""
    objects = build(REPO_ROOT / "overlays" / env_name, root=REPO_ROOT)
    fill_namespaces(objects, _env(env_name), None)
    return objects


@pytest.mark.parametrize("env_name", ENVS)
def test_the_example_passes_its_own_policies(env_name: str, opa: Path) -> None:
    objects = _example(env_name)
    report = _check(REPO_ROOT, _env(env_name), objects, opa)
    assert report is not None
    assert report.denials == [], report.summary()
    assert report.directories == ["policies"] and "policies/images.rego" in report.files
    assert not any(f.endswith("_test.rego") for f in report.files)
    # the reference server is reached directly: allowed by the environment's data, and warned about
    warned = {(f.rule_id, f.object) for f in report.warnings}
    assert warned == {("policies.network.warn_mcp_direct_access", f"Deployment/agents-{env_name}/everything")}


def _named(obj: dict[str, Any], kind: str, name: str) -> bool:
    return bool(obj["kind"] == kind and obj["metadata"]["name"] == name)


def _clock_image(image: str) -> Any:
    def mutate(o: dict[str, Any]) -> bool:
        if not _named(o, "Deployment", "clock-mcp"):
            return False
        o["spec"]["template"]["spec"]["containers"][0]["image"] = image
        return True

    return mutate


def _plaintext(o: dict[str, Any]) -> bool:
    if not _named(o, "Secret", "openai-key"):
        return False
    o["stringData"] = {"OPENAI_API_KEY": "sk-live"}
    return True


def _model(o: dict[str, Any]) -> bool:
    if o["kind"] != "ModelConfig":
        return False
    o["spec"]["model"] = "gpt-9-huge"
    return True


def _grant(o: dict[str, Any]) -> bool:
    if not _named(o, "Agent", "helpdesk"):
        return False
    o["spec"]["declarative"]["tools"][1]["mcpServer"]["toolNames"].append("printEnv")
    return True


def _no_limits(o: dict[str, Any]) -> bool:
    if o["kind"] != "MCPServer":
        return False
    del o["spec"]["deployment"]["resources"]["limits"]
    return True


def _open_ingress(o: dict[str, Any]) -> bool:
    if not _named(o, "NetworkPolicy", "clock-mcp"):
        return False
    o["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}})
    return True


@pytest.mark.parametrize(
    ("env_name", "mutate", "rule"),
    [
        ("prod", _clock_image("ghcr.io/acme/clock-mcp:0.1.0"), "deny_unpinned_image"),
        ("dev", _clock_image("ghcr.io/acme/clock-mcp:latest"), "deny_latest_tag"),
        ("dev", _plaintext, "deny_plaintext_secret"),
        ("prod", _model, "deny_model"),
        ("staging", _grant, "deny_tool_grant"),
        ("dev", _no_limits, "deny_missing_limits"),
        ("prod", _open_ingress, "deny_mcp_direct_access"),
    ],
)
def test_the_shipped_policies_refuse_what_they_say(env_name: str, mutate: Any, rule: str, opa: Path) -> None:
    objects = _example(env_name)
    assert sum(1 for o in objects if mutate(o)) == 1
    report = _check(REPO_ROOT, _env(env_name), objects, opa)
    assert report is not None and {f.rule for f in report.denials} == {rule}, report.summary()


# ---------------------------------------------------------------------------------------------------
# Rules, messages, namespaces


def test_a_denial_names_file_line_rule_object_and_text(tmp_path: Path, opa: Path) -> None:
    root = _write(tmp_path, {"policies/images.rego": NO_LATEST})
    objects = [_deployment("web", "nginx:latest"), _deployment("api", "nginx:1.27")]
    report = _check(root, _env(), objects, opa)
    assert report is not None and not report.ok
    [finding] = report.denials
    assert finding.file == "policies/images.rego" and finding.line == 3
    assert finding.package == "main" and finding.rule == "deny"
    assert finding.object == "Deployment/agents-dev/web"
    assert finding.message == "container main uses latest"
    assert (
        str(finding)
        == "policies/images.rego:3: main.deny: Deployment/agents-dev/web: container main uses latest"
    )
    assert report.summary().startswith(
        "policy denied 1: policies/images.rego:3: main.deny: Deployment/agents-dev/web"
    )


def test_every_package_and_conftest_rule_names(tmp_path: Path, opa: Path) -> None:
    root = _write(
        tmp_path,
        {
            "policies/a.rego": (
                "package team.a\n\n"
                'violation_replicas contains {"msg": "too many replicas", "max": 3} if {\n'
                "\tinput.spec.replicas > 3\n"
                "}\n\n"
                'warn contains "no team label" if not input.metadata.labels.team\n\n'
                'helper_deny := "not a rule"\n'
            ),
            "policies/b/b.rego": (
                "package team.b\n\n"
                "deny_name_too_long contains msg if {\n"
                "\tcount(input.metadata.name) > 5\n"
                '\tmsg := "name too long"\n'
                "}\n\n"
                "denyish contains 1 if true\n"
            ),
            "policies/b/b_test.rego": 'package team.b\n\ndeny contains "from a test file" if true\n',
        },
    )
    obj = _deployment("toolong", "nginx:1")
    obj["spec"]["replicas"] = 5
    report = _check(root, _env(), [obj], opa)
    assert report is not None
    got = {(f.severity, f.rule_id, f.message) for f in report.findings}
    assert got == {
        (Severity.DENY, "team.a.violation_replicas", "too many replicas"),
        (Severity.WARN, "team.a.warn", "no team label"),
        (Severity.DENY, "team.b.deny_name_too_long", "name too long"),
    }
    [detailed] = [f for f in report.findings if f.rule == "violation_replicas"]
    assert detailed.details == {"max": 3}
    assert report.files == ["policies/a.rego", "policies/b/b.rego"]  # *_test.rego is not evaluated


def test_conftest_exceptions_excuse_an_object(tmp_path: Path, opa: Path) -> None:
    policy = NO_LATEST.replace("deny contains", "deny_latest contains") + (
        '\nexception contains rules if {\n\tinput.metadata.name == "legacy"\n\trules := ["latest"]\n}\n'
    )
    root = _write(tmp_path, {"policies/p.rego": policy})
    report = _check(root, _env(), [_deployment("legacy", "x:latest"), _deployment("web", "x:latest")], opa)
    assert report is not None
    assert [(f.severity, f.object) for f in report.findings] == [
        (Severity.DENY, "Deployment/agents-dev/web"),
        (Severity.EXCEPTION, "Deployment/agents-dev/legacy"),
    ]


def test_the_environment_and_every_object_are_in_data(tmp_path: Path, opa: Path) -> None:
    policy = (
        "package main\n\n"
        "deny contains msg if {\n"
        '\tinput.kind == "Deployment"\n'
        "\tsvc := data.reconciler.inventory.namespace[input.metadata.namespace].v1.Service\n"
        "\tnot svc[input.metadata.name]\n"
        '\tmsg := sprintf("%s has no Service in %s (%d objects, namespace %s)", '
        "[input.metadata.name, data.reconciler.environment, count(data.reconciler.objects), "
        "data.reconciler.namespace])\n"
        "}\n"
    )
    root = _write(tmp_path, {"policies/p.rego": policy})
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "agents-prod"}}
    objects = [_deployment("web", "x:1", "agents-prod"), _deployment("api", "x:1", "agents-prod"), service]
    report = _check(root, _env("prod"), objects, opa)
    assert report is not None
    assert [f.message for f in report.denials] == [
        "api has no Service in prod (3 objects, namespace agents-prod)"
    ]


def test_paths_add_and_replace(tmp_path: Path, opa: Path) -> None:
    root = _write(
        tmp_path,
        {
            "policies/p.rego": NO_LATEST,
            "policies-prod/p.rego": (
                'package prod\n\ndeny contains "prod says no" if {\n\tinput.kind == "Deployment"\n}\n'
            ),
        },
    )
    objects = [_deployment("web", "nginx:latest")]
    added = _check(root, _env(paths=["policies-prod"]), objects, opa)
    assert added is not None and {f.rule_id for f in added.denials} == {"main.deny", "prod.deny"}
    replaced = _check(root, _env(paths=["policies-prod"], replace=True), objects, opa)
    assert replaced is not None and {f.rule_id for f in replaced.denials} == {"prod.deny"}
    assert replaced.directories == ["policies-prod"]
    assert _check(root, _env(replace=True), objects, opa) is None  # policies off
    assert _check(tmp_path / "policies-prod", _env(), objects, opa) is None  # no policies/ at all
    with pytest.raises(PolicyError, match=r"envs/dev.yaml: policies.paths: 'missing' is not a directory"):
        _check(root, _env(paths=["missing"]), objects, opa)


def test_policy_paths_must_stay_in_the_repository() -> None:
    for bad in ("/etc", "../other", " "):
        with pytest.raises(ValueError, match="inside the repository"):
            _env(paths=[bad])


def test_a_symlink_out_of_the_repository_is_refused(tmp_path: Path, opa: Path) -> None:
    outside = _write(tmp_path / "outside", {"secret.yaml": "token: hunter2\n"})
    root = _write(tmp_path / "repo", {"policies/p.rego": NO_LATEST})
    (root / "policies" / "leak.yaml").symlink_to(outside / "secret.yaml")
    with pytest.raises(PolicyError, match=r"policies/leak.yaml: the policy file lies outside the repository"):
        _check(root, _env(), [_deployment("web", "x:1")], opa)
    (root / "policies" / "leak.yaml").unlink()
    (root / "policies" / "more").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PolicyError, match=r"policies/more: the policy file lies outside the repository"):
        _check(root, _env(), [_deployment("web", "x:1")], opa)


def test_data_reconciler_is_reserved(tmp_path: Path, opa: Path) -> None:
    root = _write(
        tmp_path, {"policies/p.rego": NO_LATEST, "policies/reconciler/data.yaml": "environment: prod\n"}
    )
    with pytest.raises(PolicyError, match=r"policies/reconciler/data.yaml: data.reconciler is reserved"):
        _check(root, _env(), [_deployment("web", "x:1")], opa)


def test_without_an_engine_nothing_is_judged_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _write(tmp_path, {"policies/p.rego": NO_LATEST})
    monkeypatch.setenv("RECONCILER_OPA", str(tmp_path / "no-such-opa"))
    with pytest.raises(EngineUnavailable, match="no-such-opa is not an executable file"):
        PolicyEvaluator().check(root, _env(), [_deployment("web", "x:1")])


def test_results_are_cached_by_content(tmp_path: Path, opa: Path) -> None:
    root = _write(tmp_path, {"policies/p.rego": NO_LATEST})
    evaluator = PolicyEvaluator(opa=opa)
    objects = [_deployment("web", "nginx:latest")]
    first = evaluator.check(root, _env(), objects)
    again = evaluator.check(root, _env(), [_deployment("web", "nginx:latest")])
    assert first is not None and again is not None and again.cached and again.findings == first.findings
    assert (evaluator.evaluations, evaluator.hits) == (1, 1)
    _write(root, {"policies/p.rego": NO_LATEST.replace("uses latest", "is on latest")})
    changed = evaluator.check(root, _env(), objects)
    assert changed is not None and not changed.cached and changed.denials[0].message.endswith("is on latest")
    assert evaluator.evaluations == 2


# ---------------------------------------------------------------------------------------------------
# Bad input: the error names file and line; nothing is judged passed


def test_a_rego_syntax_error_names_file_and_line(tmp_path: Path, opa: Path) -> None:
    root = _write(
        tmp_path,
        {
            "policies/ok.rego": NO_LATEST,
            "policies/broken.rego": "package x\n\ndeny contains msg if {\n\tinput.kind ==\n}\n",
        },
    )
    with pytest.raises(PolicyError, match=r"policies/broken.rego:5: rego_parse_error: unexpected } token"):
        _check(root, _env(), [_deployment("web", "x:1")], opa)


def test_a_compile_error_names_file_and_line(tmp_path: Path, opa: Path) -> None:
    root = _write(
        tmp_path,
        {"policies/p.rego": "package x\n\ndeny contains msg if {\n\tmsg := undefined_fn(input)\n}\n"},
    )
    with pytest.raises(
        PolicyError, match=r"policies/p.rego:4: rego_type_error: undefined function undefined_fn"
    ):
        _check(root, _env(), [_deployment("web", "x:1")], opa)


def test_policies_cannot_reach_the_network_or_the_environment(tmp_path: Path, opa: Path) -> None:
    for i, call in enumerate(('http.send({"method": "get", "url": "http://127.0.0.1:1"})', "opa.runtime()")):
        root = _write(
            tmp_path / str(i),
            {"policies/p.rego": f"package x\n\ndeny contains msg if {{\n\tmsg := {call}\n}}\n"},
        )
        with pytest.raises(PolicyError, match=r"policies/p.rego:4: rego_type_error: undefined function"):
            _check(root, _env(), [_deployment("web", "x:1")], opa)


def test_a_policy_that_runs_too_long_is_stopped(tmp_path: Path, opa: Path) -> None:
    slow = (
        "package x\n\n"
        "deny contains msg if {\n"
        "\tsome i in numbers.range(1, 100000000)\n"
        "\tsome j in numbers.range(1, 100000000)\n"
        "\ti == j + 1000000000\n"
        '\tmsg := "never"\n'
        "}\n"
    )
    root = _write(tmp_path, {"policies/slow.rego": slow})
    started = time.monotonic()
    with pytest.raises(
        PolicyError, match=r"policies/slow.rego:4: eval_cancel_error: evaluation stopped at 1 s"
    ):
        _check(root, _env(timeout=1), [_deployment("web", "x:1")], opa)
    assert time.monotonic() - started < 15  # OPA's deadline, or the kill a few seconds after it


def test_an_input_the_rule_does_not_expect_names_file_line_and_object(tmp_path: Path, opa: Path) -> None:
    policy = (
        "package main\n\n"
        "deny contains msg if {\n"
        '\tinput.kind == "Deployment"\n'
        '\tparts := split(input.spec.template.metadata.annotations.owner, "@")\n'
        '\tparts[1] != "acme.dev"\n'
        '\tmsg := "owner outside acme.dev"\n'
        "}\n"
    )
    root = _write(tmp_path, {"policies/owner.rego": policy})
    objects = [_deployment(f"app-{i}", "x:1") for i in range(40)]
    for i, o in enumerate(objects):
        o["spec"]["template"]["metadata"] = {"annotations": {"owner": f"team{i}@acme.dev"}}
    objects[27]["spec"]["template"]["metadata"]["annotations"]["owner"] = 42  # not a string
    with pytest.raises(PolicyError) as caught:
        _check(root, _env(), objects, opa)
    text = str(caught.value)
    assert "policies/owner.rego:5: eval_type_error: split: operand 1 must be string but got number" in text
    assert "(evaluating Deployment/agents-dev/app-27)" in text


def test_a_yaml_data_file_that_does_not_parse_is_named(tmp_path: Path, opa: Path) -> None:
    root = _write(tmp_path, {"policies/p.rego": NO_LATEST, "policies/environments/dev/data.yaml": "a: [\n"})
    with pytest.raises(PolicyError, match=r"policies/environments/dev/data.yaml"):
        _check(root, _env(), [_deployment("web", "x:1")], opa)


def test_load_policy_set_finds_heads_without_false_negatives(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "policies/p.rego": (
                "# deny contains in a comment\n"
                "package p.q\n\n"
                "import rego.v1\n\n"
                "default warn_x := false\n\n"
                "  deny_indented contains 1 if true\n"
                "violation[msg] if { msg := 1 }\n"
                "deny_ := 1\n"
            )
        },
    )
    ps = load_policy_set(root, _env())
    assert ps is not None
    assert set(ps.rules["p.q"]) == {"warn_x", "deny_indented", "violation"}
    assert [(s.file, s.line, s.indented) for s in ps.rules["p.q"]["deny_indented"]] == [
        ("policies/p.rego", 8, True)
    ]


def test_a_body_line_that_looks_like_a_head_does_not_hide_the_rules_line(tmp_path: Path, opa: Path) -> None:
    policy = (
        "package main\n\n"
        "warn contains msg if {\n"
        '\tinput.kind == "Deployment"\n'
        '\tmsg := sprintf("%s has no owner", [input.metadata.name])\n'
        "}\n\n"
        "quiet if {\n"
        "\twarn == set()\n"  # a body line that starts like a head of warn
        "}\n"
    )
    root = _write(tmp_path, {"policies/p.rego": policy})
    report = _check(root, _env(), [_deployment("web", "x:1")], opa)
    assert report is not None
    [finding] = report.warnings
    assert (finding.rule, finding.line, finding.message) == ("warn", 3, "web has no owner")


def test_evaluate_without_rules_or_objects_is_empty(tmp_path: Path, opa: Path) -> None:
    root = _write(tmp_path, {"policies/lib.rego": "package lib\n\nhelper(x) := x\n"})
    ps = load_policy_set(root, _env())
    assert ps is not None and ps.empty
    assert evaluate(ps, [_deployment("web", "x:1")], environment="dev", opa=opa).findings == []
