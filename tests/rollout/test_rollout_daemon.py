"""Canary rollouts end to end on the real control plane, a real Prometheus and Git: the daemon lays the
rollout over the desired set (stable and canary Deployments and Services, the HTTPRoute's weights on the
real API server), the agentgateway-shaped metrics fixture (a fixture, not a gateway) simulates traffic
by those weights, and the step function gates each step on a PromQL error rate.

A good canary walks its steps and becomes stable (the canary objects are pruned, the route is Git's
again); a bad one is aborted at its first failing sample — weight 0 at once — and reverted in Git with
``Rollback-Of`` and a ``Reason`` that quotes the query, the value and the threshold."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import Served
from reconciler_testing import EnvRepo, daemon_settings, until

from reconciler.cluster.client import KubeClient
from reconciler.cluster.rollouts import RolloutStore
from reconciler.model import ObjectRef, PassResult
from reconciler.model.rollout import RolloutPhase
from reconciler.runtime import Daemon

pytestmark = pytest.mark.integration

SERIES = 'agentgateway_requests_total{route="{{namespace}}/{{route}}",backend="{{namespace}}/{{canary}}"'
ERRORS = f'(sum(rate({SERIES},status=~"5.."}}[10s])) or vector(0)) / sum(rate({SERIES}}}[10s]))'


def _files(ns: str, tag: str) -> dict[str, str]:
    env = {
        "overlay": "overlays/dev",
        "namespace": ns,
        "sync": {"interval": 3600},
        "health": {"timeout": 30, "noControllerAfter": 1},
        "promotion": {"via": "push"},
        "rollouts": [
            {
                "app": "clock",
                "route": "clock",
                "strategy": {"canary": {"steps": [50, 100], "interval": 2}},
                "analysis": {
                    "initialDelay": 3,
                    "queries": [
                        {
                            "name": "error-rate",
                            "query": ERRORS,
                            "max": 0.05,
                            "interval": 0.5,
                            "inconclusiveLimit": 20,
                        }
                    ],
                },
            }
        ],
    }
    labels = "{app.kubernetes.io/name: clock}"
    return {
        "envs/dev.yaml": json.dumps(env, indent=1),
        "overlays/dev/kustomization.yaml": "resources:\n- deployment.yaml\n- service.yaml\n- route.yaml\n"
        f"images:\n- name: ghcr.io/acme/clock\n  newTag: '{tag}'\n",
        "overlays/dev/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: clock}\n"
        f"spec:\n  replicas: 1\n  selector: {{matchLabels: {labels}}}\n"
        f"  template:\n    metadata: {{labels: {labels}}}\n"
        "    spec: {containers: [{name: s, image: ghcr.io/acme/clock:0.0.1}]}\n",
        "overlays/dev/service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: clock}\n"
        f"spec: {{selector: {labels}, ports: [{{port: 80}}]}}\n",
        "overlays/dev/route.yaml": "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        "metadata: {name: clock}\nspec:\n  rules:\n  - backendRefs: [{name: clock, port: 80}]\n",
    }


def _write(repo: EnvRepo, ns: str, tag: str) -> None:
    for rel, text in _files(ns, tag).items():
        repo.write(rel, text)


def _traffic(fixture: Served, ns: str, canary_errors: float) -> None:
    body = {"rate": 50, "backends": {"clock-canary": {"errorRatio": canary_errors}}}
    req = urllib.request.Request(
        f"{fixture.url}/routes/{ns}/clock", data=json.dumps(body).encode(), method="PUT"
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def _image(kube: KubeClient, ns: str, name: str) -> str | None:
    dep = kube.get(ObjectRef(group="apps", version="v1", kind="Deployment", namespace=ns, name=name))
    return None if dep is None else str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def _backends(kube: KubeClient, ns: str) -> list[dict[str, Any]]:
    ref = ObjectRef(
        group="gateway.networking.k8s.io", version="v1", kind="HTTPRoute", namespace=ns, name="clock"
    )
    return list(((kube.get(ref) or {})["spec"]["rules"][0]).get("backendRefs") or [])


async def test_a_good_canary_becomes_stable_and_a_bad_one_is_reverted_in_git(
    env_repo: EnvRepo,
    kube: KubeClient,
    kubeconfig: Path,
    namespace: str,
    cache_dir: Path,
    prometheus: Served,
    agw_metrics: Served,
) -> None:
    _write(env_repo, namespace, "1.0")
    env_repo.commit("clock 1.0 with a canary rollout")
    results: list[PassResult] = []
    settings = daemon_settings(env_repo.remote, kubeconfig, cache_dir, prometheus_url=prometheus.url)
    daemon = Daemon(settings, on_result=results.append)
    store = RolloutStore(kube, str(env_repo.remote))
    await daemon.start()
    try:
        await until(lambda: results, 30, "the first pass")
        assert results[-1].ok, results[-1].error
        first = store.load("dev", "clock")
        assert (
            first is not None and first.phase is RolloutPhase.SUCCEEDED and "first version" in first.message
        )
        assert _image(kube, namespace, "clock") == "ghcr.io/acme/clock:1.0"

        # a good canary: 50 % then 100 %, each step gated on the canary's error rate
        _traffic(agw_metrics, namespace, 0.0)
        _write(env_repo, namespace, "1.1")
        good = await asyncio.to_thread(env_repo.commit, "clock 1.1")
        started = await daemon.trigger("dev", "test")
        assert started.ok, started.error
        assert _image(kube, namespace, "clock") == "ghcr.io/acme/clock:1.0", "the stable version stays"
        assert _image(kube, namespace, "clock-canary") == "ghcr.io/acme/clock:1.1"
        assert [(b["name"], b["weight"]) for b in _backends(kube, namespace)] == [
            ("clock", 50),
            ("clock-canary", 50),
        ]
        await until(
            lambda: (s := store.load("dev", "clock")) is not None and s.phase is RolloutPhase.SUCCEEDED,
            60,
            "success",
        )
        await until(
            lambda: _image(kube, namespace, "clock") == "ghcr.io/acme/clock:1.1", 30, "the new stable"
        )
        await until(lambda: _image(kube, namespace, "clock-canary") is None, 30, "the canary pruned")
        assert [b["name"] for b in _backends(kube, namespace)] == ["clock"]
        done = store.load("dev", "clock")
        assert (
            done is not None
            and len(done.history) == 2
            and done.history[0].startswith("step 1/2 at weight 50%: passed")
        )

        # a bad canary: half its requests fail → weight 0 at once, the commit reverted in Git
        _traffic(agw_metrics, namespace, 0.5)
        _write(env_repo, namespace, "1.2")
        bad = await asyncio.to_thread(env_repo.commit, "clock 1.2")
        await daemon.trigger("dev", "test")
        await until(
            lambda: (s := store.load("dev", "clock")) is not None and s.phase is RolloutPhase.ABORTED,
            60,
            "abort",
        )
        aborted = store.load("dev", "clock")
        assert (
            aborted is not None
            and "analysis failed: error-rate: " in aborted.message
            and "(max 0.05): Failed" in aborted.message
        )
        weights = {b["name"]: b["weight"] for b in _backends(kube, namespace)}
        assert weights.get("clock-canary", 0) == 0 and weights["clock"] == 100
        # from the first failing sample to the canary's weight 0 (the bench measures this across runs)
        abort_at = next(t for t, _, _, move, _ in daemon.rollouts.actions if move == "abort")
        failed_at = min(s.at for s in aborted.samples if s.outcome.value == "Failed")
        assert abort_at >= failed_at
        await until(
            lambda: (s := store.load("dev", "clock")) is not None and s.reverted, 30, "the revert commit"
        )
        log = subprocess.run(
            ["git", "log", "-1", "--format=%B", "main"],
            cwd=env_repo.remote,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"Rollback-Of: {bad}" in log
        assert "Reason: rollout of clock aborted: step 1/2 at weight 50%: analysis failed: error-rate:" in log
        assert "(max 0.05): Failed" in log
        notes = subprocess.run(
            ["git", "notes", "--ref", "reconciler", "show", bad],
            cwd=env_repo.remote,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert '"outcome": "rollout"' in notes and "analysis failed: error-rate" in notes
        good_notes = subprocess.run(
            ["git", "notes", "--ref", "reconciler", "show", good],
            cwd=env_repo.remote,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "step 2/2: canary weight 100%" in good_notes and "succeeded after 2 steps" in good_notes
        await until(
            lambda: _image(kube, namespace, "clock-canary") is None, 30, "the canary pruned after the revert"
        )
        assert _image(kube, namespace, "clock") == "ghcr.io/acme/clock:1.1"
    finally:
        await daemon.stop()


def test_an_invalid_query_stops_the_pass_that_would_begin_the_rollout(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path, prometheus: Served
) -> None:
    from reconciler.reconcile import PassContext, run_pass
    from reconciler.source import GitSource

    _write(env_repo, namespace, "1.0")
    env_repo.commit("clock 1.0")
    ctx = PassContext(
        source=GitSource(str(env_repo.remote), "main", cache_dir), client=kube, prometheus_url=prometheus.url
    )
    assert run_pass(ctx, "dev", with_health=False).ok
    files = _files(namespace, "1.1")
    files["envs/dev.yaml"] = files["envs/dev.yaml"].replace("[10s]))", "[10s]")  # an unclosed parenthesis
    for rel, text in files.items():
        env_repo.write(rel, text)
    env_repo.commit("clock 1.1 with a broken query")
    result = run_pass(ctx, "dev", with_health=False)
    assert not result.ok
    assert result.error.startswith(
        "envs/dev.yaml: rollouts[app=clock].analysis.queries[name=error-rate].query: invalid PromQL: "
    ), result.error
    assert _image(kube, namespace, "clock-canary") is None, "nothing was written"
    assert _image(kube, namespace, "clock") == "ghcr.io/acme/clock:1.0"
    state = RolloutStore(kube, str(env_repo.remote)).load("dev", "clock")
    assert state is not None and state.phase is RolloutPhase.SUCCEEDED, "no rollout began"


def _affinity_files(ns: str, tag: str) -> dict[str, str]:
    """clock as an MCP server (port appProtocol mcp) with 2 replicas, rolled out by replicas (session
    affinity) and gated on a protocol probe of the canary."""
    files = _files(ns, tag)
    env = json.loads(files["envs/dev.yaml"])
    env["rollouts"][0]["strategy"] = {"canary": {"steps": [50, 100], "interval": 2, "split": "replicas"}}
    env["rollouts"][0]["analysis"] = {"probes": [{"name": "protocol", "interval": 0.5}]}
    files["envs/dev.yaml"] = json.dumps(env, indent=1)
    files["overlays/dev/deployment.yaml"] = files["overlays/dev/deployment.yaml"].replace(
        "replicas: 1", "replicas: 2"
    )
    files["overlays/dev/service.yaml"] = files["overlays/dev/service.yaml"].replace(
        "ports: [{port: 80}]", "ports: [{port: 80, appProtocol: mcp}]"
    )
    return files


def _replicas(kube: KubeClient, ns: str, name: str) -> int | None:
    dep = kube.get(ObjectRef(group="apps", version="v1", kind="Deployment", namespace=ns, name=name))
    return None if dep is None else int(dep["spec"].get("replicas", 1))


async def test_a_session_affine_canary_shares_the_pods_and_is_gated_on_a_protocol_probe(
    env_repo: EnvRepo,
    kube: KubeClient,
    kubeconfig: Path,
    namespace: str,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reconciler.devcluster.agents import start_server_everything
    from reconciler.devcluster.process import free_port
    from reconciler.probe.targets import write_addresses

    server = start_server_everything(tmp_path)
    origin = server.url.removesuffix("/mcp")
    addresses = tmp_path / "addresses.json"

    def route_probes(canary: str) -> None:
        svc = f"http://{{}}.{namespace}.svc.cluster.local:80"
        write_addresses(addresses, {svc.format("clock"): origin, svc.format("clock-canary"): canary})

    route_probes(origin)
    monkeypatch.setenv("RECONCILER_PROBE_ADDRESSES", f"@{addresses}")
    for rel, text in _affinity_files(namespace, "1.0").items():
        env_repo.write(rel, text)
    env_repo.commit("clock 1.0, rolled out by replicas")
    results: list[PassResult] = []
    daemon = Daemon(daemon_settings(env_repo.remote, kubeconfig, cache_dir), on_result=results.append)
    store = RolloutStore(kube, str(env_repo.remote))
    await daemon.start()
    try:
        await until(lambda: results, 30, "the first pass")
        assert results[-1].ok, results[-1].error
        for rel, text in _affinity_files(namespace, "1.1").items():
            env_repo.write(rel, text)
        await asyncio.to_thread(env_repo.commit, "clock 1.1")
        started = await daemon.trigger("dev", "test")
        assert started.ok, started.error
        # step 1: one pod of each version behind the stable Service; the route keeps Git's single backend
        assert (_replicas(kube, namespace, "clock"), _replicas(kube, namespace, "clock-canary")) == (1, 1)
        assert _image(kube, namespace, "clock-canary") == "ghcr.io/acme/clock:1.1"
        assert _backends(kube, namespace) == [
            {"group": "", "kind": "Service", "name": "clock", "port": 80, "weight": 1}
        ]
        canary_svc = kube.get(
            ObjectRef(version="v1", kind="Service", namespace=namespace, name="clock-canary")
        )
        assert canary_svc is not None and canary_svc["spec"]["selector"]["reconciler.dev/rollout"] == "canary"
        await until(
            lambda: (s := store.load("dev", "clock")) is not None and s.phase is RolloutPhase.SUCCEEDED,
            60,
            "success",
        )
        done = store.load("dev", "clock")
        assert done is not None and "protocol: MCP probe Healthy" in done.history[0], done.history
        await until(
            lambda: _image(kube, namespace, "clock") == "ghcr.io/acme/clock:1.1", 30, "the new stable"
        )
        await until(lambda: _image(kube, namespace, "clock-canary") is None, 30, "the canary pruned")
        assert _replicas(kube, namespace, "clock") == 2

        # a canary nobody answers for: the probe fails → no canary pods at once, reverted in Git
        route_probes(f"http://127.0.0.1:{free_port()}")
        for rel, text in _affinity_files(namespace, "1.2").items():
            env_repo.write(rel, text)
        bad = await asyncio.to_thread(env_repo.commit, "clock 1.2")
        await daemon.trigger("dev", "test")
        await until(
            lambda: (s := store.load("dev", "clock")) is not None and s.phase is RolloutPhase.ABORTED,
            60,
            "abort",
        )
        assert (_replicas(kube, namespace, "clock"), _replicas(kube, namespace, "clock-canary")) == (2, 0)
        await until(lambda: (s := store.load("dev", "clock")) is not None and s.reverted, 30, "the revert")
        log = subprocess.run(
            ["git", "log", "-1", "--format=%B", "main"],
            cwd=env_repo.remote,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"Rollback-Of: {bad}" in log and "protocol: MCP probe Failed" in log, log
    finally:
        await daemon.stop()
        server.stop()
