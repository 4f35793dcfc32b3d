"""Rollout benchmark: how fast a failing canary loses its traffic and its commit, and how closely a good
canary keeps its configured step times — on a real local control plane, the pinned Prometheus, the
agentgateway-shaped metrics fixture (``reconciler.devcluster.agw_fixture``: a fixture, not a gateway)
and a bare Git remote, with an in-process :class:`reconciler.runtime.Daemon` (all on 127.0.0.1).

One environment ``bench`` holds an app ``clock`` (Deployment, Service, HTTPRoute) with ``rollouts:``
(canary steps ``[25, 50, 75, 100]``, ``--interval`` seconds each; one query, the canary's 5xx ratio over
10 s, ``max: 0.05``, sampled every ``--sample-interval`` s, ``failureLimit`` ``--failure-limit``,
``initialDelay`` ``--initial-delay`` s). The fixture sends 50 requests/s along the route's weights.

Cases:

1. step timing: a good canary (error ratio 0) from ``state.started_at`` (the pass that began it) to
   ``state.finished_at`` (success), against the configured duration, steps x ``--interval`` (default
   4 x 10 s = 40 s). Goal (issue "bench/rollout"): within 5 % (ratio ≤ 1.05).
2. abort latency: ``--runs`` runs (default 10) of a bad canary (error ratio 0.5), each a new commit
   of a new image tag, measured from the ``at`` of the run's first failing sample to

   a. the canary's weight 0 written (the runner's ``actions`` entry with move ``abort``, stamped
      after the API server accepted the write): goal p95 ≤ 1 s;
   b. the revert commit on the remote: a thread reads the bare remote's ``refs/heads/main`` every
      5 ms and stamps the first head whose message has ``Rollback-Of: <bad commit>``: goal p95 ≤ 3 s.

   Between runs the revert has moved the environment back; the next run starts when the canary objects
   are pruned and the route is Git's again.

Named anchor (computed from the configuration): Flagger and Argo Rollouts abort a canary once more than
``failureLimit`` samples failed (Flagger's ``threshold`` = failureLimit + 1), i.e. ``failureLimit x
interval`` after the first failing sample plus their controller's reaction — and they leave Git
unchanged (the bad version stays in Git; the next sync would bring it again), so case 2b has no
counterpart there.

Usage:
    .venv/bin/python bench/rollout/bench_rollout.py [--runs 10] [--interval 10] [--json results.json]
    .venv/bin/python bench/rollout/bench_rollout.py --quick     # 2 runs, 3 s steps

Starts a local cluster (``LocalCluster``, one kwok node, no NATS) in a temporary state directory, the
pinned Prometheus and the fixture, unless given: ``--kubeconfig`` uses an existing cluster (with the
agent-platform CRDs), ``--prometheus URL --fixture URL`` an existing Prometheus that already scrapes the
fixture (as the test session's fixtures do).

Exit status: 0 when every goal is met, 1 when one is missed (or a run did not abort, revert or succeed),
2 when the run could not be done (a component did not start, ``--deadline`` passed). Everything binds to
127.0.0.1; every process, namespace and cluster started is stopped or deleted at the end, also on an
error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reconciler.cluster.client import KubeClient  # noqa: E402
from reconciler.cluster.inventory import NAMESPACE as SYSTEM_NAMESPACE  # noqa: E402
from reconciler.cluster.inventory import source_hash  # noqa: E402
from reconciler.cluster.rollouts import RolloutStore  # noqa: E402
from reconciler.devcluster.agents import wait_listening  # noqa: E402
from reconciler.devcluster.process import ComponentError, free_port, start, stop_group  # noqa: E402
from reconciler.model import ObjectRef, PassResult  # noqa: E402
from reconciler.model.rollout import RolloutPhase, RolloutState, SampleOutcome  # noqa: E402
from reconciler.source.bootstrap import commit_and_push, init_repo_with_remote  # noqa: E402

T = TypeVar("T")

ENV = "bench"
APP = "clock"
STEPS = [25, 50, 75, 100]
#: Goals (issue "bench/rollout"): p95 seconds from the first failing sample to weight 0 / to the revert.
GOAL_ABORT_P95 = 1.0
GOAL_REVERT_P95 = 3.0
#: Goal of the step timing: measured / configured duration.
GOAL_STEP_RATIO = 1.05
RATE = 50.0
BAD_ERROR_RATIO = 0.5
SERIES = 'agentgateway_requests_total{route="{{namespace}}/{{route}}",backend="{{namespace}}/{{canary}}"'
ERRORS = f'(sum(rate({SERIES},status=~"5.."}}[10s])) or vector(0)) / sum(rate({SERIES}}}[10s]))'


class Deadline(Exception):
    """The run exceeded ``--deadline``."""


class Missed(Exception):
    """Something that must happen in a run did not (no abort, no revert, no success)."""


# -- helpers ---------------------------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/max of ``values`` (seconds, rounded to ms)."""
    return {
        "p50": round(pct(values, 50), 3),
        "p95": round(pct(values, 95), 3),
        "max": round(max(values), 3),
    }


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so the ``finally`` blocks stop what was started."""

    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def http_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise ComponentError("prometheus", None, f"{url} not ready after {timeout} s")


def scraped(prometheus: str, address: str, timeout: float) -> None:
    """Wait until ``prometheus`` has scraped ``address`` (``up == 1``)."""
    query = urllib.parse.quote(f'up{{instance="{address}"}} == 1')
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{prometheus}/api/v1/query?query={query}", timeout=5) as resp:
            if json.loads(resp.read())["data"]["result"]:
                return
        time.sleep(0.5)
    raise ComponentError("agw-fixture", None, f"Prometheus never scraped the fixture at {address}")


def traffic(fixture: str, namespace: str, canary_errors: float | None) -> None:
    """Set (or, ``None``, remove) the fixture's simulated traffic on the route."""
    url = f"{fixture}/routes/{namespace}/{APP}"
    if canary_errors is None:
        req = urllib.request.Request(url, method="DELETE")
    else:
        body = {"rate": RATE, "backends": {f"{APP}-canary": {"errorRatio": canary_errors}}}
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=5) as resp:
        if resp.status != 200:  # pragma: no cover - the fixture answers 200 or raises
            raise ComponentError("agw-fixture", None, f"{req.method} {url}: {resp.status}")


def env_files(namespace: str, tag: str, args: argparse.Namespace) -> dict[str, str]:
    """The environment repository's files with the image tag ``tag``."""
    env = {
        "overlay": f"overlays/{ENV}",
        "namespace": namespace,
        "sync": {"interval": 3600},
        "health": {"timeout": 30, "noControllerAfter": 1},
        "promotion": {"via": "push"},
        "rollouts": [
            {
                "app": APP,
                "route": APP,
                "strategy": {"canary": {"steps": STEPS, "interval": args.interval}},
                "analysis": {
                    "initialDelay": args.initial_delay,
                    "queries": [
                        {
                            "name": "error-rate",
                            "query": ERRORS,
                            "max": 0.05,
                            "interval": args.sample_interval,
                            "failureLimit": args.failure_limit,
                            "inconclusiveLimit": 20,
                        }
                    ],
                },
            }
        ],
    }
    labels = f"{{app.kubernetes.io/name: {APP}}}"
    return {
        f"envs/{ENV}.yaml": json.dumps(env, indent=1),
        f"overlays/{ENV}/kustomization.yaml": "resources:\n- deployment.yaml\n- service.yaml\n- route.yaml\n"
        f"images:\n- name: ghcr.io/acme/clock\n  newTag: '{tag}'\n",
        f"overlays/{ENV}/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\n"
        f"metadata: {{name: {APP}}}\n"
        f"spec:\n  replicas: 1\n  selector: {{matchLabels: {labels}}}\n"
        f"  template:\n    metadata: {{labels: {labels}}}\n"
        "    spec: {containers: [{name: s, image: ghcr.io/acme/clock:0.0.1}]}\n",
        f"overlays/{ENV}/service.yaml": f"apiVersion: v1\nkind: Service\nmetadata: {{name: {APP}}}\n"
        f"spec: {{selector: {labels}, ports: [{{port: 80}}]}}\n",
        f"overlays/{ENV}/route.yaml": "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        f"metadata: {{name: {APP}}}\nspec:\n  rules:\n  - backendRefs: [{{name: {APP}, port: 80}}]\n",
    }


def write_files(work: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def git(cwd: Path, *argv: str) -> str:
    return subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=True).stdout


def remote_head(remote: Path) -> str:
    """The bare remote's ``main`` (the loose ref file, else ``git rev-parse``)."""
    with contextlib.suppress(OSError):
        text = (remote / "refs" / "heads" / "main").read_text().strip()
        if text:
            return text
    return git(remote, "rev-parse", "refs/heads/main").strip()


class RevertWatch(threading.Thread):
    """Reads the remote's head every 5 ms (off the event loop) and stamps (UNIX seconds) the first head
    whose commit message has ``Rollback-Of: <bad>``."""

    def __init__(self, remote: Path, bad: str) -> None:
        super().__init__(daemon=True, name="revert-watch")
        self.remote = remote
        self.bad = bad
        self.seen_at: float | None = None
        self.commit = ""
        self.halt = threading.Event()

    def run(self) -> None:
        last = ""
        while not self.halt.is_set():
            head = remote_head(self.remote)
            now = time.time()
            if head != last:
                last = head
                message = git(self.remote, "log", "-1", "--format=%B", head)
                if f"Rollback-Of: {self.bad}" in message:
                    self.seen_at, self.commit = now, head
                    return
            self.halt.wait(0.005)


async def until(pred: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll ``pred`` (in a worker thread) until it returns something truthy.

    Raises:
        Missed: ``timeout`` seconds passed first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        await asyncio.sleep(every)
    raise Missed(f"{what}: not within {timeout:.0f} s")


@dataclass
class Bench:
    """One bench's cluster objects, repository and daemon."""

    args: argparse.Namespace
    kube: KubeClient
    namespace: str
    remote: Path
    work: Path
    store: RolloutStore
    fixture: str
    results: list[PassResult] = field(default_factory=list)

    def state(self) -> RolloutState | None:
        return self.store.load(ENV, APP)

    def image(self, name: str) -> str | None:
        ref = ObjectRef(group="apps", version="v1", kind="Deployment", namespace=self.namespace, name=name)
        dep = self.kube.get(ref)
        return None if dep is None else str(dep["spec"]["template"]["spec"]["containers"][0]["image"])

    def backends(self) -> list[str]:
        ref = ObjectRef(
            group="gateway.networking.k8s.io",
            version="v1",
            kind="HTTPRoute",
            namespace=self.namespace,
            name=APP,
        )
        rules = (self.kube.get(ref) or {}).get("spec", {}).get("rules") or [{}]
        return [str(b["name"]) for b in rules[0].get("backendRefs") or []]

    def settled(self, tag: str) -> bool:
        """The stable version is ``tag``, no canary, the route as Git has it."""
        return (
            self.image(APP) == f"ghcr.io/acme/clock:{tag}"
            and self.image(f"{APP}-canary") is None
            and self.backends() == [APP]
        )

    def commit(self, tag: str, message: str) -> str:
        """Bring the clone up to the remote (the daemon pushes reverts), write ``tag``, commit, push."""
        git(self.work, "pull", "-q", "--ff-only", "origin", "main")
        write_files(self.work, env_files(self.namespace, tag, self.args))
        return commit_and_push(self.work, message)


async def step_timing(b: Bench, daemon: Any) -> dict[str, Any]:
    """Case 1: a good canary through its steps."""
    args = b.args
    configured = len(STEPS) * args.interval
    await asyncio.to_thread(traffic, b.fixture, b.namespace, 0.0)
    sha = await asyncio.to_thread(b.commit, "1.1", "clock 1.1 (good canary)")
    before = len(daemon.rollouts.actions)
    first = await daemon.trigger(ENV, "bench")
    if not first.ok:
        raise Missed(f"the pass beginning the good canary failed: {first.error}")

    def done() -> RolloutState | None:
        st = b.state()
        if st is not None and sha in st.revision and not st.active:
            return st
        return None

    st = await until(done, configured * 2 + 60, "the good canary's end", every=0.2)
    stable_at = time.time()
    await until(lambda: b.settled("1.1"), 60, "the new stable version applied and the canary pruned")
    stable_at = time.time() - stable_at
    shifts = [t for t, _, _, move, _ in daemon.rollouts.actions[before:] if move == "shift"]
    measured = (st.finished_at or 0.0) - st.started_at
    marks = [st.started_at, *shifts, st.finished_at or 0.0]
    out = {
        "phase": st.phase.value,
        "succeeded": st.phase is RolloutPhase.SUCCEEDED,
        "steps": STEPS,
        "interval_seconds": args.interval,
        "configured_seconds": configured,
        "measured_seconds": round(measured, 3),
        "ratio": round(measured / configured, 4),
        "goal_ratio": GOAL_STEP_RATIO,
        "step_seconds": [round(b2 - a, 3) for a, b2 in itertools.pairwise(marks)],
        "success_to_settled_seconds": round(stable_at, 3),
        "history": st.history,
    }
    out["meets_goal"] = bool(out["succeeded"]) and out["ratio"] <= GOAL_STEP_RATIO
    return out


async def abort_run(b: Bench, daemon: Any, i: int, stable: str) -> dict[str, Any]:
    """Case 2, one run: a bad canary; its abort and revert."""
    tag = f"2.{i}"
    before = len(daemon.rollouts.actions)
    sha = await asyncio.to_thread(b.commit, tag, f"clock {tag} (bad canary, run {i + 1})")
    watch = RevertWatch(b.remote, sha)
    watch.start()
    try:
        began = await daemon.trigger(ENV, "bench")
        if not began.ok:
            raise Missed(f"run {i + 1}: the pass beginning the bad canary failed: {began.error}")

        def aborted() -> RolloutState | None:
            st = b.state()
            if st is not None and sha in st.revision and st.phase is RolloutPhase.ABORTED and st.reverted:
                return st
            return None

        st = await until(aborted, 60 + b.args.initial_delay, f"run {i + 1}: abort and revert")
        await until(lambda: watch.seen_at, 30, f"run {i + 1}: the revert commit on the remote", every=0.01)
    finally:
        watch.halt.set()
        watch.join(5)
    aborts = [t for t, _, _, move, _ in daemon.rollouts.actions[before:] if move == "abort"]
    failing = [s for s in st.samples if s.outcome in (SampleOutcome.FAILED, SampleOutcome.ERROR)]
    if not aborts or not failing or watch.seen_at is None:
        raise Missed(f"run {i + 1}: no abort action or no failing sample ({st.message})")
    first = min(failing, key=lambda s: s.at)
    await until(lambda: b.settled(stable), 60, f"run {i + 1}: the environment back on {stable}")
    return {
        "run": i + 1,
        "commit": sha,
        "aborted": st.phase is RolloutPhase.ABORTED,
        "reverted": bool(st.reverted) and st.reverted == watch.commit,
        "revert_commit": watch.commit,
        "first_failing_value": first.value,
        "first_failing_message": first.message,
        "to_weight_zero_seconds": round(aborts[0] - first.at, 4),
        "to_revert_on_remote_seconds": round(watch.seen_at - first.at, 4),
        "message": st.message,
    }


async def run_cases(
    args: argparse.Namespace, kubeconfig: Path, prometheus: str, fixture: str, root: Path
) -> Any:
    from reconciler.runtime import Daemon
    from reconciler.settings import DaemonSettings

    kube = KubeClient(kubeconfig)
    namespace = f"bench-rollout-{uuid.uuid4().hex[:6]}"
    ns_ref = ObjectRef(kind="Namespace", name=namespace)
    src = root / "src"
    write_files(src, env_files(namespace, "1.0", args))
    remote, work = init_repo_with_remote(src, root / "repo")
    b = Bench(args, kube, namespace, remote, work, RolloutStore(kube, str(remote)), fixture)
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        ns_ref,
        field_manager="bench",
    )
    settings = DaemonSettings(
        repo=str(remote),
        envs=[ENV],
        kubeconfig=kubeconfig,
        cache_dir=root / "cache",
        watch_local=False,
        poll_interval=3600,
        prometheus_url=prometheus,
    )
    daemon = Daemon(settings, on_result=b.results.append)
    b.store = RolloutStore(kube, daemon.source.url)
    out: dict[str, Any] = {}
    try:
        await daemon.start()
        await until(lambda: b.results, 60, "the first pass")
        if not b.results[-1].ok:
            raise Missed(f"the first pass failed: {b.results[-1].error}")
        await until(lambda: b.settled("1.0"), 60, "the first version applied")
        out["step_timing"] = await step_timing(b, daemon)
        print(json.dumps({"step_timing": out["step_timing"]}), flush=True)
        await asyncio.to_thread(traffic, fixture, namespace, BAD_ERROR_RATIO)
        runs = []
        for i in range(args.runs):
            runs.append(await abort_run(b, daemon, i, "1.1"))
            print(json.dumps(runs[-1]), flush=True)
        out["abort_runs"] = runs
    except Missed:
        with contextlib.suppress(Exception):
            print("the remote's main:\n" + git(remote, "log", "--format=%h %s", "main"), file=sys.stderr)
        raise
    finally:
        await daemon.stop()
        with contextlib.suppress(Exception):
            traffic(fixture, namespace, None)
        with contextlib.suppress(Exception):
            b.store.delete(ENV, APP)
        with contextlib.suppress(Exception):  # the inventories, when the cluster outlives the bench
            items, _ = kube.list(
                "",
                "v1",
                "ConfigMap",
                namespace=SYSTEM_NAMESPACE,
                label_selector=f"reconciler.dev/source-hash={source_hash(daemon.source.url)}",
            )
            for item in items:
                kube.delete(
                    ObjectRef(kind="ConfigMap", namespace=SYSTEM_NAMESPACE, name=item["metadata"]["name"])
                )
        with contextlib.suppress(Exception):
            kube.delete(ns_ref)
        kube.close()
    return out


def results_of(args: argparse.Namespace, out: dict[str, Any]) -> dict[str, Any]:
    runs = out["abort_runs"]
    weight = [r["to_weight_zero_seconds"] for r in runs]
    revert = [r["to_revert_on_remote_seconds"] for r in runs]
    anchor = args.failure_limit * args.sample_interval
    res: dict[str, Any] = {
        "config": {
            "runs": args.runs,
            "steps": STEPS,
            "interval": args.interval,
            "sample_interval": args.sample_interval,
            "failure_limit": args.failure_limit,
            "initial_delay": args.initial_delay,
            "canary_error_ratio": BAD_ERROR_RATIO,
            "rate": RATE,
        },
        "abort": {
            "to_weight_zero_seconds": summary(weight),
            "goal_p95_seconds": GOAL_ABORT_P95,
            "to_revert_on_remote_seconds": summary(revert),
            "goal_revert_p95_seconds": GOAL_REVERT_P95,
            "all_aborted": all(r["aborted"] for r in runs),
            "all_reverted": all(r["reverted"] for r in runs),
            "anchor": {
                "name": "flagger/argo-rollouts abort: failureLimit x interval",
                "seconds": anchor,
                "git": "unchanged (no revert commit; the bad version stays in Git)",
                "ratio_p95_weight_zero_to_anchor": round(pct(weight, 95) / anchor, 3) if anchor else None,
            },
            "runs": runs,
        },
        "step_timing": out["step_timing"],
    }
    ab = res["abort"]
    ab["meets_goal"] = (
        ab["all_aborted"]
        and ab["all_reverted"]
        and ab["to_weight_zero_seconds"]["p95"] <= GOAL_ABORT_P95
        and ab["to_revert_on_remote_seconds"]["p95"] <= GOAL_REVERT_P95
    )
    res["meets_goals"] = ab["meets_goal"] and res["step_timing"]["meets_goal"]
    return res


def print_table(res: dict[str, Any]) -> None:
    ab, st = res["abort"], res["step_timing"]
    w, r, anchor = ab["to_weight_zero_seconds"], ab["to_revert_on_remote_seconds"], ab["anchor"]
    n = len(ab["runs"])
    print(
        f"ROLLOUT abort ({n} runs): first failing sample -> weight 0: p50 {w['p50']:.3f} s, p95 "
        f"{w['p95']:.3f} s, max {w['max']:.3f} s (goal p95 <= {GOAL_ABORT_P95:g} s)"
    )
    print(
        f"ROLLOUT abort ({n} runs): first failing sample -> revert commit on the remote: p50 "
        f"{r['p50']:.3f} s, p95 {r['p95']:.3f} s, max {r['max']:.3f} s (goal p95 <= {GOAL_REVERT_P95:g} s)"
    )
    print(
        f"ROLLOUT anchor {anchor['name']}: {anchor['seconds']:g} s + controller reaction; Git {anchor['git']}"
    )
    print(
        f"ROLLOUT steps {st['steps']} x {st['interval_seconds']:g} s: {st['measured_seconds']:.3f} s vs "
        f"{st['configured_seconds']:g} s configured = ratio {st['ratio']:.4f} (goal <= {GOAL_STEP_RATIO}); "
        f"per step {st['step_seconds']}"
    )
    print(f"ROLLOUT {'meets' if res['meets_goals'] else 'MISSES'} the goals")


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Start what is not given, run both cases, stop everything started."""
    from reconciler.cluster.crds import install_crds
    from reconciler.devcluster import LocalCluster
    from reconciler.devcluster.prometheus import (
        PrometheusFiles,
        command,
        ensure_prometheus,
        register_target,
        write_config,
    )

    cluster: LocalCluster | None = None
    pids: list[int] = []
    try:
        if args.kubeconfig:
            kubeconfig = Path(args.kubeconfig)
        else:
            cluster = LocalCluster(root / "cluster", nodes=1, with_nats=False)
            st = cluster.up(progress=lambda _m: None)
            kubeconfig = Path(st.kubeconfig)
            client = KubeClient(kubeconfig)
            install_crds(client)
            client.close()
        prometheus, fixture = args.prometheus, args.fixture
        if prometheus is None:
            files = PrometheusFiles(root / "prometheus")
            write_config(files)
            port = free_port()
            log = root / "prometheus.log"
            pids.append(start("prometheus", command(ensure_prometheus(), files, port), log, cwd=files.root))
            wait_listening(port, 30, "prometheus", log, pids[-1])
            prometheus = f"http://127.0.0.1:{port}"
            http_ready(f"{prometheus}/-/ready", 30)
            fport = free_port()
            flog = root / "agw-fixture.log"
            cmd = [
                sys.executable,
                "-m",
                "reconciler.devcluster.agw_fixture",
                "--port",
                str(fport),
                "--kubeconfig",
                str(kubeconfig),
            ]
            env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
            pids.append(start("agw-fixture", cmd, flog, cwd=root, env=env))
            wait_listening(fport, 30, "agw-fixture", flog, pids[-1])
            register_target(files.targets, f"127.0.0.1:{fport}", {"fixture": "agentgateway"})
            scraped(prometheus, f"127.0.0.1:{fport}", 60)
            fixture = f"http://127.0.0.1:{fport}"

        async def bounded() -> Any:
            try:
                return await asyncio.wait_for(
                    run_cases(args, kubeconfig, prometheus, fixture, root), args.deadline
                )
            except TimeoutError as exc:
                raise Deadline(f"not done within --deadline {args.deadline:g} s") from exc

        out = asyncio.run(bounded())
    finally:
        for pid in reversed(pids):
            stop_group(pid)
        if cluster is not None:
            cluster.down(progress=lambda _m: None)
    return results_of(args, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit status says whether the goals were met (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, help="bad-canary runs (default 10; --quick 2)")
    ap.add_argument("--interval", type=float, help="seconds per canary step (default 10; --quick 3)")
    ap.add_argument("--sample-interval", type=float, default=0.5, help="seconds between samples (0.5)")
    ap.add_argument("--failure-limit", type=int, default=0, help="failed samples tolerated (default 0)")
    ap.add_argument("--initial-delay", type=float, default=3.0, help="analysis.initialDelay, seconds (3)")
    ap.add_argument("--quick", action="store_true", help="2 runs and 3 s steps")
    ap.add_argument(
        "--kubeconfig", type=Path, help="use this cluster (with the CRDs) instead of starting one"
    )
    ap.add_argument("--prometheus", help="use this Prometheus (needs --fixture, already scraped by it)")
    ap.add_argument("--fixture", help="the agentgateway-metrics fixture's URL (with --prometheus)")
    ap.add_argument("--deadline", type=float, default=900.0, help="bound of the cases, seconds (900)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = ap.parse_args(argv)
    args.runs = args.runs if args.runs is not None else (2 if args.quick else 10)
    args.interval = args.interval if args.interval is not None else (3.0 if args.quick else 10.0)
    if args.runs < 1 or args.interval <= 0 or args.sample_interval <= 0 or args.failure_limit < 0:
        ap.error("need --runs >= 1, --interval > 0, --sample-interval > 0, --failure-limit >= 0")
    if (args.prometheus is None) != (args.fixture is None):
        ap.error("--prometheus and --fixture go together")
    for url in (args.prometheus, args.fixture):
        if url is not None and urllib.parse.urlsplit(url).hostname != "127.0.0.1":
            ap.error(f"{url}: only 127.0.0.1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
            results = run(args, Path(tmp))
    except (Deadline, ComponentError) as exc:
        print(f"bench/rollout stopped: {exc}", file=sys.stderr)
        return 2
    except Missed as exc:
        print(f"bench/rollout: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if results["meets_goals"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
