"""deploy/ without a cluster: the kustomize base and the Helm chart render, agree with each other and
with the real tools, and configure the daemon, the webhook receivers and NATS the way their command
lines and config files expect; the GitHub Actions workflow for environment repositories is well formed
and its render steps run locally."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
from _platform_support import (
    CHART,
    DEPLOY,
    ENVS,
    ROOT,
    SKIPPED_USES,
    by_kind,
    configmap_file,
    helm_binary,
    helm_template,
    kustomize_binary,
    load_workflow,
    one,
    parse_stream,
    render_kustomize_deploy,
    run_tool,
    run_workflow,
)

from reconciler.cli import app
from reconciler.cluster.quantity import parse_quantity
from reconciler.render import dump_yaml
from reconciler.source.bootstrap import init_repo_with_remote
from webhooks.config import load_settings

Objs = list[dict[str, Any]]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
VAR = re.compile(r"\$\(([A-Z_][A-Z0-9_]*)\)")


@pytest.fixture(scope="module")
def renderings() -> dict[str, Objs]:
    return {
        "kustomize": render_kustomize_deploy(),
        "helm": helm_template("reconciler", "reconciler-system"),
    }


def _component(objs: Objs, kind: str, component: str) -> dict[str, Any]:
    found = [
        o
        for o in objs
        if o["kind"] == kind and o["spec"]["template"]["metadata"]["labels"].get(_COMPONENT_KEY) == component
    ]
    assert len(found) == 1, (
        f"expected one {kind} for {component}, found {[o['metadata']['name'] for o in found]}"
    )
    return found[0]


_COMPONENT_KEY = "app.kubernetes.io/component"


def test_kustomize_base_renders_byte_identical_to_kustomize() -> None:
    for target in (DEPLOY / "kustomize", DEPLOY / "examples" / "ingress"):
        reference = run_tool([kustomize_binary(), "build", target])
        example = target.name if target.parent.name == "examples" else None
        assert dump_yaml(render_kustomize_deploy(example=example)) == reference, target


def test_kustomize_base_and_helm_chart_render_the_same_objects() -> None:
    """One source: deploy/kustomize is generated from the chart (tools/deploy/generate_kustomize.py), so
    `kustomize build` of the base and `helm template` of the chart with its defaults give the same objects.
    Compared as parsed objects sorted by kind, namespace and name (the two tools order the stream
    differently); the base's Namespace object is left out (helm does not create its release namespace)."""

    def key(o: dict[str, Any]) -> tuple[str, str, str]:
        return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])

    base = parse_stream(run_tool([kustomize_binary(), "build", DEPLOY / "kustomize"]), "kustomize build")
    chart = helm_template("reconciler", "reconciler-system")
    assert [o["kind"] for o in base].count("Namespace") == 1
    assert sorted((o for o in base if o["kind"] != "Namespace"), key=key) == sorted(chart, key=key)


def test_kustomize_base_is_generated_from_the_chart() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "deploy" / "generate_kustomize.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (
        "deploy/kustomize is out of date with the chart; run tools/deploy/generate_kustomize.py:\n"
        + proc.stderr
    )


def test_helm_chart_lints_and_its_options_render() -> None:
    run_tool([helm_binary(), "lint", "--strict", CHART])
    with_ingress = helm_template(
        "hooks", "ops", "webhooks.ingress.enabled=true", "webhooks.ingress.tlsSecretName=t"
    )
    (ingress,) = by_kind(with_ingress, "Ingress").values()
    assert ingress["spec"]["tls"][0]["secretName"] == "t"
    external = helm_template(
        "ext", "ops", "nats.enabled=false", "nats.url=nats://bus.example:4222", "webhooks.enabled=false"
    )
    kinds = {o["kind"] for o in external}
    assert "StatefulSet" not in kinds and "Ingress" not in kinds
    assert [o["metadata"]["name"] for o in by_kind(external, "Deployment").values()] == ["ext-reconciler"]
    assert one(external, "ConfigMap", "ext-reconciler")["data"]["NATS_URL"] == "nats://bus.example:4222"
    no_persistence = helm_template("np", "ops", "nats.persistence.enabled=false")
    nats = one(no_persistence, "StatefulSet", "np-reconciler-nats")
    assert "volumeClaimTemplates" not in nats["spec"]
    assert any(v["name"] == "data" and "emptyDir" in v for v in nats["spec"]["template"]["spec"]["volumes"])
    pinned = helm_template("pin", "ops", "image.digest=sha256:" + "a" * 64)
    assert {
        c["image"]
        for d in by_kind(pinned, "Deployment").values()
        for c in d["spec"]["template"]["spec"]["containers"]
    } == {"ghcr.io/reconciler-dev/reconciler@sha256:" + "a" * 64}


def test_helm_refuses_external_nats_without_url() -> None:
    import subprocess

    proc = subprocess.run(
        [str(helm_binary()), "template", "x", str(CHART), "--set", "nats.enabled=false"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "nats.url is required" in proc.stderr


@pytest.mark.parametrize("flavour", ["kustomize", "helm"])
def test_daemon_webhooks_and_nats_are_wired(flavour: str, renderings: dict[str, Objs]) -> None:
    objs = renderings[flavour]
    daemon = _component(objs, "Deployment", "daemon")
    webhooks = _component(objs, "Deployment", "webhooks")
    nats = _component(objs, "StatefulSet", "nats")
    services = by_kind(objs, "Service")

    (d,) = daemon["spec"]["template"]["spec"]["containers"]
    assert d["image"] == f"ghcr.io/reconciler-dev/reconciler:{VERSION}"
    assert d["command"] == ["reconciler"] and d["args"][0] == "run"
    flags = {a.split("=", 1)[0] for a in d["args"][1:]}
    assert {"--repo", "--branch", "--nats", "--shard", "--replica-id", "--http"} <= flags
    assert daemon["spec"]["replicas"] == 3  # sharded: the environments spread over three replicas
    _check_env_references(objs, d)
    _check_probes(d)

    (w,) = webhooks["spec"]["template"]["spec"]["containers"]
    assert w["args"][:2] == ["webhooks", "serve"]
    config_path = next(a.split("=", 1)[1] for a in w["args"] if a.startswith("--config="))
    mount = next(m for m in w["volumeMounts"] if config_path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in webhooks["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    config_map = one(objs, "ConfigMap", volume["configMap"]["name"])
    assert Path(config_path).name in config_map["data"]
    port = int(next(a.split("=", 1)[1] for a in w["args"] if a.startswith("--port=")))
    assert port in {p["containerPort"] for p in w["ports"]}
    _check_env_references(objs, w)
    _check_probes(w)
    hook_services = [s for s in services.values() if _selects(s["spec"]["selector"], webhooks)]
    assert len(hook_services) == 1 and hook_services[0]["spec"]["ports"][0]["targetPort"] == "http"

    (n,) = nats["spec"]["template"]["spec"]["containers"]
    assert n["image"] == "nats:2.10-alpine" and "-js" in n["args"]
    nats_services = [s for s in services.values() if _selects(s["spec"]["selector"], nats)]
    client = [s for s in nats_services if s["spec"].get("clusterIP") != "None"]
    assert len(client) == 1 and nats["spec"]["serviceName"] in {s["metadata"]["name"] for s in nats_services}
    nats_url = _config_value(objs, d, "NATS_URL")
    assert nats_url == f"nats://{client[0]['metadata']['name']}:4222"
    assert "jetstream" in one(objs, "ConfigMap", _config_map_volume(nats))["data"]["nats.conf"]


def _expanded_args(objs: Objs, container: dict[str, Any]) -> list[str]:
    """The container's arguments with $(VAR) replaced as the kubelet does (ConfigMap values, literals, and
    a stand-in for fieldRef values)."""
    values: dict[str, str] = {}
    for e in container.get("env", []):
        source = e.get("valueFrom") or {}
        if "configMapKeyRef" in source:
            values[e["name"]] = _config_value(objs, container, e["name"])
        elif "fieldRef" in source:
            values[e["name"]] = "from-field"
        else:
            values[e["name"]] = str(e.get("value", ""))
    return [VAR.sub(lambda m: values[m.group(1)], a) for a in container["args"]]


@pytest.mark.parametrize("flavour", ["kustomize", "helm"])
def test_command_lines_parse_with_the_cli(flavour: str, renderings: dict[str, Objs]) -> None:
    """The daemon's and the receivers' arguments are valid for this version's command line (unknown
    options or malformed values raise a usage error)."""
    objs = renderings[flavour]
    cli = typer.main.get_command(app)
    assert isinstance(cli, typer.core.TyperGroup)
    (d,) = _component(objs, "Deployment", "daemon")["spec"]["template"]["spec"]["containers"]
    argv = _expanded_args(objs, d)
    assert argv[0] == "run"
    params = cli.commands["run"].make_context("run", argv[1:]).params
    assert params["shard"] is True and params["replica_id"] == "from-field"
    assert not params["leader_elect"]
    assert params["nats"] == _config_value(objs, d, "NATS_URL") and params["http"].endswith(":9090")
    (w,) = _component(objs, "Deployment", "webhooks")["spec"]["template"]["spec"]["containers"]
    argv = _expanded_args(objs, w)
    webhooks = cli.commands["webhooks"]
    assert argv[0] == "webhooks" and isinstance(webhooks, typer.core.TyperGroup)
    params = webhooks.commands[argv[1]].make_context(argv[1], argv[2:]).params
    assert params["host"] == "0.0.0.0" and params["nats"].startswith("nats://")


def _selects(selector: dict[str, str], workload: dict[str, Any]) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items())


def _config_map_volume(workload: dict[str, Any]) -> str:
    (cm,) = [
        v["configMap"]["name"] for v in workload["spec"]["template"]["spec"]["volumes"] if "configMap" in v
    ]
    return str(cm)


def _config_value(objs: Objs, container: dict[str, Any], var: str) -> str:
    entry = next(e for e in container["env"] if e["name"] == var)
    ref = entry["valueFrom"]["configMapKeyRef"]
    return str(one(objs, "ConfigMap", ref["name"])["data"][ref["key"]])


def _check_env_references(objs: Objs, container: dict[str, Any]) -> None:
    """Every $(VAR) in the arguments is defined by the container's env, and every ConfigMap key it reads
    exists (Kubernetes leaves an undefined $(VAR) in the argument as it is)."""
    defined = {e["name"] for e in container.get("env", [])}
    for arg in container["args"]:
        for var in VAR.findall(arg):
            assert var in defined, f"{container['name']}: {arg} uses undefined ${var}"
    for e in container.get("env", []):
        ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            assert ref["key"] in one(objs, "ConfigMap", ref["name"])["data"], ref


def _check_probes(container: dict[str, Any]) -> None:
    ports = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports


@pytest.mark.parametrize("flavour", ["kustomize", "helm"])
def test_pods_are_least_privilege(flavour: str, renderings: dict[str, Objs]) -> None:
    objs = renderings[flavour]
    workloads = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 3
    for wl in workloads:
        pod = wl["spec"]["template"]["spec"]
        name = wl["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        is_daemon = wl["spec"]["template"]["metadata"]["labels"][_COMPONENT_KEY] == "daemon"
        # only the daemon talks to the API server
        assert pod.get("automountServiceAccountToken", True) is is_daemon, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert parse_quantity(c["resources"]["requests"]["cpu"]) > 0, name
            assert parse_quantity(c["resources"]["limits"]["memory"]) > 0, name
    deployments = [o for o in workloads if o["kind"] == "Deployment"]
    pdbs = list(by_kind(objs, "PodDisruptionBudget").values())
    for dep in deployments:
        labels = dep["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if _selects(p["spec"]["selector"]["matchLabels"], dep)]
        assert len(covering) == 1 and covering[0]["spec"]["minAvailable"] < dep["spec"]["replicas"], labels
    policies = list(by_kind(objs, "NetworkPolicy").values())
    deny = [
        p
        for p in policies
        if not p["spec"].get("ingress") and set(p["spec"]["policyTypes"]) >= {"Ingress", "Egress"}
    ]
    assert deny, "no default-deny NetworkPolicy"
    for wl in workloads:
        assert any(
            _selects(p["spec"]["podSelector"].get("matchLabels", {}), wl) and p["spec"].get("ingress")
            for p in policies
        ), f"nothing may reach {wl['metadata']['name']}"


def test_rbac_is_the_same_in_both_renderings(renderings: dict[str, Objs]) -> None:
    def rules(objs: Objs, kind: str) -> list[Any]:
        (role,) = by_kind(objs, kind).values()
        return sorted(
            (tuple(r["apiGroups"]), tuple(sorted(r["resources"])), tuple(sorted(r["verbs"])))
            for r in role["rules"]
        )

    for kind in ("ClusterRole", "Role"):
        assert rules(renderings["kustomize"], kind) == rules(renderings["helm"], kind)
    (role,) = by_kind(renderings["helm"], "Role").values()
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update", "patch"],
        }
    ]
    (cluster_role,) = by_kind(renderings["kustomize"], "ClusterRole").values()
    groups = {g for r in cluster_role["rules"] for g in r["apiGroups"]}
    assert "rbac.authorization.k8s.io" not in groups and "*" not in groups
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in cluster_role["rules"])


@pytest.mark.parametrize("flavour", ["kustomize", "helm"])
def test_webhooks_config_file_loads(flavour: str, renderings: dict[str, Objs], tmp_path: Path) -> None:
    path = tmp_path / "webhooks.yaml"
    path.write_text(configmap_file(renderings[flavour], "webhooks.yaml"))
    settings = load_settings(path)
    assert settings.receivers
    assert all(r.secret is None and r.secret_env for r in settings.receivers)  # never a secret inline


def test_ingress_example_routes_to_the_webhooks_service() -> None:
    objs = render_kustomize_deploy(example="ingress")
    (ingress,) = by_kind(objs, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = one(objs, "Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert path["path"] == "/hook/"


# ---------------------------------------------------------------------------------------------------
# The GitHub Actions workflow


def test_workflow_runs_build_validation_and_diff_on_pull_requests() -> None:
    wf = load_workflow()
    assert "pull_request" in wf["on"]
    assert set(wf["on"]["pull_request"]["paths"]) == {"envs/**", "overlays/**", "policies/**"}
    # read-only, plus uploading the check's SARIF to code scanning
    assert wf["permissions"] == {"contents": "read", "security-events": "write"}
    (job,) = wf["jobs"].values()
    scripts = "\n".join(str(s.get("run", "")) for s in job["steps"])
    assert re.search(r"^\s*reconciler build \"\$env\" --repo \.", scripts, re.M)
    assert re.search(r"^\s*reconciler reconcile \"\$env\" .*--dry-run", scripts, re.M)
    assert re.search(r"^\s*reconciler diff \"\$env\" .*--exit-code", scripts, re.M)
    assert re.search(r"^\s*reconciler check \"\$\{args\[@\]\}\" -o sarif", scripts, re.M)
    for step in job["steps"]:
        if "uses" in step:
            assert str(step["uses"]).startswith(SKIPPED_USES), step["uses"]


def test_workflow_render_steps_run_on_the_example_repository(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is required")
    _, work = init_repo_with_remote(ROOT, tmp_path / "repo")
    run = run_workflow(
        work,
        secrets={},
        skip_names=("Install reconciler",),
        extra_env={"RECONCILER_CACHE_DIR": str(tmp_path / "cache")},
    )
    for step in run.steps:
        assert step.returncode == 0, f"{step.name}:\n{step.stdout}\n{step.stderr}"
    assert run.outputs["envs"]["names"].split() == list(sorted(ENVS))
    assert run.outputs["kube"]["available"] == "false"
    assert not run.step("Validate").ran and not run.step("Diff").ran
    # without a cluster the check still renders and runs the policies (this head changes nothing)
    assert run.step("Check the change").ran and "### reconciler check: passed" in run.summary
    assert '"version": "2.1.0"' in (work / "reconciler-check.sarif").read_text()
    for env in ENVS:
        rendered = (work / "rendered" / f"{env}.yaml").read_text()
        assert parse_stream(rendered, env)
        assert (
            rendered.strip()
            == run_tool([ROOT / ".venv" / "bin" / "reconciler", "build", ROOT / "overlays" / env]).strip()
        )
