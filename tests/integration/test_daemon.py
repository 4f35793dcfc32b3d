"""The walking skeleton end to end: Git (bare remote) → render → server-side apply → prune → drift →
NATS triggers, on the real control plane."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from reconciler_testing import EnvRepo, daemon_settings, until

from reconciler.bus import Bus, git_push_subject
from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.model import Action, HealthState, HealthStatus, ObjectRef, PassResult
from reconciler.reconcile import PassContext, run_pass
from reconciler.runtime import Daemon
from reconciler.source import GitSource

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: clock-mcp
spec:
  replicas: 1
  selector:
    matchLabels: {app: clock-mcp}
  template:
    metadata:
      labels: {app: clock-mcp}
    spec:
      containers:
      - name: server
        image: ghcr.io/acme/clock-mcp:0.1.0
        resources:
          requests: {cpu: 100m, memory: 64Mi}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: clock-mcp
spec:
  selector: {app: clock-mcp}
  ports:
  - name: mcp
    port: 3000
"""
CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: clock-config
data:
  TZ: UTC
"""


def _seed(
    repo: EnvRepo, namespace: str, *, tag: str = "0.1.0", sync: str = "", health: str = "noControllerAfter: 5"
) -> str:
    repo.write(
        "envs/dev.yaml",
        f"overlay: overlays/dev\nnamespace: {namespace}\n"
        f"sync: {{interval: 3600, allowMassPrune: true{sync}}}\nhealth: {{{health}}}\n",
    )
    repo.write(
        "overlays/dev/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n- configmap.yaml\n"
        f"images:\n- name: ghcr.io/acme/clock-mcp\n  newTag: {tag}\n",
    )
    repo.write("overlays/dev/deployment.yaml", DEPLOY)
    repo.write("overlays/dev/service.yaml", SERVICE)
    repo.write("overlays/dev/configmap.yaml", CONFIG)
    return repo.commit("dev: clock MCP server")


def _ctx(repo: EnvRepo, kube: KubeClient, cache_dir: Path) -> PassContext:
    return PassContext(source=GitSource(str(repo.remote), "main", cache_dir), client=kube)


def _image(kube: KubeClient, ns: str) -> str:
    live = kube.get(ObjectRef(group="apps", kind="Deployment", namespace=ns, name="clock-mcp")) or {}
    return str(live["spec"]["template"]["spec"]["containers"][0]["image"])


def test_first_pass_image_change_and_prune(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    sha = _seed(env_repo, namespace)
    ctx = _ctx(env_repo, kube, cache_dir)

    first = run_pass(ctx, "dev")
    assert first.ok, first.error
    assert first.revision == f"main@sha1:{sha}"
    assert first.changes.count(Action.CREATED) == 3
    assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.1.0"
    inventory = InventoryStore(kube, source=str(env_repo.remote)).load("dev")
    assert {str(r) for r in inventory.entries} == {
        f"Deployment/{namespace}/clock-mcp",
        f"Service/{namespace}/clock-mcp",
        f"ConfigMap/{namespace}/clock-config",
    }

    before = dict(kube.calls)
    again = run_pass(ctx, "dev", with_health=False)
    assert again.ok and again.changes.count(Action.UNCHANGED) == 3
    writes = sum(kube.calls[v] - before.get(v, 0) for v in ("apply", "delete", "dry-run"))
    assert writes == 0  # a no-op pass makes no write call at all

    env_repo.write(
        "overlays/dev/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n- configmap.yaml\n"
        "images:\n- name: ghcr.io/acme/clock-mcp\n  newTag: 0.2.0\n",
    )
    env_repo.commit("dev: clock 0.2.0")
    second = run_pass(ctx, "dev")
    assert second.ok, second.error
    configured = [str(c.ref) for c in second.changes.entries if c.action is Action.CONFIGURED]
    assert configured == [f"Deployment/{namespace}/clock-mcp"]
    assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.2.0"

    env_repo.remove("overlays/dev/configmap.yaml")
    env_repo.write(
        "overlays/dev/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n"
        "images:\n- name: ghcr.io/acme/clock-mcp\n  newTag: 0.2.0\n",
    )
    env_repo.commit("dev: drop the config map")
    third = run_pass(ctx, "dev")
    assert third.ok, third.error
    deleted = [str(c.ref) for c in third.changes.entries if c.action is Action.DELETED]
    assert deleted == [f"ConfigMap/{namespace}/clock-config"]
    assert kube.get(ObjectRef(kind="ConfigMap", namespace=namespace, name="clock-config")) is None
    assert kube.get(ObjectRef(kind="Service", namespace=namespace, name="clock-mcp")) is not None
    assert len(InventoryStore(kube, source=str(env_repo.remote)).load("dev").entries) == 2


def test_a_no_op_pass_judges_health_from_what_it_read(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    """A pass that writes nothing judges health from the live copies it read for the apply (no second
    read of any object), and the verdicts equal a fresh reading; objects it wrote are read again."""
    from reconciler.reconcile import assess_health, wait_for_health

    _seed(env_repo, namespace)
    ctx = _ctx(env_repo, kube, cache_dir)
    assert run_pass(ctx, "dev").ok
    refs = [d.ref for d in ctx.last_desired["dev"]]
    settled = wait_for_health(kube, refs, timeout=60, no_controller_after=5)  # nothing changes from here
    assert all(h.state.value == "Healthy" for h in settled.values()), settled
    kube.calls.clear()
    assert run_pass(ctx, "dev", with_health=False).ok
    reads_without_health = kube.calls["list"] + kube.calls["get"] - kube.calls["retry"]
    kube.calls.clear()
    noop = run_pass(ctx, "dev")
    assert noop.ok and noop.changes.count(Action.UNCHANGED) == 3, noop.error
    assert kube.calls["list"] + kube.calls["get"] - kube.calls["retry"] == reads_without_health
    fresh = assess_health(kube, refs, no_controller_after=5)
    assert {k: v.state for k, v in noop.health.items()} == {k: v.state for k, v in fresh.items()}

    _seed(env_repo, namespace, tag="0.2.0")  # the Deployment changes: its health is read after the write
    kube.calls.clear()
    changed = run_pass(ctx, "dev")
    assert changed.ok and changed.changes.count(Action.CONFIGURED) == 1, changed.error
    assert kube.calls["list"] + kube.calls["get"] - kube.calls["retry"] > reads_without_health


def test_invalid_yaml_fails_with_file_and_line_and_applies_nothing(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    _seed(env_repo, namespace)
    ctx = _ctx(env_repo, kube, cache_dir)
    assert run_pass(ctx, "dev").ok
    # one commit: a valid image change plus a broken file → nothing of it may be applied
    env_repo.write(
        "overlays/dev/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n- configmap.yaml\n"
        "images:\n- name: ghcr.io/acme/clock-mcp\n  newTag: 0.3.0\n",
    )
    env_repo.write(
        "overlays/dev/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: [unclosed\n",
    )
    env_repo.commit("broken")
    broken = run_pass(ctx, "dev")
    assert not broken.ok
    assert "overlays/dev/configmap.yaml:" in broken.error
    assert broken.changes.entries == []
    assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.1.0"

    env_repo.write("overlays/dev/configmap.yaml", CONFIG)
    env_repo.commit("fixed")
    fixed = run_pass(ctx, "dev")
    assert fixed.ok, fixed.error
    assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.3.0"


def test_schema_invalid_object_applies_nothing(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    _seed(env_repo, namespace)
    ctx = _ctx(env_repo, kube, cache_dir)
    assert run_pass(ctx, "dev").ok
    env_repo.write(
        "overlays/dev/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n- configmap.yaml\n"
        "images:\n- name: ghcr.io/acme/clock-mcp\n  newTag: 0.4.0\n",
    )
    env_repo.write("overlays/dev/service.yaml", SERVICE.replace("port: 3000", "port: 70000"))
    env_repo.commit("invalid port")
    result = run_pass(ctx, "dev")
    assert not result.ok
    assert f"Service/{namespace}/clock-mcp" in result.error
    assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.1.0"


async def test_daemon_drift_push_trigger_and_recovery(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path, nats_url: str
) -> None:
    _seed(env_repo, namespace)
    results: list[PassResult] = []
    drifts: list[dict[str, Any]] = []
    settings = daemon_settings(env_repo.remote, kubeconfig, cache_dir, nats_url=nats_url)
    daemon = Daemon(settings, on_result=results.append, on_drift=drifts.append)
    await daemon.start()
    try:
        await until(lambda: results, 30)
        assert results[0].ok, results[0].error
        dep = ObjectRef(group="apps", version="v1", kind="Deployment", namespace=namespace, name="clock-mcp")

        # drift: another field manager changes a field we own → restored by the watch
        await asyncio.to_thread(
            kube.apply,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "clock-mcp", "namespace": namespace},
                "spec": {"template": {"spec": {"containers": [{"name": "server", "image": "evil/image:1"}]}}},
            },
            dep,
            field_manager="kubectl-edit",
            force=True,
        )
        t_edit = time.monotonic()
        await until(lambda: any(d.get("corrected") for d in drifts), 10)
        restored = time.monotonic() - t_edit
        assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.1.0"
        assert drifts[0]["paths"] == ["spec.template.spec.containers[name=server].image"]
        assert "kubectl-edit" in drifts[0]["managers"]
        assert restored < 5.0

        # NATS push event → a pass starts within 1 s
        sha = await asyncio.to_thread(_seed, env_repo, namespace, tag="0.5.0")
        bus = Bus(nats_url, name="test-publisher")
        await bus.connect()
        n = len(results)
        t_pub = time.time()
        await bus.publish(git_push_subject("acme/envs"), b'{"ref": "refs/heads/main"}', msg_id=f"push-{sha}")
        await bus.close()
        await until(lambda: len(results) > n and results[-1].revision.endswith(sha), 15)
        assert results[-1].trigger == "git-push"
        assert results[-1].started_at - t_pub < 1.0
        assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.5.0"

        # a broken commit fails the pass, the daemon keeps running, the next good commit applies
        env_repo.write("overlays/dev/service.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
        await asyncio.to_thread(env_repo.commit, "broken")
        bad = await daemon.trigger("dev", "test")
        assert not bad.ok and "overlays/dev/service.yaml" in bad.error
        env_repo.write("overlays/dev/service.yaml", SERVICE)
        good_sha = await asyncio.to_thread(env_repo.commit, "fixed")
        good = await daemon.trigger("dev", "test")
        assert good.ok and good.revision.endswith(good_sha)
    finally:
        await daemon.stop()


async def test_triggers_coalesce(
    env_repo: EnvRepo, kubeconfig: Path, namespace: str, cache_dir: Path
) -> None:
    _seed(env_repo, namespace)
    settings = daemon_settings(env_repo.remote, kubeconfig, cache_dir, drift_watch=False)
    daemon = Daemon(settings)
    await daemon.start()
    try:
        first = await daemon.trigger("dev", "a")
        assert first.ok
        passes = daemon.envs["dev"].passes
        futures = [daemon.trigger("dev", f"burst-{i}") for i in range(20)]
        await asyncio.gather(*futures)
        # twenty triggers while idle/running collapse into at most two passes
        assert daemon.envs["dev"].passes - passes <= 2
    finally:
        await daemon.stop()


async def test_a_poll_never_applies_a_head_older_than_the_last_pass(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    """Polls share one fetch for POLL_FETCH_TTL seconds, but never a fetch that started before the one
    behind the environment's last pass: a head fetched just before a commit that a push-triggered pass
    has applied since would put the older revision back (briefly, until the next pass)."""
    _seed(env_repo, namespace)
    daemon = Daemon(daemon_settings(env_repo.remote, kubeconfig, cache_dir))
    await daemon.start()
    try:
        first = await daemon.trigger("dev", "a")
        assert first.ok, first.error
        old_head, _ = await daemon._shared_head()  # another environment's poll fetched the branch
        new = _seed(env_repo, namespace, tag="0.1.1")
        pushed = await daemon.trigger("dev", "git-push")
        assert pushed.ok and pushed.revision.endswith(new), pushed
        polled = await daemon._pass(daemon.envs["dev"], "poll", time.monotonic())  # within the TTL
        assert polled.ok and polled.revision.endswith(new), (polled.revision, str(old_head))
        assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.1.1"
    finally:
        await daemon.stop()


async def test_passes_triggered_together_share_one_fetch_never_one_from_before_the_trigger(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    """`reconciler sync` of every environment asks for as many passes at once: they share one `git fetch`
    that started after they were asked for. A trigger that comes after a fetch started never gets that
    fetch's head (the push it announces may be newer)."""
    _seed(env_repo, namespace)
    env_repo.write(
        "envs/qa.yaml",
        f"overlay: overlays/dev\nnamespace: {namespace}-qa\nsync: {{interval: 3600}}\n"
        "health: {noControllerAfter: 5}\n",
    )
    env_repo.commit("qa: the same overlay in its own namespace")
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{namespace}-qa"}},
        ObjectRef(kind="Namespace", name=f"{namespace}-qa"),
        field_manager="test",
    )
    daemon = Daemon(daemon_settings(env_repo.remote, kubeconfig, cache_dir, envs=["dev", "qa"]))
    await daemon.start()
    fetches: list[float] = []
    fetch = daemon.source.fetch

    def counted() -> Any:
        fetches.append(time.monotonic())
        return fetch()

    daemon.source.fetch = counted  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(*daemon.trigger_all("sync"))
        assert all(r.ok for r in results), [r.error for r in results]
        assert len(fetches) == 1 and results[0].revision == results[1].revision
        new = _seed(env_repo, namespace, tag="0.1.1")  # pushed after that fetch
        pushed = await daemon.trigger("dev", "git-push")
        assert len(fetches) == 2 and pushed.ok and pushed.revision.endswith(new), pushed
        assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.1.1"
    finally:
        await daemon.stop()
        kube.delete(ObjectRef(kind="Namespace", name=f"{namespace}-qa"))


@pytest.mark.parametrize("env_name", ["dev", "staging", "prod"])
def test_example_environments_apply(
    example_repo: EnvRepo, kube: KubeClient, cache_dir: Path, env_name: str
) -> None:
    ctx = _ctx(example_repo, kube, cache_dir)
    result = run_pass(ctx, env_name)
    assert result.ok, result.error
    kinds = {c.ref.kind for c in result.changes.entries}
    assert {"Namespace", "Deployment", "Service", "Agent", "ModelConfig", "HTTPRoute", "Gateway"} <= kinds
    assert {"StatefulSet", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    assert {"MCPServer", "RemoteMCPServer", "AgentgatewayBackend", "AgentgatewayPolicy"} <= kinds


async def test_drift_during_a_pass_is_checked_again_when_the_pass_ends(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    """A watch event that arrives while a pass runs is left to the pass, which may have read the object
    before the change: when the pass ends the object is read again and its drift corrected."""
    _seed(env_repo, namespace)
    results: list[PassResult] = []
    drifts: list[dict[str, Any]] = []
    settings = daemon_settings(env_repo.remote, kubeconfig, cache_dir)
    daemon = Daemon(settings, on_result=results.append, on_drift=drifts.append)
    await daemon.start()
    try:
        await until(lambda: results, 30)
        assert results[0].ok, results[0].error
        state = daemon.envs["dev"]
        await until(lambda: daemon._watchers, 10, "the drift watches run")
        state.running = True  # what the worker sets while a pass runs
        dep = ObjectRef(group="apps", version="v1", kind="Deployment", namespace=namespace, name="clock-mcp")
        edit = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "clock-mcp", "namespace": namespace},
            "spec": {"template": {"spec": {"containers": [{"name": "server", "image": "evil/image:2"}]}}},
        }
        await asyncio.to_thread(kube.apply, edit, dep, field_manager="kubectl-edit", force=True)
        cluster = daemon._target("dev").id  # the drift watches' keys are (target cluster, object)
        await until(lambda: (cluster, dep.key) in state.missed, 10, "the watch saw the edit during the pass")
        assert not drifts and _image(kube, namespace) == "evil/image:2"
        await daemon._recheck("dev", daemon._end_pass(state))  # what the worker does when the pass ends
        await until(lambda: any(d.get("corrected") for d in drifts), 10, "drift corrected after the pass")
        assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.1.0"
        assert drifts[0]["paths"] == ["spec.template.spec.containers[name=server].image"]
    finally:
        await daemon.stop()


async def test_a_newer_revision_applied_by_another_writer_is_not_reverted(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    """`reconciler reconcile` (here: a pass of its own) applies a newer commit while the daemon runs: the
    drift the daemon's watch sees against its older pass is not written back; a pass follows instead."""
    _seed(env_repo, namespace)
    results: list[PassResult] = []
    drifts: list[dict[str, Any]] = []
    daemon = Daemon(
        daemon_settings(env_repo.remote, kubeconfig, tmp_path / "daemon-cache"),
        on_result=results.append,
        on_drift=drifts.append,
    )
    await daemon.start()
    try:
        await until(lambda: results, 30)
        assert results[0].ok, results[0].error
        await until(lambda: daemon._watchers, 10, "the drift watches run")
        sha = await asyncio.to_thread(_seed, env_repo, namespace, tag="0.7.0")
        cli = await asyncio.to_thread(run_pass, _ctx(env_repo, kube, tmp_path / "cli-cache"), "dev")
        assert cli.ok and cli.revision.endswith(sha), cli.error
        followed = await until(
            lambda: [r for r in results[1:] if r.trigger == "drift" and r.revision.endswith(sha)],
            30,
            "a pass at the new revision",
        )
        assert followed[0].ok, followed[0].error
        assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.7.0"
        assert all(d.get("superseded_by", "").endswith(sha) for d in drifts), drifts
    finally:
        await daemon.stop()
    assert _image(kube, namespace) == "ghcr.io/acme/clock-mcp:0.7.0"


async def test_health_judged_from_the_drift_watches_matches_the_api_server(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    """The status page's live health comes from the drift watches' copies when they hold every object
    (no API call), and equals a reading from the API server; an object the watches no longer hold (it
    was deleted) sends the reading back to the API server, which says it is gone."""
    from reconciler.reconcile import assess_health

    _seed(env_repo, namespace, sync=", drift: warn")  # a deletion is reported, not corrected: it stays
    daemon = Daemon(daemon_settings(env_repo.remote, kubeconfig, cache_dir))
    await daemon.start()
    try:
        first = await daemon.trigger("dev", "a")
        assert first.ok, first.error
        refs = [d.ref for d in daemon.ctx.last_desired["dev"]]

        def states(health: dict[str, HealthStatus] | None) -> dict[str, HealthState] | None:
            return None if health is None else {k: v.state for k, v in health.items()}

        # The rollout goes on after the pass: read the API server once it has settled (all Healthy), then
        # the watches must reach that same reading (they lag the server by a delivery, never go back).
        direct = await until(
            lambda: (
                (h := assess_health(kube, refs, no_controller_after=5))
                and all(v.state is HealthState.HEALTHY for v in h.values())
                and h
            ),
            30,
            "the API server says every object is healthy",
        )
        await until(
            lambda: states(daemon.watched_health("dev")) == states(direct), 15, "the watches read the same"
        )
        watched = daemon.watched_health("dev")
        assert watched is not None and set(watched) == {str(r) for r in refs}
        cm = next(r for r in refs if r.kind == "ConfigMap")
        await asyncio.to_thread(kube.delete, cm)
        await until(lambda: daemon.watched_health("dev") is None, 10, "the watch saw the deletion")
        assert await asyncio.to_thread(kube.get, cm) is None
    finally:
        await daemon.stop()


async def _watched_daemon(
    env_repo: EnvRepo, kubeconfig: Path, namespace: str, cache_dir: Path, drifts: list[dict[str, Any]]
) -> Daemon:
    """A started daemon of the seeded ``dev`` (``drift: warn``, drift events into ``drifts``) after its first
    pass, once its drift watches hold every object; the caller stops it."""
    _seed(env_repo, namespace, sync=", drift: warn")
    daemon = Daemon(daemon_settings(env_repo.remote, kubeconfig, cache_dir), on_drift=drifts.append)
    await daemon.start()
    try:
        first = await daemon.trigger("dev", "a")
        assert first.ok, first.error
        await until(lambda: daemon.watched_health("dev"), 15, "the watches hold every object")
    except BaseException:
        await daemon.stop()
        raise
    return daemon


async def test_drift_watches_go_on_from_their_last_version_when_the_server_ends_them(
    env_repo: EnvRepo,
    kubeconfig: Path,
    kube: KubeClient,
    namespace: str,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A drift watch the API server ends (its ``timeoutSeconds``) is opened again from the last
    resourceVersion it delivered: each kind is listed once, not once per watch, and a change made after
    several watches ended is still seen (and reported as drift)."""
    from reconciler.runtime import daemon as daemon_module

    monkeypatch.setattr(daemon_module, "WATCH_SECONDS", 1)
    lists: list[str] = []
    real_list = KubeClient.list

    def counting_list(self: KubeClient, group: str, version: str, kind: str, **kw: Any) -> Any:
        if threading.current_thread().name.startswith("watch-") and not kw.get("namespace"):
            lists.append(kind)
        return real_list(self, group, version, kind, **kw)

    monkeypatch.setattr(KubeClient, "list", counting_list)
    drifts: list[dict[str, Any]] = []
    daemon = await _watched_daemon(env_repo, kubeconfig, namespace, cache_dir, drifts)
    try:
        await asyncio.sleep(4.5)  # each watch ended by the server about four times
        assert sorted(lists) == ["ConfigMap", "Deployment", "Service"], lists
        cm = ObjectRef(kind="ConfigMap", namespace=namespace, name="clock-config")
        live = await asyncio.to_thread(kube.get, cm)
        assert live is not None
        live["data"]["TZ"] = "Europe/Paris"
        await asyncio.to_thread(kube.replace, live, cm)
        await until(lambda: any(d["object"] == str(cm) for d in drifts), 10, "the drift seen")
        assert next(d for d in drifts if d["object"] == str(cm))["paths"] == ["data.TZ"]
        assert sorted(lists) == ["ConfigMap", "Deployment", "Service"], lists
    finally:
        await daemon.stop()


async def test_a_health_gate_judges_from_the_drift_watches(
    env_repo: EnvRepo, kubeconfig: Path, namespace: str, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiting health gate reads the drift watches' copies once they hold every object, not the API
    server: of its readings of a Deployment that never becomes available, at most the first (before the
    watches were listed) lists from the API server; its verdict is still the timeout."""
    from reconciler.runtime import daemon as daemon_module

    api_readings: list[str] = []
    real_assess = daemon_module.assess_health

    def counting_assess(*args: Any, **kw: Any) -> Any:
        if threading.current_thread().name.startswith("reconciler-gate"):
            api_readings.append("api")
        return real_assess(*args, **kw)

    monkeypatch.setattr(daemon_module, "assess_health", counting_assess)
    _seed(env_repo, namespace, health="timeout: 12")
    env_repo.write(  # never scheduled: the gate reads until its timeout
        "overlays/dev/deployment.yaml",
        DEPLOY.replace("    spec:\n", "    spec:\n      nodeSelector: {reconciler.test/none: none}\n", 1),
    )
    env_repo.commit("dev: a Deployment that never becomes available")
    daemon = Daemon(daemon_settings(env_repo.remote, kubeconfig, cache_dir))
    watched: list[bool] = []
    real_watched = daemon.watched_health

    def counting_watched(name: str) -> Any:
        out = real_watched(name)
        if threading.current_thread().name.startswith("reconciler-gate"):
            watched.append(out is not None)
        return out

    monkeypatch.setattr(daemon, "watched_health", counting_watched)
    await daemon.start()
    try:
        first = await daemon.trigger("dev", "a")
        assert first.ok, first.error
        state = daemon.envs["dev"]
        await until(lambda: bool(state.gate), 40, "the gate's verdict")
        assert state.gate.startswith("failed"), state.gate
        assert watched.count(True) >= 3, watched  # readings 1, 2, 4, 5 s apart within 12 s
        assert len(api_readings) <= 1 and len(api_readings) == watched.count(False), (api_readings, watched)
    finally:
        await daemon.stop()


async def test_the_watches_view_holds_the_pass_writes_and_never_goes_back(
    env_repo: EnvRepo,
    kubeconfig: Path,
    kube: KubeClient,
    namespace: str,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When a pass has ended, the drift watches' view already holds what the pass wrote (its health reading
    enters the view), so a gate judging the view never sees the object from before the pass, even when the
    watch lags (here its Deployment events are held back 2 s); and a reading older than the copy held (a
    read that raced a watch event) never replaces it."""
    real_watch = KubeClient.watch

    def lagging_watch(self: KubeClient, group: str, version: str, kind: str, **kw: Any) -> Any:
        for event in real_watch(self, group, version, kind, **kw):
            if kind == "Deployment":
                time.sleep(2.0)
            yield event

    monkeypatch.setattr(KubeClient, "watch", lagging_watch)
    drifts: list[dict[str, Any]] = []
    daemon = await _watched_daemon(env_repo, kubeconfig, namespace, cache_dir, drifts)
    try:
        env_repo.write(
            "overlays/dev/kustomization.yaml",
            "resources:\n- deployment.yaml\n- service.yaml\n- configmap.yaml\n"
            "images:\n- name: ghcr.io/acme/clock-mcp\n  newTag: 0.9.0\n",
        )
        env_repo.commit("dev: clock 0.9.0")
        second = await daemon.trigger("dev", "b")
        assert second.ok, second.error
        cid = daemon._target("dev").id
        deploy = ObjectRef(group="apps", kind="Deployment", namespace=namespace, name="clock-mcp")
        held = daemon._live[(cid, deploy.key)]  # at once: no waiting for the watch event
        assert held["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/clock-mcp:0.9.0"

        cm = ObjectRef(kind="ConfigMap", namespace=namespace, name="clock-config")
        current = daemon._live[(cid, cm.key)]
        stale = {**current, "metadata": {**current["metadata"]}, "data": {"TZ": "Asia/Tokyo"}}
        stale["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) - 1)
        daemon._on_live(cid, stale)
        await asyncio.sleep(0.5)
        assert daemon._live[(cid, cm.key)]["data"] == {"TZ": "UTC"}
        assert not [d for d in drifts if d["object"] == str(cm)], drifts
    finally:
        await daemon.stop()


async def test_stop_waits_for_the_health_gates_it_ends(
    env_repo: EnvRepo, kubeconfig: Path, namespace: str, cache_dir: Path
) -> None:
    """A health gate still waiting when the daemon stops ends, and :meth:`Daemon.stop` returns only after
    its thread has: nothing of the daemon writes into the checkout after ``stop`` (its owner may remove
    it)."""
    _seed(env_repo, namespace, health="timeout: 600")
    env_repo.write(  # never scheduled: the gate waits its whole timeout unless stopped
        "overlays/dev/deployment.yaml",
        DEPLOY.replace("    spec:\n", "    spec:\n      nodeSelector: {reconciler.test/none: none}\n", 1),
    )
    env_repo.commit("dev: a Deployment that never becomes available")
    daemon = Daemon(daemon_settings(env_repo.remote, kubeconfig, cache_dir))
    await daemon.start()
    try:
        first = await daemon.trigger("dev", "a")
        assert first.ok, first.error
        await until(
            lambda: any(t.name.startswith("reconciler-gate") for t in threading.enumerate()),
            15,
            "a gate waiting",
        )
    finally:
        await daemon.stop()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("reconciler-gate")]
