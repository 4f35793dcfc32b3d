"""Webhook → commit → Deployment benchmark, on the real components (all on 127.0.0.1).

Starts a local cluster and its NATS (``reconciler.devcluster.LocalCluster`` in a temporary state
directory), an environment repository with a bare remote (env ``dev``: ``promotion.via: push`` and an
image policy for ``ghcr.io/acme/bench-app``), the webhook server (``webhooks.server``, one generic
HMAC-signed receiver), the image-automation consumer (``reconciler.promote.images.run_consumer``) and the
daemon for ``dev``. Then:

1. latency: ``--pushes`` signed webhook POSTs, one at a time (each waits for the previous pass to
   finish), timing POST → 202, POST → commit pushed (the ``reconciler.git.push`` notification) and
   POST → the Deployment's image updated in the API server (the rollout itself excluded); prints
   p50/p95 and the goal (p95 ≤ 2 s);
2. de-duplication: ``--deliveries`` POSTs within ``--seconds`` seconds, ``--duplicates`` of them exact
   repeats (same delivery id and body), over ``--versions`` increasing versions; prints the commits
   made per distinct version (the goal: exactly one each).

Times are compared with anchors measured in the same run: ``git-commit-push`` (a one-line commit and
push to a bare remote with the same Git writer), ``kube-apply`` (one server-side apply of a ConfigMap)
and ``nats-publish`` (one JetStream publish with its acknowledgement).

Usage: .venv/bin/python bench/webhook/bench_webhook.py [--pushes 50] [--deliveries 1000] [--seconds 10]
       [--duplicates 0.3] [--versions 50] [--keep]
Bounded: every wait has a deadline; exit 1 when a deadline passes, 0 otherwise (goals are printed, not
asserted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import nats
import structlog

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reconciler.bus import Bus  # noqa: E402
from reconciler.cluster.client import KubeClient  # noqa: E402
from reconciler.devcluster import LocalCluster  # noqa: E402
from reconciler.model import ObjectRef, PassResult  # noqa: E402
from reconciler.promote.images import AutomationResult, ImageAutomation, run_consumer  # noqa: E402
from reconciler.reconcile import load_environments  # noqa: E402
from reconciler.runtime import Daemon  # noqa: E402
from reconciler.settings import DaemonSettings  # noqa: E402
from reconciler.source.bootstrap import init_repo_with_remote  # noqa: E402
from reconciler.source.gitops import GitWriter  # noqa: E402
from webhooks.config import ReceiverConfig, WebhookSettings  # noqa: E402
from webhooks.server import serve_async  # noqa: E402

IMAGE = "ghcr.io/acme/bench-app"
NAMESPACE = "bench-dev"
SECRET = "bench-webhook-secret"


class Timeout(Exception):
    """A bounded wait ran out."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def seed_repo(root: Path) -> tuple[Path, Path]:
    src = root / "src"
    (src / "envs").mkdir(parents=True)
    dev = src / "overlays" / "dev"
    dev.mkdir(parents=True)
    (src / "envs" / "dev.yaml").write_text(
        f"overlay: overlays/dev\nnamespace: {NAMESPACE}\n"
        "sync: {interval: 3600}\nhealth: {timeout: 30, noControllerAfter: 5}\n"
        "promotion: {via: push}\n"
        "imagePolicies:\n"
        f"- name: bench-app\n  image: {IMAGE}\n  policy: {{semver: {{range: '>=1.0.0'}}}}\n"
    )
    (dev / "kustomization.yaml").write_text(
        "resources:\n- namespace.yaml\n- deployment.yaml\n"
        f"images:\n# moved by image automation\n- name: {IMAGE}\n  newTag: 1.0.0\n"
    )
    (dev / "namespace.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n")
    (dev / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bench-app\nspec:\n  replicas: 1\n"
        "  selector:\n    matchLabels: {app: bench-app}\n  template:\n    metadata:\n"
        "      labels: {app: bench-app}\n    spec:\n      containers:\n      - name: app\n"
        f"        image: {IMAGE}:0.0.1\n"
    )
    return init_repo_with_remote(src, root / "repo")


class DeploymentWatch:
    """Records when each image first appears in the bench Deployment (a watch in a thread)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = KubeClient(kubeconfig)
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-watch")
        self._thread.start()

    def _record(self, obj: dict[str, Any]) -> None:
        if obj.get("metadata", {}).get("name") != "bench-app":
            return
        for c in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            self.seen.setdefault(str(c.get("image")), time.monotonic())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                items, rv = self.client.list("apps", "v1", "Deployment", namespace=NAMESPACE)
                for obj in items:
                    self._record(obj)
                for _, obj in self.client.watch(
                    "apps", "v1", "Deployment", resource_version=rv, namespace=NAMESPACE, timeout_seconds=30
                ):
                    if self._stop.is_set():
                        return
                    self._record(obj)
            except Exception:
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self.client.close()


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.005)
    raise Timeout(f"not within {timeout} s: {what}")


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


async def post(session: aiohttp.ClientSession, url: str, tag: str, delivery: str) -> int:
    body = json.dumps({"image": f"{IMAGE}:{tag}"}).encode()
    headers = {"Content-Type": "application/json", "X-Signature": sign(body), "X-Delivery-Id": delivery}
    async with session.post(url, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def anchors(kubeconfig: Path, nats_url: str, work: Path) -> dict[str, float]:
    """Median seconds of the anchor operations, measured now."""
    out: dict[str, float] = {}
    remote, _ = init_repo_with_remote(REPO, work / "anchor-repo")
    writer = GitWriter(str(remote), "main", work / "anchor-cache")
    times = []
    for i in range(10):
        t0 = time.monotonic()
        writer.sync()
        (writer.workdir / "anchor.txt").write_text(f"{i}\n")
        writer.commit(f"anchor {i}")
        writer.push()
        times.append(time.monotonic() - t0)
    out["git-commit-push"] = statistics.median(times)
    kube = KubeClient(kubeconfig)
    times = []
    for i in range(10):
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "bench-anchor", "namespace": "default"},
            "data": {"i": str(i)},
        }
        t0 = time.monotonic()
        kube.apply(
            cm, ObjectRef(kind="ConfigMap", namespace="default", name="bench-anchor"), field_manager="bench"
        )
        times.append(time.monotonic() - t0)
    kube.close()
    out["kube-apply"] = statistics.median(times)
    bus = Bus(nats_url, name="bench-anchor")
    await bus.connect()
    times = []
    for i in range(50):
        t0 = time.monotonic()
        await bus.publish("reconciler.bench.anchor", b"x", msg_id=f"anchor-{time.time_ns()}-{i}")
        times.append(time.monotonic() - t0)
    await bus.close()
    out["nats-publish"] = statistics.median(times)
    return out


async def run(args: argparse.Namespace, work: Path) -> int:
    cluster = LocalCluster(work / "cluster", nodes=1)
    print("starting the local cluster and NATS …", flush=True)
    st = cluster.up(progress=lambda m: None)
    kubeconfig, nats_url = Path(st.kubeconfig), st.nats_url
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    daemon: Daemon | None = None
    watch: DeploymentWatch | None = None
    bus: Bus | None = None
    listener: Any = None
    try:
        anchor = await anchors(kubeconfig, nats_url, work)
        remote, _ = seed_repo(work)
        port = free_port()
        hook_url = f"http://127.0.0.1:{port}/hook/bench"
        settings = WebhookSettings(
            host="127.0.0.1",
            port=port,
            nats_url=nats_url,
            receivers=[ReceiverConfig(name="bench", provider="generic", secret=SECRET)],
        )
        tasks.append(asyncio.create_task(serve_async(settings, stop), name="webhooks"))

        passes: list[tuple[float, PassResult]] = []
        daemon = Daemon(
            DaemonSettings(
                repo=str(remote),
                envs=["dev"],
                kubeconfig=kubeconfig,
                nats_url=nats_url,
                cache_dir=work / "daemon-cache",
                watch_local=False,
                drift_watch=False,
            ),
            on_result=lambda r: passes.append((time.monotonic(), r)),
        )
        await daemon.start()
        await until(lambda: passes, 120, "the first pass")
        if not passes[-1][1].ok:
            print(f"first pass failed: {passes[-1][1].error}")
            return 1

        bus = Bus(nats_url, name="bench-image-automation")
        await bus.connect()
        pushed: dict[str, float] = {}  # commit sha → when its push notification arrived
        commits: dict[str, str] = {}  # tag → the commit that moved the image to it

        async def on_push(msg: Any) -> None:
            with contextlib.suppress(ValueError, KeyError):
                pushed.setdefault(json.loads(msg.data)["after"], time.monotonic())

        def on_result(result: AutomationResult) -> None:
            for u in result.updates:
                if u.commit and u.changes:
                    commits.setdefault(u.changes[0].new_tag, u.commit)

        listener = await nats.connect(nats_url, name="bench-listener")
        await listener.subscribe("reconciler.git.push.>", cb=on_push)
        await listener.flush()  # the server has the subscription before anything is published
        auto = ImageAutomation(
            GitWriter(str(remote), "main", work / "auto-cache"), load_environments, only={"dev"}
        )
        tasks.append(
            asyncio.create_task(run_consumer(bus, auto, stop, on_result=on_result), name="image-automation")
        )
        watch = DeploymentWatch(kubeconfig)
        seen = watch.seen
        dev = daemon.envs["dev"]

        def pass_done(before: int) -> bool:
            return len(passes) > before and not dev.running

        await asyncio.sleep(1.0)  # the durable consumer exists before the first delivery

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            # ---- 1. latency
            accepted, to_push, to_deploy = [], [], []
            for i in range(1, args.pushes + 1):
                tag = f"1.0.{i}"
                n_passes = len(passes)
                t0 = time.monotonic()
                status = await post(session, hook_url, tag, f"lat-{i}")
                t1 = time.monotonic()
                if status != 202:
                    print(f"POST {tag}: HTTP {status}")
                    return 1
                ref = f"{IMAGE}:{tag}"
                t_deploy = await until(partial(seen.get, ref), 30, f"{ref} in the Deployment")
                sha = await until(partial(commits.get, tag), 10, f"{tag} committed")
                t_push = await until(partial(pushed.get, sha), 10, f"{tag} push notification")
                accepted.append(t1 - t0)
                to_push.append(t_push - t0)
                to_deploy.append(t_deploy - t0)
                await until(partial(pass_done, n_passes), 60, "the pass to end")

            print(f"\n== latency over {args.pushes} pushes (seconds)")
            for name, vals in (
                ("POST→202", accepted),
                ("POST→pushed", to_push),
                ("POST→Deployment", to_deploy),
            ):
                print(f"{name:18s} p50 {pct(vals, 50):.3f}  p95 {pct(vals, 95):.3f}  max {max(vals):.3f}")
            print("anchors (median s): " + ", ".join(f"{k} {v:.4f}" for k, v in anchor.items()))
            git_apply = anchor["git-commit-push"] + anchor["kube-apply"]
            ratios = (
                ("POST→pushed / git-commit-push", pct(to_push, 50) / anchor["git-commit-push"]),
                ("POST→Deployment / (git-commit-push + kube-apply)", pct(to_deploy, 50) / git_apply),
                ("POST→202 / nats-publish", pct(accepted, 50) / anchor["nats-publish"]),
            )
            for label, ratio in ratios:
                print(f"ratio of p50 {label:50s} = {ratio:.1f}")
            goal = pct(to_deploy, 95) <= 2.0
            print(
                f"goal p95 POST→Deployment ≤ 2 s: {'met' if goal else 'NOT met'} ({pct(to_deploy, 95):.3f} s)"
            )

            # ---- 2. 1000 deliveries with 30 % duplicates
            rnd = random.Random(11)
            n_dup = round(args.deliveries * args.duplicates)
            n_unique = args.deliveries - n_dup
            versions = [f"2.0.{i}" for i in range(args.versions)]
            unique = [(versions[i * len(versions) // n_unique], f"dd-{i}") for i in range(n_unique)]
            repeats = set(rnd.sample(range(n_unique), n_dup))
            groups: list[list[tuple[str, str]]] = [[] for _ in versions]
            for i, (tag, did) in enumerate(unique):
                g = groups[versions.index(tag)]
                g += [(tag, did), (tag, did)] if i in repeats else [(tag, did)]
            start = time.monotonic()
            statuses: list[int] = []
            sent = 0
            for g in groups:  # versions in order; the deliveries of one version concurrently
                due = start + args.seconds * sent / args.deliveries
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                statuses += await asyncio.gather(*(post(session, hook_url, t, d) for t, d in g))
                sent += len(g)
            send_s = time.monotonic() - start
            last = f"{IMAGE}:{versions[-1]}"
            await until(lambda: seen.get(last), 120, f"{last} in the Deployment")
            drained_s = time.monotonic() - start
        await asyncio.sleep(2.0)  # let any straggler redelivery settle before counting
        writer = GitWriter(str(remote), "main", work / "count-cache")
        writer.sync()
        per_version: dict[str, int] = {}
        for c in writer.log(max_count=5000):
            for value in c.trailer("Image"):
                tag = value.rpartition(":")[2].split("@")[0]
                if tag.startswith("2.0."):
                    per_version[tag] = per_version.get(tag, 0) + 1
        ok_status = sum(1 for s in statuses if s in (200, 202))
        exact = all(per_version.get(v) == 1 for v in versions) and len(per_version) == len(versions)
        print(f"\n== {args.deliveries} deliveries, {n_dup} exact duplicates, {len(versions)} versions")
        print(f"sent in {send_s:.2f} s (target {args.seconds} s); 2xx {ok_status}/{len(statuses)}")
        print(f"last version in the Deployment after {drained_s:.2f} s")
        print(
            f"commits per distinct version: {len(versions)} versions, {sum(per_version.values())} commits, "
            f"exactly one each: {'yes' if exact else 'NO'}"
        )
        return 0
    except Timeout as exc:
        print(f"bench failed: {exc}")
        return 1
    finally:
        stop.set()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 40)
        if watch is not None:
            watch.stop()
        if daemon is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(daemon.stop(), 40)
        for conn in (bus, listener):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 40)
        cluster.down(progress=lambda m: None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--duplicates", type=float, default=0.3)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    work = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    try:
        return asyncio.run(run(args, work))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
