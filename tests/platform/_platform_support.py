"""Helpers for the platform tests: the example environments (envs/ + overlays/), the deploy/ manifests,
the pinned kustomize and helm binaries, and a small local runner for the GitHub Actions workflow in
deploy/github/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.render import build, load_yaml_documents

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "reconciler"
WORKFLOW = DEPLOY / "github" / "environment-repo-pr.yaml"
PLATFORM_GROUPS = ("kagent.dev", "agentgateway.dev", "gateway.networking.k8s.io")
# Custom resources whose controllers write a status (everything in the example but AgentgatewayParameters,
# whose CRD has no status at all).
STATUS_KINDS = frozenset(
    {"Agent", "ModelConfig", "RemoteMCPServer", "MCPServer", "Gateway", "HTTPRoute"}
    | {"AgentgatewayBackend", "AgentgatewayPolicy"}
)


# ---------------------------------------------------------------------------------------------------
# Pinned tools


def _run_build(args: list[str], what: str) -> str:
    if shutil.which("go") is None:
        pytest.fail(f"the Go toolchain is required to build the pinned {what} (tools/)")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout.strip().splitlines()[-1]


def _pinned(script: Path, variable: str) -> str:
    for line in script.read_text().splitlines():
        if line.startswith(f"{variable}="):
            return line.split("=", 1)[1].split()[0]
    raise AssertionError(f"{variable} not found in {script}")


@cache
def kustomize_binary() -> Path:
    """The pinned kustomize (tools/controlplane/build.sh kustomize; built once, then cached)."""
    script = ROOT / "tools" / "controlplane" / "build.sh"
    bin_dir = Path(_run_build([str(script), "kustomize"], "kustomize"))
    exe = bin_dir / f"kustomize-{_pinned(script, 'KUSTOMIZE_VERSION')}" / "kustomize"
    assert exe.is_file(), f"kustomize missing at {exe}"
    return exe


@cache
def helm_binary() -> Path:
    """The pinned helm (tools/helm/build.sh; built once, then cached)."""
    script = ROOT / "tools" / "helm" / "build.sh"
    exe = Path(_run_build([str(script)], "helm"))
    assert exe.is_file() and exe.parent.name == f"helm-{_pinned(script, 'HELM_VERSION')}", exe
    return exe


def run_tool(args: list[str | Path], *, cwd: Path | None = None) -> str:
    """Run a tool and return its stdout; fails the test with stderr on a non-zero exit."""
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, check=False, cwd=cwd
    )
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def parse_stream(text: str, where: str) -> list[dict[str, Any]]:
    """YAML documents of a rendered stream (duplicate keys refused), empty documents dropped."""
    return [d for d in load_yaml_documents(text, path=where) if d]


# ---------------------------------------------------------------------------------------------------
# The example environments


def render_env(env: str, *, decrypt: bool = False) -> list[dict[str, Any]]:
    """The rendered objects of ``overlays/<env>`` (the project's renderer); SOPS-encrypted Secrets as in
    Git, or with ``decrypt`` as a pass applies them (the TEST-ONLY key of deploy/examples/sops/)."""
    from reconciler.render import SopsFiles, sops

    files = SopsFiles()
    objs = build(ROOT / "overlays" / env, root=ROOT, sops=files)
    if decrypt:
        key = ROOT / "deploy" / "examples" / "sops" / "test-only.agekey"
        sops.decrypt_objects(objs, files, sops.Decryptor(sops.load_key_file(key)))
    return objs


def load_env_file(env: str) -> dict[str, Any]:
    """``envs/<env>.yaml`` as a plain mapping."""
    data: dict[str, Any] = YAML(typ="safe").load((ROOT / "envs" / f"{env}.yaml").read_text())
    return data


def kustomization(env: str) -> dict[str, Any]:
    """``overlays/<env>/kustomization.yaml`` as a plain mapping."""
    data: dict[str, Any] = YAML(typ="safe").load((ROOT / "overlays" / env / "kustomization.yaml").read_text())
    return data


def group_of(obj: dict[str, Any]) -> str:
    """The API group of an object (``""`` for core)."""
    api = str(obj["apiVersion"])
    return api.split("/", 1)[0] if "/" in api else ""


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The object of ``kind``/``name``; fails the test when it is missing."""
    found = by_kind(objs, kind).get(name)
    assert found is not None, f"{kind}/{name} is not in the rendered set"
    return found


@dataclass
class Workload:
    """Pod settings of one workload, wherever its kind keeps them."""

    where: str
    pod_security: dict[str, Any]
    containers: list[dict[str, Any]]
    volumes: list[dict[str, Any]] = field(default_factory=list)


def workloads(objs: list[dict[str, Any]]) -> Iterator[Workload]:
    """Every pod template in the set: Deployments and StatefulSets, and the deployment blocks of kagent
    Agents (declarative and BYO) and kmcp MCPServers (whose controllers build the pods from them)."""
    for o in objs:
        kind, name = o["kind"], o["metadata"]["name"]
        where = f"{kind}/{name}"
        spec = o.get("spec") or {}
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            pod = spec["template"]["spec"]
            yield Workload(
                where, pod.get("securityContext") or {}, pod.get("containers") or [], pod.get("volumes") or []
            )
        elif kind == "Agent":
            block = (spec.get("declarative") or spec.get("byo") or {}).get("deployment") or {}
            container = {
                "name": name,
                "resources": block.get("resources"),
                "securityContext": block.get("securityContext"),
            }
            yield Workload(
                where, block.get("podSecurityContext") or {}, [container], block.get("volumes") or []
            )
        elif kind == "MCPServer":
            block = spec.get("deployment") or {}
            container = {
                "name": name,
                "resources": block.get("resources"),
                "securityContext": block.get("securityContext"),
            }
            yield Workload(
                where, block.get("podSecurityContext") or {}, [container], block.get("volumes") or []
            )


def images(objs: list[dict[str, Any]]) -> dict[str, str]:
    """``where → image`` for every image the set runs (containers, BYO Agents, MCPServers)."""
    out: dict[str, str] = {}
    for o in objs:
        where = f"{o['kind']}/{o['metadata']['name']}"
        spec = o.get("spec") or {}
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            pod = spec["template"]["spec"]
            for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                out[f"{where}/{c['name']}"] = c["image"]
        elif o["kind"] == "Agent" and spec.get("byo"):
            out[where] = spec["byo"]["deployment"]["image"]
        elif o["kind"] == "MCPServer" and (spec.get("deployment") or {}).get("image"):
            out[where] = spec["deployment"]["image"]
    return out


def image_repository(image: str) -> str:
    """``ghcr.io/acme/x:1@sha256:…`` → ``ghcr.io/acme/x``."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


# ---------------------------------------------------------------------------------------------------
# deploy/


def render_kustomize_deploy(
    namespace: str | None = None, *, example: str | None = None
) -> list[dict[str, Any]]:
    """Render deploy/kustomize (or deploy/examples/<example>) with the project's renderer.

    With ``namespace``, the rendering goes through a wrapper overlay (``namespace:`` plus a matching
    ``nameSuffix``), the way a user installs the base into another namespace: every namespaced object
    lands there and cluster-scoped names do not collide with other installations.
    """
    target = DEPLOY / "examples" / example if example else DEPLOY / "kustomize"
    if namespace is None:
        return build(target, root=DEPLOY)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(DEPLOY, work / "deploy")
        wrapper = work / "wrapper"
        wrapper.mkdir()
        rel = os.path.relpath(work / "deploy" / target.relative_to(DEPLOY), wrapper)
        (wrapper / "kustomization.yaml").write_text(
            f"namespace: {namespace}\nnameSuffix: -{namespace}\nresources:\n- {rel}\n"
        )
        return build(wrapper, root=work)


def helm_template(release: str, namespace: str, *sets: str) -> list[dict[str, Any]]:
    """``helm template RELEASE deploy/helm/reconciler --namespace NAMESPACE [--set …]``, parsed."""
    args: list[str | Path] = [helm_binary(), "template", release, CHART, "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    return parse_stream(run_tool(args), f"helm template {release}")


def configmap_file(objs: list[dict[str, Any]], key: str) -> str:
    """The value of ``key`` in the one ConfigMap of the set that has it."""
    found = [o["data"][key] for o in objs if o["kind"] == "ConfigMap" and key in (o.get("data") or {})]
    assert len(found) == 1, f"expected one ConfigMap with key {key!r}, found {len(found)}"
    return str(found[0])


# ---------------------------------------------------------------------------------------------------
# A local runner for the GitHub Actions workflow


_EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")
# Steps a runner provides, not this project: they are not executed locally.
SKIPPED_USES = (
    "actions/checkout@",
    "actions/setup-python@",
    "actions/upload-artifact@",
    "github/codeql-action/upload-sarif@",
)


@dataclass
class StepRun:
    """What happened to one workflow step."""

    name: str
    ran: bool
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class WorkflowRun:
    """The outcome of :func:`run_workflow`."""

    steps: list[StepRun]
    outputs: dict[str, dict[str, str]]
    summary: str

    def step(self, name_part: str) -> StepRun:
        """The step whose name contains ``name_part``."""
        matches = [s for s in self.steps if name_part in s.name]
        assert len(matches) == 1, f"{len(matches)} steps match {name_part!r}: {[s.name for s in self.steps]}"
        return matches[0]


def load_workflow() -> dict[str, Any]:
    """The workflow file as a plain mapping (the ``on`` key stays a string, as YAML 1.2 reads it)."""
    data: dict[str, Any] = YAML(typ="safe").load(WORKFLOW.read_text())
    return data


def _read_kv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def run_workflow(
    workdir: Path,
    *,
    secrets: dict[str, str],
    skip_names: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> WorkflowRun:
    """Run the workflow's single job in ``workdir`` (a clone of an environment repository) the way a
    runner would: ``run`` steps with ``bash --noprofile --norc -eo pipefail``, ``${{ … }}`` expressions
    for ``steps.*.outputs.*``, ``secrets.*``, ``github.base_ref`` (``main``) and
    ``github.event.pull_request.number``, ``if:`` conditions of
    the form ``<expression> == '<literal>'``, ``$GITHUB_OUTPUT``/``$GITHUB_ENV``/``$GITHUB_STEP_SUMMARY``.
    Steps that ``uses:`` an action in :data:`SKIPPED_USES` and steps named in ``skip_names`` are not run
    (the test environment already provides what they install). The ``reconciler`` found first on PATH is
    this project's (the virtualenv's bin directory is put first); ``extra_env`` is added to every step's
    environment (e.g. ``RECONCILER_CACHE_DIR``).
    """
    wf = load_workflow()
    (job,) = wf["jobs"].values()
    outputs: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {
        **os.environ,
        **{k: str(v) for k, v in (wf.get("env") or {}).items()},
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra_env or {}),
    }
    temp = Path(tempfile.mkdtemp(prefix="gha-"))
    summary = temp / "summary.md"
    summary.write_text("")
    runs: list[StepRun] = []

    def expr(text: str) -> str:
        text = text.strip()
        if text.startswith("steps."):
            _, sid, _, key = text.split(".", 3)
            return outputs.get(sid, {}).get(key, "")
        if text.startswith("secrets."):
            return secrets.get(text.split(".", 1)[1], "")
        if text == "github.event.pull_request.number":
            return "1"
        if text == "github.base_ref":
            return "main"
        raise AssertionError(f"the local runner does not evaluate ${{{{ {text} }}}}")

    def substitute(text: str) -> str:
        return _EXPR.sub(lambda m: expr(m.group(1)), text)

    def condition(text: str) -> bool:
        m = re.fullmatch(r"\s*(\S+)\s*==\s*'([^']*)'\s*", text)
        assert m, f"the local runner does not evaluate if: {text}"
        return expr(m.group(1)) == m.group(2)

    for step in job["steps"]:
        name = str(step.get("name", step.get("uses", step.get("run", ""))))
        uses = str(step.get("uses", ""))
        if uses.startswith(SKIPPED_USES) or name in skip_names:
            runs.append(StepRun(name, ran=False))
            continue
        assert "run" in step, f"step {name!r}: the local runner runs `run` steps only"
        if "if" in step and not condition(str(step["if"])):
            runs.append(StepRun(name, ran=False))
            continue
        out_file, env_file = temp / f"out-{len(runs)}", temp / f"env-{len(runs)}"
        script = temp / f"step-{len(runs)}.sh"
        script.write_text(substitute(str(step["run"])))
        step_env = {
            **env,
            **{k: substitute(str(v)) for k, v in (step.get("env") or {}).items()},
            "GITHUB_OUTPUT": str(out_file),
            "GITHUB_ENV": str(env_file),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(temp),
        }
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workdir,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        runs.append(StepRun(name, True, proc.returncode, proc.stdout, proc.stderr))
        if "id" in step:
            outputs[str(step["id"])] = _read_kv(out_file)
        env.update(_read_kv(env_file))
        if proc.returncode != 0:
            break
    text = summary.read_text()
    shutil.rmtree(temp, ignore_errors=True)
    return WorkflowRun(runs, outputs, text)
