"""Recovery benchmark: how long the reconciler takes to converge after a fault, as ratios against anchors
measured in the same run on the same machine.

Usage: .venv/bin/python bench/reliability/bench_recovery.py [--objects 100] [--poll 0.5]

Starts its own local cluster (Kubernetes + NATS, in a temporary directory), then:

anchors   ``noop-pass``: median of 5 no-op passes over ``--objects`` ConfigMaps;
          ``apiserver-start``: kube-apiserver from start to ``/readyz`` (after a SIGKILL);
          ``nats-start``: nats-server from start to healthy.
faults    ``apiserver-kill``: SIGKILL in the middle of an apply of ``--objects`` new objects, restart,
          seconds from ``/readyz`` to the daemon's first converged pass;
          ``git-unreachable``: the bare remote moved away for 2 s, seconds from its return to convergence;
          ``nats-restart``: seconds from nats-server healthy to a message published after the restart
          being consumed by a durable consumer that ran through the outage.

Prints one line per figure with its ratio to the ``noop-pass`` anchor (and to the poll interval for
poll-driven recovery). Nothing is asserted: these are figures, not tests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "hostile"))
sys.path.insert(0, str(REPO / "tests"))

from _fault_support import (  # noqa: E402
    apiserver_ready,
    nats_ready,
    start_component,
    stop_component,
    wait_for,
)

from reconciler.bus import STREAM_EVENTS, Bus, reconcile_request_subject  # noqa: E402
from reconciler.cluster.client import KubeClient  # noqa: E402
from reconciler.devcluster import LocalCluster  # noqa: E402
from reconciler.model import PassResult  # noqa: E402
from reconciler.reconcile import PassContext, run_pass  # noqa: E402
from reconciler.runtime import Daemon  # noqa: E402
from reconciler.settings import DaemonSettings  # noqa: E402
from reconciler.source import GitSource  # noqa: E402
from reconciler.source.bootstrap import commit_and_push, init_repo_with_remote  # noqa: E402


def _write_repo(work: Path, names: list[str], ns: str) -> None:
    (work / "envs").mkdir(parents=True, exist_ok=True)
    (work / "envs" / "dev.yaml").write_text(
        f"overlay: overlays/dev\nnamespace: {ns}\nsync: {{interval: 3600, allowMassPrune: true}}\n"
    )
    d = work / "overlays" / "dev"
    d.mkdir(parents=True, exist_ok=True)
    (d / "ns.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
    docs = [f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata:\n  k: v\n" for n in names]
    (d / "cms.yaml").write_text("---\n".join(docs))
    (d / "kustomization.yaml").write_text("resources:\n- ns.yaml\n- cms.yaml\n")


def _line(name: str, seconds: float, anchors: dict[str, float], poll: float | None = None) -> None:
    ratio = seconds / anchors["noop-pass"] if anchors.get("noop-pass") else float("nan")
    extra = f"  = {seconds / poll:6.2f} x poll interval" if poll else ""
    print(f"{name:34} {seconds:8.3f} s  = {ratio:7.1f} x noop-pass{extra}", flush=True)


async def _apiserver_and_git(cluster: LocalCluster, tmp: Path, objects: int, poll: float) -> dict[str, float]:
    st = cluster.load_state()
    assert st is not None
    src = tmp / "src"
    _write_repo(src, [f"base-{i}" for i in range(objects)], "bench")
    remote, work = init_repo_with_remote(src, tmp / "repo")
    kubeconfig = Path(st.kubeconfig)
    out: dict[str, float] = {}

    ctx = PassContext(source=GitSource(str(remote), "main", tmp / "cache-anchor"), client=_client(kubeconfig))
    assert run_pass(ctx, "dev", with_health=False).ok
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        assert run_pass(ctx, "dev", with_health=False).ok
        samples.append(time.perf_counter() - t0)
    out["noop-pass"] = statistics.median(samples)
    ctx.client.close()

    results: list[tuple[float, PassResult]] = []
    settings = DaemonSettings(
        repo=str(remote), envs=["dev"], kubeconfig=kubeconfig, cache_dir=tmp / "cache",
        watch_local=False, poll_interval=poll, nats_url=None,
    )  # fmt: skip
    daemon = Daemon(settings, on_result=lambda r: results.append((time.monotonic(), r)))
    await daemon.start()
    try:
        await _until(lambda: any(r.ok for _, r in results), 60)
        start = daemon.client.calls["apply"]
        argv: list[str] = []

        def killer() -> None:
            while daemon.client.calls["apply"] - start < max(objects // 5, 1):
                time.sleep(0.001)
            argv.extend(stop_component(cluster, "kube-apiserver"))

        th = threading.Thread(target=killer, daemon=True)
        th.start()
        _write_repo(
            work, [f"base-{i}" for i in range(objects)] + [f"new-{i}" for i in range(objects)], "bench"
        )
        commit_and_push(work, "more objects")
        await asyncio.to_thread(th.join, 120)
        t0 = time.monotonic()
        start_component(cluster, "kube-apiserver", argv)
        await asyncio.to_thread(wait_for, lambda: apiserver_ready(cluster), 90, "apiserver", 0.05)
        t_ready = time.monotonic()
        out["apiserver-start"] = t_ready - t0
        await _until(lambda: any(r.ok for t, r in results if t >= t_ready), 120)
        out["apiserver-kill"] = min(t for t, r in results if r.ok and t >= t_ready) - t_ready

        away = remote.with_name("away.git")
        remote.rename(away)
        t_gone = time.monotonic()
        await _until(lambda: any(not r.ok for t, r in results if t >= t_gone), 30)
        await asyncio.sleep(2.0)
        away.rename(remote)
        t_back = time.monotonic()
        await _until(lambda: any(r.ok for t, r in results if t >= t_back), 60)
        out["git-unreachable"] = min(t for t, r in results if r.ok and t >= t_back) - t_back
    finally:
        await daemon.stop()
    return out


def _client(kubeconfig: Path) -> KubeClient:
    return KubeClient(kubeconfig)


async def _until(pred: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"not within {timeout} s")


async def _nats(cluster: LocalCluster) -> dict[str, float]:
    st = cluster.load_state()
    assert st is not None
    subject = reconcile_request_subject("bench")
    pub, sub = Bus(st.nats_url, name="bench-pub"), Bus(st.nats_url, name="bench-sub")
    await pub.connect()
    await sub.connect()
    got: list[str] = []

    async def consume() -> None:
        async for m in sub.consume(STREAM_EVENTS, "bench-durable", [subject], batch=5, wait=0.2):
            got.append(m.headers.get("Nats-Msg-Id", ""))
            await m.ack()

    task = asyncio.create_task(consume())
    await pub.publish(subject, b"{}", msg_id="warm-0")
    for i in range(1, 50):
        if "warm-0" in got:
            break
        await asyncio.sleep(0.1)
        await pub.publish(subject, b"{}", msg_id=f"warm-{i}")
    argv = stop_component(cluster, "nats", kill=False)
    t0 = time.monotonic()
    start_component(cluster, "nats", argv)
    await asyncio.to_thread(wait_for, lambda: nats_ready(cluster), 30, "nats", 0.02)
    t_ready = time.monotonic()
    await _until(lambda: pub.connected and sub.connected, 30)
    await pub.publish(subject, b"{}", msg_id="after-0")
    await _until(lambda: "after-0" in got, 30)
    out = {"nats-start": t_ready - t0, "nats-restart": time.monotonic() - t_ready}
    task.cancel()
    await pub.close()
    await sub.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=100)
    ap.add_argument("--poll", type=float, default=0.5, help="the daemon's poll interval, seconds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        cluster = LocalCluster(tmp / "cluster", nodes=1)
        cluster.up(progress=lambda m: None)
        try:
            figures = asyncio.run(_apiserver_and_git(cluster, tmp, args.objects, args.poll))
            figures.update(asyncio.run(_nats(cluster)))
        finally:
            cluster.down(progress=lambda m: None)
    print(f"objects: {args.objects}, poll interval: {args.poll} s")
    print("anchors")
    for name in ("noop-pass", "apiserver-start", "nats-start"):
        _line(name, figures[name], figures)
    print("recovery after a fault")
    _line("apiserver-kill (ready->converged)", figures["apiserver-kill"], figures, args.poll)
    _line("git-unreachable (back->converged)", figures["git-unreachable"], figures, args.poll)
    _line("nats-restart (ready->consumed)", figures["nats-restart"], figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
