"""`reconciler cluster up` after faults brings the same local cluster back, and never erases it.

On a cluster of this module's own (every component is killed here):

* each component killed in turn (etcd, kube-apiserver, controller-manager, scheduler, kwok, nats-server,
  prometheus), then `cluster up`: only that component starts again, on its recorded ports; every object,
  inventory and JetStream message is still there, and a daemon that kept running is ready again within
  10 s, passes, and corrects drift again (its watches resumed), without a restart;
* a "reboot" (every process gone, the state directory intact): `cluster up` brings the same cluster back
  on the same ports with its data;
* a recorded port taken by another process meanwhile: a clear error naming the component, the port and
  the way out; nothing else is touched;
* `cluster down` keeps the data for the next `cluster up`; only `cluster down --purge` erases it.

Recovery times are printed as ``RELIABILITY cluster-up.* <seconds>`` lines.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from reconciler_testing import EnvRepo, daemon_settings, free_port, kill_group, report_figure, until

from reconciler.bus import Bus, reconcile_request_subject
from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.devcluster import LocalCluster, process
from reconciler.devcluster.cluster import DEFAULT_ORDER as ORDER
from reconciler.model import ObjectRef, PassResult
from reconciler.runtime import Daemon
from reconciler.runtime.http import start_http

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "reconciler.cli"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A local cluster + NATS of this module's own (one kwok node)."""
    c = LocalCluster(tmp_path_factory.mktemp("restart") / "state", nodes=1)
    c.up(progress=lambda m: None)
    try:
        yield c
    finally:
        c.down(progress=lambda m: None)
    assert process.processes_of(str(c.state_dir)) == []


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )


def _cluster_up(cluster: LocalCluster) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    proc = _cli("cluster", "up", "--state-dir", str(cluster.state_dir), "--no-crds")
    return proc, time.monotonic() - t0


def _kill(pid: int) -> None:
    """SIGKILL the process group ``pid`` and wait until none of it is left."""
    kill_group(pid)


def _cm(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: v\n"


def _seed(repo: EnvRepo, namespace: str, names: list[str]) -> None:
    repo.write(
        "envs/dev.yaml",
        f"overlay: overlays/dev\nnamespace: {namespace}\nsync: {{interval: 3600}}\n"
        "health: {noControllerAfter: 5}\n",
    )
    repo.write(
        "overlays/dev/namespace.yaml", f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"
    )
    repo.write("overlays/dev/configmaps.yaml", "---\n".join(_cm(n) for n in names))
    repo.write("overlays/dev/kustomization.yaml", "resources:\n- namespace.yaml\n- configmaps.yaml\n")
    repo.commit("dev: config maps")


def _objects(kube: KubeClient, namespace: str) -> dict[str, str]:
    """name → uid of the namespace's ConfigMaps (uids change when an object is created anew)."""
    items, _ = kube.list("", "v1", "ConfigMap", namespace=namespace)
    return {
        i["metadata"]["name"]: i["metadata"]["uid"]
        for i in items
        if i["metadata"]["name"] != "kube-root-ca.crt"
    }


def _inventory(kube: KubeClient, source: Path) -> tuple[str, list[str]]:
    inv = InventoryStore(kube, source=str(source)).load("dev")
    return inv.revision, sorted(str(r) for r in inv.entries)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def _until_ready(port: int, timeout: float, what: str, *, ready: bool = True) -> None:
    """Wait until the daemon's ``/readyz`` (served in this event loop) answers 200 (or, with
    ``ready=False``, anything else)."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(_ready, port) is not ready:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def _stream_messages(url: str, subject: str) -> int:
    bus = Bus(url, name="restart-test")
    await bus.connect()
    try:
        info = await bus.js.stream_info("RECONCILER", subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))
    finally:
        await bus.close()


async def _publish(url: str, subject: str, data: bytes) -> None:
    bus = Bus(url, name="restart-test")
    await bus.connect()
    try:
        await bus.publish(subject, data, msg_id=uuid.uuid4().hex)
    finally:
        await bus.close()


async def test_cluster_up_restarts_each_killed_component_with_its_data_and_the_daemon_recovers(
    cluster: LocalCluster, env_repo: EnvRepo, tmp_path: Path
) -> None:
    st = cluster.load_state()
    assert st is not None
    kc = Path(st.kubeconfig)
    kube = KubeClient(kc)
    ns = f"restart-{uuid.uuid4().hex[:6]}"
    _seed(env_repo, ns, ["kept-a", "kept-b"])
    results: list[PassResult] = []
    daemon = Daemon(
        daemon_settings(env_repo.remote, kc, tmp_path / "cache", nats_url=st.nats_url, poll_interval=3600),
        on_result=results.append,
    )
    http_port = free_port()
    runner = await start_http(daemon, "127.0.0.1", http_port)
    await daemon.start()
    subject = f"reconciler.test.restart.{uuid.uuid4().hex[:6]}"
    try:
        await until(lambda: any(r.ok for r in results), 90, "the first pass")
        await _publish(st.nats_url, subject, b"kept")
        objects = await asyncio.to_thread(_objects, kube, ns)
        inventory = await asyncio.to_thread(_inventory, kube, env_repo.remote)
        assert set(objects) == {"kept-a", "kept-b"} and len(inventory[1]) == 3
        await _until_ready(http_port, 30, "the daemon ready before the faults")
        for name in ORDER:
            before = cluster.load_state()
            assert before is not None
            await asyncio.to_thread(_kill, before.pids[name])
            assert cluster.running()[name] is False
            if name in ("kube-apiserver", "nats"):  # the daemon notices (its readiness is not stale)
                await _until_ready(http_port, 15, f"the daemon not ready without {name}", ready=False)
            proc, up_s = await asyncio.to_thread(_cluster_up, cluster)
            assert proc.returncode == 0, proc.stderr
            t_up = time.monotonic()
            after = cluster.load_state()
            assert after is not None
            assert after.ports == before.ports, f"{name}: ports changed"
            assert after.pids[name] != before.pids[name]
            assert {n: p for n, p in after.pids.items() if n != name} == {
                n: p for n, p in before.pids.items() if n != name
            }, f"{name}: cluster up restarted components that were running"
            assert all(cluster.running().values())
            await _until_ready(http_port, 10, f"the daemon ready after {name} came back")
            ready_s = time.monotonic() - t_up
            done = await asyncio.wait_for(daemon.trigger("dev", "test"), 60)
            assert done.ok, f"pass after {name} came back: {done.error}"
            assert await asyncio.to_thread(_objects, kube, ns) == objects, f"objects lost after {name}"
            assert await asyncio.to_thread(_inventory, kube, env_repo.remote) == inventory
            assert await _stream_messages(st.nats_url, subject) == 1, f"JetStream message lost after {name}"
            report_figure(f"cluster-up.{name}.command", up_s)
            report_figure(f"cluster-up.{name}.daemon-ready", ready_s)
        # the NATS trigger consumer outlived nats-server's restart: a reconcile request runs a pass
        t_req = len(results)
        await _publish(st.nats_url, reconcile_request_subject("dev"), b"{}")
        await until(
            lambda: [r for r in results[t_req:] if "request" in r.trigger], 30, "a pass for a NATS request"
        )
        # the drift watches resumed after the API server's restart: a changed object is corrected
        ref = ObjectRef(kind="ConfigMap", namespace=ns, name="kept-a")
        live = kube.get(ref)
        assert live is not None
        live["data"] = {"key": "drifted"}
        kube.replace(live, ref)
        await until(
            lambda: (kube.get(ref) or {}).get("data") == {"key": "v"},
            15,
            "drift corrected after the restarts",
        )
    finally:
        await daemon.stop()
        await runner.cleanup()
        kube.close()


def test_cluster_up_after_a_reboot_brings_the_same_cluster_back(cluster: LocalCluster) -> None:
    """Every process gone (as after a reboot), the state directory intact: the same cluster comes back on
    its ports, with its objects and JetStream messages."""
    st = cluster.load_state()
    assert st is not None
    kube = KubeClient(Path(st.kubeconfig))
    ns = f"reboot-{uuid.uuid4().hex[:6]}"
    try:
        kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            ObjectRef(kind="Namespace", name=ns),
            field_manager="tests",
        )
        ref = ObjectRef(kind="ConfigMap", namespace=ns, name="survivor")
        uid = kube.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "survivor", "namespace": ns}},
            ref,
            field_manager="tests",
        )["metadata"]["uid"]
        subject = f"reconciler.test.reboot.{uuid.uuid4().hex[:6]}"
        asyncio.run(_publish(st.nats_url, subject, b"kept"))
        for name in reversed(ORDER):
            _kill(st.pids[name])
        assert not any(cluster.running().values())
        proc, up_s = _cluster_up(cluster)
        assert proc.returncode == 0, proc.stderr
        report_figure("cluster-up.reboot.command", up_s)
        after = cluster.load_state()
        assert after is not None and after.ports == st.ports and after.apiserver_url == st.apiserver_url
        assert all(cluster.running().values()) and set(cluster.running()) == set(ORDER)
        assert (kube.get(ref) or {}).get("metadata", {}).get("uid") == uid
        assert asyncio.run(_stream_messages(st.nats_url, subject)) == 1
    finally:
        kube.close()


def test_a_recorded_port_taken_meanwhile_is_a_clear_error(cluster: LocalCluster) -> None:
    st = cluster.load_state()
    assert st is not None
    etcd_pid = st.pids["etcd"]
    _kill(st.pids["kube-apiserver"])
    port = st.ports["apiserver"]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 60
    while True:  # the killed server's connections hold the port for a moment
        try:
            squatter.bind(("127.0.0.1", port))
            break
        except OSError:
            assert time.monotonic() < deadline, f"port {port} never became free"
            time.sleep(0.2)
    squatter.listen()
    try:
        proc, _ = _cluster_up(cluster)
        assert proc.returncode == 1
        text = " ".join(proc.stderr.split())
        assert f"kube-apiserver: its port 127.0.0.1:{port}" in text, text
        assert f"pid {os.getpid()}" in text  # who holds it
        assert "cluster down --purge --state-dir" in text
        after = cluster.load_state()
        assert after is not None and after.ports == st.ports  # no silent new cluster
        assert cluster.running()["etcd"] and after.pids["etcd"] == etcd_pid
        assert (cluster.state_dir / "etcd" / "member").is_dir()
    finally:
        squatter.close()
    proc, _ = _cluster_up(cluster)
    assert proc.returncode == 0, proc.stderr
    assert all(cluster.running().values())


def test_missing_kubeconfig_hint_names_the_running_clusters_state_dir(
    cluster: LocalCluster, env_repo: EnvRepo, tmp_path: Path
) -> None:
    """Without --kubeconfig (and none by default) the error tells how to pass the local cluster's, with
    the --state-dir it was started with."""
    env = {
        **os.environ,
        "KUBECONFIG": str(tmp_path / "missing"),
        "HOME": str(tmp_path),
        "RECONCILER_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("RECONCILER_STATE_DIR", None)
    proc = subprocess.run(
        [*CLI, "reconcile", "dev", "--repo", str(env_repo.remote)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    text = " ".join(proc.stderr.split())
    assert f'--kubeconfig "$(reconciler cluster kubeconfig --state-dir {cluster.state_dir})"' in text, text


def test_a_recorded_pid_reused_by_another_process_is_not_ours(tmp_path: Path) -> None:
    """After a reboot a recorded pid may belong to someone else: it counts as stopped, is never
    signalled, and `up` starts the component again on its port (NATS-only cluster: a quick one)."""
    c = LocalCluster(tmp_path / "state", with_kubernetes=False)
    st = c.up(progress=lambda m: None)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        _kill(st.pids["nats"])
        state = json.loads((c.state_dir / "state.json").read_text())
        state["pids"]["nats"] = stranger.pid  # as if the pid had been reused
        (c.state_dir / "state.json").write_text(json.dumps(state))
        assert c.running() == {"nats": False}
        assert c.down(progress=lambda m: None) == []
        assert stranger.poll() is None, "down signalled a process that is not the cluster's"
        after = c.up(progress=lambda m: None)
        assert after.ports == st.ports and after.pids["nats"] != stranger.pid
        assert c.running() == {"nats": True} and stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(10)
        c.down(progress=lambda m: None, purge=True)


# -- last: it erases the module's cluster -------------------------------------------------------------


def test_down_keeps_the_data_and_only_purge_erases_it(cluster: LocalCluster) -> None:
    st = cluster.load_state()
    assert st is not None
    kube = KubeClient(Path(st.kubeconfig))
    ref = ObjectRef(kind="ConfigMap", namespace="default", name=f"kept-{uuid.uuid4().hex[:6]}")
    try:
        uid = kube.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ref.name, "namespace": "default"}},
            ref,
            field_manager="tests",
        )["metadata"]["uid"]
        down = _cli("cluster", "down", "--state-dir", str(cluster.state_dir))
        assert down.returncode == 0, down.stderr
        assert "data kept" in down.stdout
        assert process.processes_of(str(cluster.state_dir)) == []
        status = _cli("cluster", "status", "--state-dir", str(cluster.state_dir), "-o", "json")
        assert status.returncode == 1 and not any(json.loads(status.stdout)["running"].values())
        proc, _ = _cluster_up(cluster)
        assert proc.returncode == 0, proc.stderr
        after = cluster.load_state()
        assert after is not None and after.ports == st.ports
        assert (kube.get(ref) or {}).get("metadata", {}).get("uid") == uid
    finally:
        kube.close()
    purge = _cli("cluster", "down", "--purge", "--state-dir", str(cluster.state_dir))
    assert purge.returncode == 0, purge.stderr
    assert process.processes_of(str(cluster.state_dir)) == []
    assert not (cluster.state_dir / "etcd").exists() and not (cluster.state_dir / "jetstream").exists()
    assert not (cluster.state_dir / "prometheus").exists()
    assert cluster.load_state() is None
