"""Policies before every write, on the real API server and the real OPA: a deny blocks the pass with nothing
applied and names policy file, rule, object and text; a warn is recorded and shown; a Rego syntax error,
a policy that runs too long and an input a rule does not expect each fail the pass with nothing applied,
the daemon keeps running, and the next good commit recovers."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from reconciler_testing import EnvRepo, daemon_settings
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.model import ObjectRef
from reconciler.model.policy import Severity
from reconciler.reconcile import PassContext, run_pass
from reconciler.runtime import Daemon
from reconciler.source import GitSource

pytestmark = pytest.mark.integration

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: server, image: "{image}"}}]}}
"""
CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  LEVEL: {level}\n"

NO_LATEST = """\
package main

deny contains msg if {
	some c in input.spec.template.spec.containers
	endswith(c.image, ":latest")
	msg := sprintf("container %s runs %s: name a version", [c.name, c.image])
}
"""
WARN_LEVEL = """\
package platform.config

warn_debug contains msg if {
	input.kind == "ConfigMap"
	input.data.LEVEL == "debug"
	msg := sprintf("LEVEL is debug in %s", [data.reconciler.environment])
}
"""


def _seed(
    repo: EnvRepo, ns: str, *, image: str = "ghcr.io/acme/web:1.0", level: str = "info", env: str = ""
) -> str:
    repo.write("envs/dev.yaml", env or f"overlay: overlays/dev\nnamespace: {ns}\n")
    repo.write("overlays/dev/kustomization.yaml", "resources: [deployment.yaml, config.yaml]\n")
    repo.write("overlays/dev/deployment.yaml", DEPLOY.format(image=image))
    repo.write("overlays/dev/config.yaml", CONFIG.format(level=level))
    repo.write("policies/images.rego", NO_LATEST)
    repo.write("policies/config.rego", WARN_LEVEL)
    return repo.commit(f"web {image}, LEVEL {level}")


def _refs(ns: str) -> tuple[ObjectRef, ObjectRef]:
    return (
        ObjectRef(group="apps", version="v1", kind="Deployment", namespace=ns, name="web"),
        ObjectRef(kind="ConfigMap", namespace=ns, name="settings"),
    )


def test_a_deny_blocks_the_pass_before_any_write_and_a_warn_is_recorded(
    env_repo: EnvRepo, kube: KubeClient, kubeconfig: Path, namespace: str, cache_dir: Path
) -> None:
    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", cache_dir), client=kube, probes=None)
    deploy, config = _refs(namespace)
    _seed(env_repo, namespace, image="ghcr.io/acme/web:latest", level="debug")

    denied = run_pass(ctx, "dev", with_health=False)
    assert denied.blocked and not denied.ok
    assert denied.error == (
        f"policy denied 1: policies/images.rego:3: main.deny: Deployment/{namespace}/web: "
        "container server runs ghcr.io/acme/web:latest: name a version"
    )
    assert kube.get(deploy) is None and kube.get(config) is None, "nothing is applied"
    assert InventoryStore(kube, source=str(env_repo.remote)).load("dev").entries == []
    assert [(f.severity, f.rule_id) for f in denied.policy] == [
        (Severity.DENY, "main.deny"),
        (Severity.WARN, "platform.config.warn_debug"),
    ]

    sha = _seed(env_repo, namespace, image="ghcr.io/acme/web:1.0", level="debug")
    applied = run_pass(ctx, "dev", with_health=False)
    assert applied.ok and applied.revision.endswith(sha), applied.error
    assert kube.get(deploy) is not None and (kube.get(config) or {})["data"] == {"LEVEL": "debug"}
    [warned] = applied.policy
    assert warned.severity is Severity.WARN and warned.object == f"ConfigMap/{namespace}/settings"
    assert warned.file == "policies/config.rego" and warned.line == 3
    assert applied.warnings == [
        f"policy warn: policies/config.rego:3: platform.config.warn_debug: ConfigMap/{namespace}/settings: "
        "LEVEL is debug in dev"
    ]
    assert (
        json.loads(applied.model_dump_json())["policy"][0]["rule"] == "warn_debug"
    )  # published with the result

    # `reconciler reconcile` shows the warning (and the daemon's result carries it on NATS)
    result = CliRunner().invoke(
        app,
        ["reconcile", "dev", "--repo", str(env_repo.remote), "--kubeconfig", str(kubeconfig)],
        env={"RECONCILER_CACHE_DIR": str(cache_dir / "cli")},
    )
    assert result.exit_code == 0, result.output
    assert "warning: policy warn: policies/config.rego:3: platform.config.warn_debug" in result.output


BROKEN = {
    "syntax": (
        "policies/images.rego",
        NO_LATEST.replace("endswith(c.image", "endswith(c.image,,"),
        r"policies/images.rego:5: rego_parse_error",
    ),
    "timeout": (
        "policies/slow.rego",
        "package slow\n\ndeny contains msg if {\n\tsome i in numbers.range(1, 100000000)\n"
        '\tsome j in numbers.range(1, 100000000)\n\ti == j + 1000000000\n\tmsg := "never"\n}\n',
        r"policies/slow.rego:4: eval_cancel_error: evaluation stopped at 1 s \(policies.timeout\)",
    ),
    "input": (
        "policies/level.rego",
        'package level\n\ndeny contains msg if {\n\tinput.kind == "ConfigMap"\n'
        '\tto_number(input.data.LEVEL) > 3\n\tmsg := "too verbose"\n}\n',
        r"policies/level.rego:5: eval_builtin_error: to_number: .*\(evaluating ConfigMap/.*/settings\)",
    ),
}


async def test_bad_policies_fail_closed_the_daemon_keeps_running_and_a_good_commit_recovers(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    deploy, config = _refs(namespace)
    env = f"overlay: overlays/dev\nnamespace: {namespace}\npolicies: {{timeout: 1}}\n"
    _seed(env_repo, namespace, level="info", env=env)
    daemon = Daemon(daemon_settings(env_repo.remote, kubeconfig, cache_dir, drift_watch=False))
    await daemon.start()
    try:
        first = await daemon.trigger("dev", "test")
        assert first.ok, first.error
        for what, (rel, text, error) in BROKEN.items():
            # a commit that changes the objects and breaks the policies: nothing of it is applied
            await asyncio.to_thread(_seed, env_repo, namespace, level=f"v-{what}", env=env)
            env_repo.write(rel, text)
            sha = await asyncio.to_thread(env_repo.commit, f"broken policy: {what}")
            bad = await daemon.trigger("dev", "test")
            assert not bad.ok and not bad.blocked and bad.revision.endswith(sha), (what, bad)
            assert bad.error.startswith("policy evaluation failed: "), bad.error
            assert re.search(error, bad.error), (what, bad.error)
            assert (kube.get(config) or {})["data"] == {"LEVEL": "info"}, f"{what}: nothing is applied"
            assert bad.changes.entries == []
            # the next good commit recovers
            if rel != "policies/images.rego":
                env_repo.remove(rel)
            good_sha = await asyncio.to_thread(_seed, env_repo, namespace, level="info", env=env)
            good = await daemon.trigger("dev", "test")
            assert good.ok and good.revision.endswith(good_sha), (what, good.error)
        assert kube.get(deploy) is not None
        # the daemon still runs its passes
        assert daemon.envs["dev"].passes >= 1 + 2 * len(BROKEN)
    finally:
        await daemon.stop()
