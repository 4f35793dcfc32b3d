"""``drift: warn`` reports drift without correcting it; ignore rules (RFC 6901 pointers + target) take
paths out of comparison and correction. On the real API server, through full passes and the daemon."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from _applyengine_support import strategic_patch, until
from reconciler_testing import EnvRepo, daemon_settings

from reconciler.cluster.client import KubeClient
from reconciler.model import Action, ObjectRef, PassResult
from reconciler.reconcile import PassContext, run_pass
from reconciler.runtime import Daemon
from reconciler.source import GitSource

pytestmark = pytest.mark.integration


def _deployment(name: str) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{rollout: "1"}}
    spec:
      containers:
      - name: main
        image: reg.test/{name}:1.0.0
"""


CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: tuning
data:
  mode: fast
  threads: "4"
"""


def _seed(repo: EnvRepo, namespace: str, sync: str, *, threads: str = "4") -> str:
    repo.write(
        "envs/dev.yaml",
        f"overlay: overlays/dev\nnamespace: {namespace}\nsync:\n{sync}health: {{noControllerAfter: 5}}\n",
    )
    repo.write("overlays/dev/kustomization.yaml", "resources:\n- web.yaml\n- api.yaml\n- config.yaml\n")
    repo.write("overlays/dev/web.yaml", _deployment("web"))
    repo.write("overlays/dev/api.yaml", _deployment("api"))
    repo.write("overlays/dev/config.yaml", CONFIG.replace('"4"', f'"{threads}"'))
    return str(repo.commit("dev"))


WARN = "  interval: 3600\n  drift: warn\n"
IGNORE = """\
  interval: 3600
  ignore:
  - {kind: Deployment, name: web, paths: [/spec/template/metadata/annotations]}
  - {kind: ConfigMap, paths: [/data/threads]}
"""


def _ref(kind: str, ns: str, name: str) -> ObjectRef:
    group = "apps" if kind == "Deployment" else ""
    return ObjectRef(group=group, kind=kind, namespace=ns, name=name)


def _image(kube: KubeClient, ns: str, name: str) -> str:
    live = kube.get(_ref("Deployment", ns, name)) or {}
    return str(live["spec"]["template"]["spec"]["containers"][0]["image"])


def _annotation(kube: KubeClient, ns: str, name: str) -> str:
    live = kube.get(_ref("Deployment", ns, name)) or {}
    return str(live["spec"]["template"]["metadata"]["annotations"]["rollout"])


def _edit_image(kube: KubeClient, ns: str, name: str, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}}
    strategic_patch(kube, _ref("Deployment", ns, name), patch, manager="kubectl-edit")


def _edit_annotation(kube: KubeClient, ns: str, name: str, value: str) -> None:
    patch = {"spec": {"template": {"metadata": {"annotations": {"rollout": value}}}}}
    strategic_patch(kube, _ref("Deployment", ns, name), patch, manager="kubectl-edit")


def _actions(result: PassResult) -> dict[str, Action]:
    return {f"{c.ref.kind}/{c.ref.name}": c.action for c in result.changes.entries}


def _ctx(
    repo: EnvRepo, kube: KubeClient, cache_dir: Path, drifts: list[tuple[str, str, list[str]]]
) -> PassContext:
    return PassContext(
        source=GitSource(str(repo.remote), "main", cache_dir),
        client=kube,
        on_drift=lambda env, ref, paths: drifts.append((env, str(ref), paths)),
    )


def test_warn_reports_drift_and_leaves_it(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    _seed(env_repo, namespace, WARN)
    drifts: list[tuple[str, str, list[str]]] = []
    ctx = _ctx(env_repo, kube, cache_dir, drifts)
    first = run_pass(ctx, "dev", with_health=False)
    assert first.ok, first.error
    assert first.changes.count(Action.CREATED) == 3

    _edit_image(kube, namespace, "web", "evil/web:6.6.6")
    second = run_pass(ctx, "dev", with_health=False)
    assert second.ok, second.error
    assert _actions(second) == {
        "Deployment/web": Action.SKIPPED,
        "Deployment/api": Action.UNCHANGED,
        "ConfigMap/tuning": Action.UNCHANGED,
    }
    skipped = next(c for c in second.changes.entries if c.action is Action.SKIPPED)
    assert (
        skipped.message == "drift not corrected (drift: warn): spec.template.spec.containers[name=main].image"
    )
    assert drifts == [
        ("dev", f"Deployment/{namespace}/web", ["spec.template.spec.containers[name=main].image"])
    ]
    assert _image(kube, namespace, "web") == "evil/web:6.6.6"  # reported, not corrected

    # a change from Git is still applied in warn mode; the drifted object stays as it is
    _seed(env_repo, namespace, WARN, threads="8")
    third = run_pass(ctx, "dev", with_health=False)
    assert third.ok, third.error
    assert _actions(third)["ConfigMap/tuning"] is Action.CONFIGURED
    assert _actions(third)["Deployment/web"] is Action.SKIPPED
    assert _image(kube, namespace, "web") == "evil/web:6.6.6"

    # switching the environment to correct restores Git's state
    _seed(env_repo, namespace, "  interval: 3600\n  drift: correct\n", threads="8")
    fourth = run_pass(ctx, "dev", with_health=False)
    assert fourth.ok, fourth.error
    assert _actions(fourth)["Deployment/web"] is Action.CONFIGURED
    assert _image(kube, namespace, "web") == "reg.test/web:1.0.0"


async def test_daemon_in_warn_mode_publishes_drift_and_does_not_correct(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    _seed(env_repo, namespace, WARN)
    results: list[PassResult] = []
    events: list[dict[str, Any]] = []
    settings = daemon_settings(env_repo.remote, kubeconfig, cache_dir)
    daemon = Daemon(settings, on_result=results.append, on_drift=events.append)
    await daemon.start()
    try:
        await asyncio.to_thread(until, lambda: results, 30)
        assert results[0].ok, results[0].error
        await asyncio.sleep(0.5)  # let the watches start
        await asyncio.to_thread(_edit_image, kube, namespace, "api", "evil/api:6.6.6")
        await asyncio.to_thread(until, lambda: events, 10)
        event = events[0]
        assert event["object"] == f"Deployment/{namespace}/api"
        assert event["paths"] == ["spec.template.spec.containers[name=main].image"]
        assert event["mode"] == "warn" and event["corrected"] is False
        assert "kubectl-edit" in event["managers"]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:  # and nothing restores it
            assert await asyncio.to_thread(_image, kube, namespace, "api") == "evil/api:6.6.6"
            await asyncio.sleep(0.25)
        assert all(not e["corrected"] for e in events)
    finally:
        await daemon.stop()


def test_ignore_rules_exclude_paths_for_their_targets_only(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    _seed(env_repo, namespace, IGNORE)
    drifts: list[tuple[str, str, list[str]]] = []
    ctx = _ctx(env_repo, kube, cache_dir, drifts)
    assert run_pass(ctx, "dev", with_health=False).ok

    # ignored paths changed by someone else: no drift, nothing written, the values stay
    _edit_annotation(kube, namespace, "web", "2")
    strategic_patch(kube, _ref("ConfigMap", namespace, "tuning"), {"data": {"threads": "16"}}, manager="ops")
    before = dict(kube.calls)
    quiet = run_pass(ctx, "dev", with_health=False)
    assert quiet.ok, quiet.error
    assert set(_actions(quiet).values()) == {Action.UNCHANGED}
    assert kube.calls["apply"] == before.get("apply", 0)
    assert drifts == []
    assert _annotation(kube, namespace, "web") == "2"
    assert ((kube.get(_ref("ConfigMap", namespace, "tuning")) or {})["data"]) == {
        "mode": "fast",
        "threads": "16",
    }

    # the same path on an object the rule does not target is compared and corrected
    _edit_annotation(kube, namespace, "api", "2")
    # ... and a path the rule does not name, on the targeted objects
    strategic_patch(kube, _ref("ConfigMap", namespace, "tuning"), {"data": {"mode": "slow"}}, manager="ops")
    _edit_image(kube, namespace, "web", "evil/web:6.6.6")
    fixed = run_pass(ctx, "dev", with_health=False)
    assert fixed.ok, fixed.error
    assert _actions(fixed) == {
        "Deployment/web": Action.CONFIGURED,
        "Deployment/api": Action.CONFIGURED,
        "ConfigMap/tuning": Action.CONFIGURED,
    }
    assert sorted(drifts) == [
        ("dev", f"ConfigMap/{namespace}/tuning", ["data.mode"]),
        ("dev", f"Deployment/{namespace}/api", ["spec.template.metadata.annotations.rollout"]),
        ("dev", f"Deployment/{namespace}/web", ["spec.template.spec.containers[name=main].image"]),
    ]
    assert _annotation(kube, namespace, "api") == "1"
    assert _image(kube, namespace, "web") == "reg.test/web:1.0.0"
    # correcting other fields of an object does not reset its ignored fields ("never corrected")
    assert _annotation(kube, namespace, "web") == "2"
    assert ((kube.get(_ref("ConfigMap", namespace, "tuning")) or {})["data"]) == {
        "mode": "fast",
        "threads": "16",
    }
    again = run_pass(ctx, "dev", with_health=False)
    assert set(_actions(again).values()) == {Action.UNCHANGED}


async def test_daemon_corrects_drift_but_not_ignored_paths(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    _seed(env_repo, namespace, IGNORE)
    results: list[PassResult] = []
    events: list[dict[str, Any]] = []
    settings = daemon_settings(env_repo.remote, kubeconfig, cache_dir)
    daemon = Daemon(settings, on_result=results.append, on_drift=events.append)
    await daemon.start()
    try:
        await asyncio.to_thread(until, lambda: results, 30)
        assert results[0].ok, results[0].error
        await asyncio.sleep(0.5)  # let the watches start
        await asyncio.to_thread(_edit_annotation, kube, namespace, "web", "2")
        await asyncio.sleep(1.5)
        assert events == []  # an ignored path is no drift
        await asyncio.to_thread(_edit_image, kube, namespace, "web", "evil/web:6.6.6")
        await asyncio.to_thread(until, lambda: any(e["corrected"] for e in events), 10)
        # (one edit can be seen twice before it is corrected: the edit and a status update after it)
        assert {tuple(e["paths"]) for e in events} == {("spec.template.spec.containers[name=main].image",)}
        assert await asyncio.to_thread(_image, kube, namespace, "web") == "reg.test/web:1.0.0"
        assert await asyncio.to_thread(_annotation, kube, namespace, "web") == "2"
    finally:
        await daemon.stop()
