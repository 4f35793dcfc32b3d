"""Faults on the real components; each recovers unattended, reports a clear status meanwhile and loses
nothing:

* the API server SIGKILLed in the middle of a pass's apply, then restarted (own LocalCluster);
* NATS stopped and restarted (own NATS-only LocalCluster): the bus reconnects, durable consumers get what
  was published before the stop and after the restart, the daemon keeps running;
* the Git remote unreachable (the bare repository moved away), then back;
* the cache directory's file system full (a 4 MiB tmpfs), then space freed.

Recovery times are printed as ``RELIABILITY <figure> <seconds>`` lines (and appended as JSON lines to
``$RECONCILER_RELIABILITY_FIGURES`` when set).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _fault_support import (
    EnvRepo,
    Filler,
    apiserver_ready,
    fill,
    mount_tmpfs,
    nats_ready,
    report,
    start_component,
    stop_component,
    unmount,
    wait_for,
)
from reconciler_testing import daemon_settings, until

from reconciler.bus import STREAM_EVENTS, Bus, BusError, reconcile_request_subject, result_subject
from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.devcluster import LocalCluster
from reconciler.errors import SourceError
from reconciler.model import ObjectRef, PassResult
from reconciler.reconcile import PassContext, run_pass
from reconciler.runtime import Daemon
from reconciler.source import GitSource

pytestmark = pytest.mark.integration


def _cm(name: str, value: str = "v") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value}\n"


def _seed(repo: EnvRepo, namespace: str, names: list[str], *, value: str = "v", with_ns: bool = False) -> str:
    """envs/dev.yaml + one overlay holding ConfigMaps ``names`` (and the Namespace object when asked)."""
    for p in (repo.work / "overlays").glob("dev/*.yaml"):
        p.unlink()
    repo.write(
        "envs/dev.yaml",
        f"overlay: overlays/dev\nnamespace: {namespace}\n"
        "sync: {interval: 3600, allowMassPrune: true}\nhealth: {noControllerAfter: 5}\n",
    )
    files = []
    if with_ns:
        repo.write(
            "overlays/dev/namespace.yaml",
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n",
        )
        files.append("namespace.yaml")
    docs = "---\n".join(_cm(n, value) for n in names)
    repo.write("overlays/dev/configmaps.yaml", docs)
    files.append("configmaps.yaml")
    repo.write("overlays/dev/kustomization.yaml", "resources:\n" + "".join(f"- {f}\n" for f in files))
    return str(repo.commit(f"dev: {len(names)} config maps ({value})"))


def _live_names(kube: KubeClient, namespace: str) -> set[str]:
    items, _ = kube.list("", "v1", "ConfigMap", namespace=namespace)
    return {i["metadata"]["name"] for i in items if i["metadata"]["name"] != "kube-root-ca.crt"}


def _inventory_names(kube: KubeClient, source: Path, env: str = "dev") -> set[str]:
    return {
        r.name for r in InventoryStore(kube, source=str(source)).load(env).entries if r.kind == "ConfigMap"
    }


class Results:
    """Collects pass results from the daemon's callback (called in its event loop)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, PassResult]] = []
        self.lock = threading.Lock()

    def __call__(self, result: PassResult) -> None:
        with self.lock:
            self.items.append((time.monotonic(), result))

    def since(self, t: float) -> list[PassResult]:
        with self.lock:
            return [r for ts, r in self.items if ts >= t]


def _daemon(repo: EnvRepo, kubeconfig: Path, cache: Path, results: Results, **kw: Any) -> Daemon:
    settings = daemon_settings(repo.remote, kubeconfig, cache, **{"poll_interval": 0.5, **kw})
    return Daemon(settings, on_result=results)


def _running(daemon: Daemon) -> bool:
    return bool(daemon._tasks) and all(not t.done() for t in daemon._tasks)


# ----------------------------------------------------------------------------------------------------
# API server killed in the middle of an apply


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A Kubernetes-only local cluster of this module's own (the session cluster is never disturbed)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("fault-cluster"), nodes=1, with_nats=False)
    cluster.up(progress=lambda m: None)
    try:
        yield cluster
    finally:
        cluster.down(progress=lambda m: None)


def _kubeconfig(cluster: LocalCluster) -> Path:
    st = cluster.load_state()
    assert st is not None
    return Path(st.kubeconfig)


class ApiserverKiller(threading.Thread):
    """SIGKILLs the API server once the daemon's client has made ``after`` more apply calls."""

    def __init__(self, cluster: LocalCluster, client: KubeClient, after: int) -> None:
        super().__init__(daemon=True, name="apiserver-killer")
        self.cluster, self.client = cluster, client
        self.start_count = client.calls["apply"]
        self.after = after
        self.argv: list[str] = []
        self.killed_at = 0.0
        self.applies_before_kill = 0

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while self.client.calls["apply"] - self.start_count < self.after and time.monotonic() < deadline:
            time.sleep(0.001)
        self.applies_before_kill = self.client.calls["apply"] - self.start_count
        self.argv = stop_component(self.cluster, "kube-apiserver", kill=True)
        self.killed_at = time.monotonic()


def _restart_apiserver(cluster: LocalCluster, argv: list[str]) -> float:
    t0 = time.monotonic()
    start_component(cluster, "kube-apiserver", argv)
    wait_for(lambda: apiserver_ready(cluster), 90, "kube-apiserver ready after restart", interval=0.1)
    return time.monotonic() - t0


UNREACHABLE_WORDS = ("unreachable", "api server", "connection refused", "max retries")


async def _kill_mid_apply(
    cluster: LocalCluster, daemon: Daemon, results: Results, env_repo: EnvRepo, ns: str, names: list[str]
) -> tuple[ApiserverKiller, list[PassResult]]:
    """Commit ``names``, kill the API server after 20 of its applies, and collect the failed passes."""
    killer = ApiserverKiller(cluster, daemon.client, after=20)
    killer.start()
    await asyncio.to_thread(_seed, env_repo, ns, names, with_ns=True)
    await asyncio.to_thread(killer.join, 90)
    assert killer.killed_at, "the API server was not killed (the apply never started)"
    failed = await until(
        lambda: [r for r in results.since(killer.killed_at) if not r.ok][:2],
        60,
        "two failed passes after the kill",
    )
    return killer, failed


async def test_apiserver_killed_mid_apply_then_restarted(
    fault_cluster: LocalCluster, env_repo: EnvRepo, tmp_path: Path
) -> None:
    ns = f"fault-{uuid.uuid4().hex[:6]}"
    kubeconfig = _kubeconfig(fault_cluster)
    kube = KubeClient(kubeconfig)
    base = [f"base-{i}" for i in range(10)]
    _seed(env_repo, ns, base, with_ns=True)
    results = Results()
    daemon = _daemon(env_repo, kubeconfig, tmp_path / "cache", results)
    await daemon.start()
    argv: list[str] = []
    try:
        await until(lambda: any(r.ok for r in results.since(0)), 60, "first pass")
        burst = base + [f"burst-{i:03d}" for i in range(150)]
        killer, failed = await _kill_mid_apply(fault_cluster, daemon, results, env_repo, ns, burst)
        argv = killer.argv
        assert 0 < killer.applies_before_kill < len(burst), "the kill did not land in the middle of the apply"
        # a clear status meanwhile: every pass fails, naming the unreachable API server
        for r in failed:
            assert any(w in r.error.lower() for w in UNREACHABLE_WORDS), r.error
            assert "127.0.0.1" in r.error, r.error
        await asyncio.sleep(1.5)
        assert _running(daemon), "a daemon task ended during the outage"
        outage = results.since(killer.killed_at)
        assert outage and not any(r.ok for r in outage)

        ready_s = await asyncio.to_thread(_restart_apiserver, fault_cluster, argv)
        argv = []
        t_ready = time.monotonic()
        done = await until(
            lambda: [r for r in results.since(t_ready) if r.ok], 60, "a converged pass after the restart"
        )
        converge_s = time.monotonic() - t_ready
        report("apiserver-kill.restart-to-ready", ready_s)
        report("apiserver-kill.ready-to-converged", converge_s, passes_failed=len(outage))
        assert done[0].revision == results.since(killer.killed_at)[0].revision
        # nothing lost: every desired object is live and recorded in the inventory
        assert _live_names(kube, ns) == set(burst)
        assert _inventory_names(kube, env_repo.remote) == set(burst)
    finally:
        if argv:
            await asyncio.to_thread(_restart_apiserver, fault_cluster, argv)
        await daemon.stop()
        kube.close()


def test_objects_of_an_interrupted_apply_are_pruned_when_they_leave_git(
    fault_cluster: LocalCluster, env_repo: EnvRepo, tmp_path: Path
) -> None:
    """Objects created by a pass the API server's death interrupted must reach the inventory, so that a
    revert committed during the outage prunes them: the inventory loses nothing. Passes are run one by
    one (no daemon), so the pass after the restart is the one that sees the revert."""
    ns = f"fault-{uuid.uuid4().hex[:6]}"
    kube = KubeClient(_kubeconfig(fault_cluster))
    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", tmp_path / "cache"), client=kube)
    base = [f"base-{i}" for i in range(10)]
    _seed(env_repo, ns, base, with_ns=True)
    argv: list[str] = []
    try:
        assert run_pass(ctx, "dev", with_health=False).ok
        _seed(env_repo, ns, base + [f"wave-{i:03d}" for i in range(150)], with_ns=True)
        killer = ApiserverKiller(fault_cluster, kube, after=20)
        killer.start()
        interrupted = run_pass(ctx, "dev", with_health=False)
        killer.join(60)
        argv = killer.argv
        assert not interrupted.ok and any(w in interrupted.error.lower() for w in UNREACHABLE_WORDS)
        revert = _seed(env_repo, ns, base, with_ns=True)  # the revert, committed during the outage
        _restart_apiserver(fault_cluster, argv)
        argv = []
        done = run_pass(ctx, "dev", with_health=False)
        assert done.ok and done.revision.endswith(revert), done.error
        leftovers = sorted(_live_names(kube, ns) - set(base))
        assert leftovers == [], (
            f"{len(leftovers)} objects of the interrupted apply were orphaned: {leftovers[:5]}"
        )
        assert _inventory_names(kube, env_repo.remote) == set(base)
    finally:
        if argv:
            _restart_apiserver(fault_cluster, argv)
        kube.close()


# ----------------------------------------------------------------------------------------------------
# NATS stopped and restarted


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A NATS-only local cluster of this test's own (JetStream file store in its state directory)."""
    cluster = LocalCluster(tmp_path / "nats-cluster", with_kubernetes=False)
    cluster.up(progress=lambda m: None)
    try:
        yield cluster
    finally:
        cluster.down(progress=lambda m: None)


def _nats_url(cluster: LocalCluster) -> str:
    st = cluster.load_state()
    assert st is not None
    return st.nats_url


async def _restart_nats(cluster: LocalCluster, argv: list[str]) -> float:
    t0 = time.monotonic()
    start_component(cluster, "nats", argv)
    await until(lambda: nats_ready(cluster), 30, "nats-server ready after restart")
    return time.monotonic() - t0


async def test_nats_stopped_and_restarted_loses_nothing(nats_cluster: LocalCluster) -> None:
    url = _nats_url(nats_cluster)
    subject = reconcile_request_subject("dev")
    pub, sub = Bus(url, name="fault-publisher"), Bus(url, name="fault-consumer")
    await pub.connect()
    await sub.connect()
    got: list[str] = []
    stop_consuming = asyncio.Event()

    async def consume(durable: str) -> None:
        async for msg in sub.consume(STREAM_EVENTS, durable, [subject], batch=5, wait=0.3):
            got.append(msg.headers.get("Nats-Msg-Id", ""))
            await msg.ack()
            if stop_consuming.is_set():
                return

    # the durable consumer exists before anything is published (it delivers new messages only)
    long_lived = asyncio.create_task(consume("fault-durable"))
    await _until_consumer(sub, "fault-durable")
    for i in range(3):
        await pub.publish(subject, b"{}", msg_id=f"before-consumed-{i}")
    await until(lambda: len(got) == 3, 10, "consumption before the stop")
    # a second durable consumer that is not running: its messages wait in the stream across the outage
    await sub.js.add_consumer(STREAM_EVENTS, _consumer_config("fault-offline", subject))
    for i in range(3):
        await pub.publish(subject, b"{}", msg_id=f"before-pending-{i}")
    await until(lambda: len(got) == 6, 10, "the running consumer got the pending messages too")

    argv = stop_component(nats_cluster, "nats", kill=False)
    t_stop = time.monotonic()
    await until(lambda: not pub.connected and not sub.connected, 10, "clients see the outage")
    with pytest.raises(BusError) as info:  # a clear status meanwhile
        await pub.publish(subject, b"{}", msg_id="during-outage", timeout=1.0)
    assert "publish" in str(info.value)
    await asyncio.sleep(1.0)
    assert not long_lived.done(), "the consumer loop died during the outage"

    ready_s = await _restart_nats(nats_cluster, argv)
    t_ready = time.monotonic()
    await until(lambda: pub.connected and sub.connected, 30, "clients reconnected")
    reconnect_s = time.monotonic() - t_ready
    await pub.publish(subject, b"{}", msg_id="after-restart-0")
    await until(
        lambda: "after-restart-0" in got,
        30,
        "the running consumer gets a message published after the restart",
    )
    consumed_s = time.monotonic() - t_ready
    stop_consuming.set()
    report("nats-restart.restart-to-ready", ready_s, outage=round(t_ready - t_stop, 2))
    report("nats-restart.ready-to-reconnected", reconnect_s)
    report("nats-restart.ready-to-consumed", consumed_s)

    # the offline durable consumer gets every message published before the stop, and the new one
    offline: list[str] = []
    psub = await sub.js.pull_subscribe_bind(durable="fault-offline", stream=STREAM_EVENTS)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "after-restart-0" not in offline:
        try:
            for m in await psub.fetch(10, timeout=1):
                offline.append((m.headers or {}).get("Nats-Msg-Id", ""))
                await m.ack()
        except Exception:  # nats-py's fetch timeout: nothing more yet
            continue
    expected = {f"before-pending-{i}" for i in range(3)} | {"after-restart-0"}
    assert expected <= set(offline), offline
    assert {f"before-consumed-{i}" for i in range(3)} <= set(got)
    long_lived.cancel()
    await pub.close()
    await sub.close()


async def _has_consumer(bus: Bus, durable: str) -> bool:
    try:
        await bus.js.consumer_info(STREAM_EVENTS, durable)
    except Exception:
        return False
    return True


async def _until_consumer(bus: Bus, durable: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if await _has_consumer(bus, durable):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"consumer {durable} not created")


def _consumer_config(durable: str, subject: str) -> Any:
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    return ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW,
        filter_subject=subject,
    )


async def test_daemon_keeps_running_through_a_nats_restart(
    nats_cluster: LocalCluster,
    env_repo: EnvRepo,
    kubeconfig: Path,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    """The daemon (session cluster for Kubernetes, this test's NATS) keeps reconciling by poll while NATS is
    down, and after the restart reacts to a reconcile request and publishes its results again."""
    url = _nats_url(nats_cluster)
    _seed(env_repo, namespace, ["nats-a"])
    results = Results()
    daemon = _daemon(env_repo, kubeconfig, tmp_path / "cache", results, nats_url=url, poll_interval=2.0)
    await daemon.start()
    watcher = Bus(url, name="fault-results")
    await watcher.connect()
    try:
        await until(lambda: any(r.ok for r in results.since(0)), 60, "first pass")
        argv = stop_component(nats_cluster, "nats", kill=True)
        t_stop = time.monotonic()
        await until(
            lambda: [r for r in results.since(t_stop) if r.ok], 30, "a poll pass during the NATS outage"
        )
        assert _running(daemon), "a daemon task ended during the NATS outage"
        assert daemon.bus is not None and not daemon.bus.connected
        await _restart_nats(nats_cluster, argv)
        t_ready = time.monotonic()
        await until(lambda: daemon.bus is not None and daemon.bus.connected, 30, "daemon reconnected")
        await until(lambda: watcher.connected, 30, "watcher reconnected")
        seen: list[bytes] = []
        psub = await watcher.js.pull_subscribe(result_subject("dev"), durable=f"watch-{uuid.uuid4().hex[:6]}")
        await watcher.publish(reconcile_request_subject("dev"), b"{}", msg_id=f"req-{uuid.uuid4().hex}")
        request_done = await until(
            lambda: [r for r in results.since(t_ready) if r.trigger.find("request") >= 0],
            30,
            "a pass for the request",
        )
        report("nats-restart.daemon.ready-to-request-pass", time.monotonic() - t_ready)
        assert request_done[0].ok, request_done[0].error
        deadline = time.monotonic() + 20
        while not seen and time.monotonic() < deadline:
            try:
                for m in await psub.fetch(5, timeout=1):
                    seen.append(m.data)
                    await m.ack()
            except Exception:  # fetch timeout
                continue
        assert seen, "no result was published after the restart"
        assert _running(daemon)
    finally:
        await watcher.close()
        await daemon.stop()


async def test_daemon_started_while_nats_is_down_connects_when_it_is_back(
    nats_cluster: LocalCluster,
    env_repo: EnvRepo,
    kubeconfig: Path,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    """A daemon (re)started while NATS is down reconciles by poll, reports NATS as not connected with the
    reason, and starts its NATS consumers once NATS is back."""
    url = _nats_url(nats_cluster)
    _seed(env_repo, namespace, ["nats-late"])
    argv = stop_component(nats_cluster, "nats", kill=True)
    results = Results()
    daemon = _daemon(env_repo, kubeconfig, tmp_path / "cache", results, nats_url=url, poll_interval=2.0)
    await daemon.start()
    watcher = Bus(url, name="fault-late")
    try:
        first = await until(lambda: [r for r in results.since(0) if r.ok], 60, "a pass without NATS")
        assert first[0].trigger == "startup"
        assert kube.get(ObjectRef(kind="ConfigMap", namespace=namespace, name="nats-late")) is not None
        assert daemon.bus is not None and not daemon.bus.connected
        assert daemon.bus_error and url.rsplit(":", 1)[1] in daemon.bus_error
        await _restart_nats(nats_cluster, argv)
        t_ready = time.monotonic()
        await until(lambda: daemon.bus is not None and daemon.bus.connected, 30, "daemon connected")
        assert daemon.bus_error == ""
        await watcher.connect()
        await _until_consumer(watcher, daemon.trigger_durable)
        await watcher.publish(reconcile_request_subject("dev"), b"{}", msg_id=f"req-{uuid.uuid4().hex}")
        done = await until(
            lambda: [r for r in results.since(t_ready) if "request" in r.trigger], 30, "the request's pass"
        )
        report("nats-late.ready-to-request-pass", time.monotonic() - t_ready)
        assert done[0].ok, done[0].error
        assert _running(daemon)
    finally:
        await watcher.close()
        await daemon.stop()


# ----------------------------------------------------------------------------------------------------
# Git remote unreachable


async def test_git_remote_unreachable_then_back(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    _seed(env_repo, namespace, ["git-a"], value="one")
    results = Results()
    daemon = _daemon(env_repo, kubeconfig, tmp_path / "cache", results, drift_watch=False)
    await daemon.start()
    away = env_repo.remote.with_name("remote-away.git")
    ref = ObjectRef(kind="ConfigMap", namespace=namespace, name="git-a")
    try:
        await until(lambda: any(r.ok for r in results.since(0)), 60, "first pass")
        applies = daemon.client.calls["apply"]
        env_repo.remote.rename(away)
        t_gone = time.monotonic()
        failed = await until(lambda: [r for r in results.since(t_gone) if not r.ok][:2], 30, "failed passes")
        url = str(env_repo.remote)
        for r in failed:
            assert "git fetch" in r.error and url in r.error, r.error
        with pytest.raises(SourceError) as info:  # the typed error behind the status
            await asyncio.to_thread(daemon.source.fetch)
        assert url in str(info.value) and info.value.retryable
        # a change pushed to the moved remote while the daemon cannot reach it
        env_repo.write("overlays/dev/configmaps.yaml", _cm("git-a", "two"))
        await asyncio.to_thread(_commit_to, env_repo, away, "two while unreachable")
        await asyncio.sleep(1.5)
        assert _running(daemon), "a daemon task ended while the remote was unreachable"
        assert not any(r.ok for r in results.since(t_gone))
        assert (kube.get(ref) or {})["data"]["key"] == "one"
        assert daemon.client.calls["apply"] == applies, "the daemon wrote while the remote was unreachable"
        away.rename(env_repo.remote)
        t_back = time.monotonic()
        done = await until(
            lambda: [r for r in results.since(t_back) if r.ok], 30, "converged after the remote returned"
        )
        report(
            "git-unreachable.back-to-converged",
            time.monotonic() - t_back,
            passes_failed=len(results.since(t_gone)) - 1,
        )
        assert done[0].ok
        assert (kube.get(ref) or {})["data"]["key"] == "two"
        assert daemon.client.calls["apply"] > applies
    finally:
        if away.exists():
            away.rename(env_repo.remote)
        await daemon.stop()


def _commit_to(repo: EnvRepo, remote: Path, message: str) -> str:
    import git

    from reconciler.source.bootstrap import AUTHOR

    r = git.Repo(repo.work)
    try:
        r.git.add(A=True)
        c = r.index.commit(message, author=AUTHOR, committer=AUTHOR)
        r.git.push(str(remote), "main:main")
        return str(c.hexsha)
    finally:
        r.close()


# ----------------------------------------------------------------------------------------------------
# Cache directory's file system full


@pytest.fixture
def small_cache(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs for the cache directory (mounting needs root, as the project's machines and CI run)."""
    mnt = tmp_path / "cache"
    why = mount_tmpfs(mnt, "4m")
    assert why is None, f"cannot mount a tmpfs to simulate a full disk (run the tests as root): {why}"
    try:
        yield mnt
    finally:
        unmount(mnt)


async def test_cache_disk_full_then_freed(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, small_cache: Path
) -> None:
    _seed(env_repo, namespace, ["disk-a"], value="one")
    results = Results()
    daemon = _daemon(env_repo, kubeconfig, small_cache, results, drift_watch=False)
    await daemon.start()
    ref = ObjectRef(kind="ConfigMap", namespace=namespace, name="disk-a")
    filler: Filler | None = None
    try:
        await until(lambda: any(r.ok for r in results.since(0)), 60, "first pass")
        filler = Filler(small_cache)
        filler.start()
        await asyncio.to_thread(filler.full.wait, 10)
        env_repo.write(
            "overlays/dev/configmaps.yaml", _cm("disk-a", "two") + "---\n" + _cm("disk-b", "x" * 2000)
        )
        sha = env_repo.commit("two, while the cache is full")
        t_full = time.monotonic()
        failed = await until(lambda: [r for r in results.since(t_full) if not r.ok][:2], 30, "failed passes")
        for r in failed:
            low = r.error.lower()
            assert "no space left" in low or "disk" in low or "enospc" in low, r.error
        await asyncio.sleep(1.5)
        assert _running(daemon), "a daemon task ended while the disk was full"
        assert not any(r.ok for r in results.since(t_full))
        assert (kube.get(ref) or {})["data"]["key"] == "one"  # nothing applied
        await asyncio.to_thread(filler.stop)
        filler = None
        t_free = time.monotonic()
        done = await until(
            lambda: [r for r in results.since(t_free) if r.ok], 30, "converged after space was freed"
        )
        report(
            "disk-full.freed-to-converged",
            time.monotonic() - t_free,
            passes_failed=len(results.since(t_full)) - 1,
        )
        assert done[0].revision.endswith(sha)
        assert (kube.get(ref) or {})["data"]["key"] == "two"
        assert not [p for p in (small_cache / "snapshots").rglob("*.tmp*") if p.is_dir()], (
            "partial snapshot left"
        )
    finally:
        if filler is not None:
            await asyncio.to_thread(filler.stop)
        await daemon.stop()


def test_snapshot_into_a_full_disk_fails_cleanly(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, small_cache: Path
) -> None:
    """The revision is already fetched when the disk fills; extracting its snapshot fails with a
    SourceError (not a crash), leaves nothing half-written, and works once space is freed."""
    _seed(env_repo, namespace, ["snap-a"])
    source = GitSource(str(env_repo.remote), "main", small_cache)
    ctx = PassContext(source=source, client=kube)
    rev = source.fetch()
    filler = fill(small_cache)
    try:
        result = run_pass(ctx, "dev", revision=rev, with_health=False)
        assert not result.ok
        assert "no space left" in result.error.lower(), result.error
        assert not (source.snapshot_dir / rev.sha / ".complete").exists()
    finally:
        filler.unlink()
    again = run_pass(ctx, "dev", revision=rev, with_health=False)
    assert again.ok, again.error
    assert kube.get(ObjectRef(kind="ConfigMap", namespace=namespace, name="snap-a")) is not None
    assert not [p for p in source.snapshot_dir.iterdir() if p.name.endswith(".tmp")]
    shutil.rmtree(source.snapshot_dir, ignore_errors=True)
