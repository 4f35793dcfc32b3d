"""Forge benchmark: how soon a pull request merged on the forge is applied, on the real local Gitea, the
project's webhook receiver, NATS, the daemon and a kube-apiserver (all on 127.0.0.1).

Starts a local cluster with NATS and the Gitea forge (``LocalCluster(..., with_forge=True)``, what
``reconciler cluster up --forge`` runs) in a temporary state directory, unless given: ``--kubeconfig``,
``--nats`` and ``--forge-url`` with ``--forge-token-file`` use running ones (as tests/forge does). Then it
creates a private repository on the forge holding one environment ``staging`` (one ConfigMap in a
namespace of its own), two push webhooks on it, both filtered to ``main`` and in this order:

1. a plain loopback receiver in this process that only stamps each delivery's arrival (the anchor);
2. the project's receiver (``python -m webhooks``, a process of its own, Gitea provider, HMAC secret),
   publishing to NATS,

and runs the daemon (:class:`reconciler.runtime.Daemon`, in this process) following the repository over
HTTP with git credentials from its environment (``GIT_CONFIG_*`` ``http.extraHeader``, never in the URL),
a poll interval of an hour (only webhooks trigger passes), commit statuses and outcome notes on.

Each of ``--merges`` runs (default 20): a branch changing the ConfigMap's value, pushed, a pull request
opened through the API, then merged through the API (``POST …/pulls/{n}/merge``, as a person's click
does). Times are the event loop's clock from the moment the merge request is sent:

* ``merge→applied``: to the daemon's pass result for that merge commit (``PassResult`` with revision
  ``main@sha1:<merge>``, ``ok``; the ConfigMap then has the value on the API server, which is checked);
* ``merge→delivery`` (anchor, measured in the same run): to the forge's push webhook for that merge
  commit reaching the plain receiver — the forge's own latency, which any webhook-driven reconciler waits
  for;
* ``delivery→applied``: the difference, per merge: receiver → NATS → daemon → fetch → render → apply;
* ``merge API`` and ``pass``: the merge request's own answer time, and the daemon's pass duration.

Printed as p50/p95/max, with the ratio ``merge→applied p95 / merge→delivery p95``. A run ends when the
gate's ``reconciler/staging`` status of its merge commit is posted, so runs do not overlap.

Named anchors (not measured; their defaults): Flux's source-controller fetches a ``GitRepository`` at
its ``spec.interval`` (1 minute in Flux's examples) and Argo CD polls repositories every 3 minutes
(``timeout.reconciliation: 180s``); both react sooner when a Git webhook reaches them (Flux's
``Receiver``, Argo CD's ``/api/webhook``). A merge waits on average half the interval for a poll: 30 s
and 90 s. The printed ratios ``30 s / p95`` and ``90 s / p95`` say how much sooner the webhook path is.

Usage:
    .venv/bin/python bench/forge/bench_forge.py [--merges 20] [--json results.json]
    .venv/bin/python bench/forge/bench_forge.py --quick     # 3 merges

Exit status: 0 when every merge was applied, 1 when one was not (within ``--timeout`` seconds), 2 when
the run could not be done (a component did not start, ``--deadline`` passed). Everything binds to
127.0.0.1; every process, namespace and repository it made is stopped or deleted at the end, also on an
error or Ctrl-C (``--keep`` keeps the temporary directory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from aiohttp import web  # noqa: E402

from reconciler.cluster.client import KubeClient  # noqa: E402
from reconciler.devcluster import LocalCluster  # noqa: E402
from reconciler.devcluster.forge import Forge, git_auth_env  # noqa: E402
from reconciler.devcluster.gitea import read_token  # noqa: E402
from reconciler.devcluster.process import free_port  # noqa: E402
from reconciler.errors import ReconcilerError  # noqa: E402
from reconciler.model import ObjectRef, PassResult  # noqa: E402

SECRET = "bench-forge-hook-secret"
#: Poll intervals of the named anchors (seconds): a merge waits half of one on average.
FLUX_INTERVAL = 60.0
ARGO_INTERVAL = 180.0


class Failed(Exception):
    """The run could not be done (exit 2)."""


@dataclass
class Run:
    """One merge."""

    number: int
    merge: str = ""
    merge_api: float | None = None
    merge_to_delivery: float | None = None
    merge_to_applied: float | None = None
    pass_seconds: float | None = None
    value_seen: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "pull_request": self.number,
            "merge_commit": self.merge,
            "merge_api_s": _round(self.merge_api),
            "merge_to_delivery_s": _round(self.merge_to_delivery),
            "merge_to_applied_s": _round(self.merge_to_applied),
            "delivery_to_applied_s": _round(
                None
                if self.merge_to_applied is None or self.merge_to_delivery is None
                else self.merge_to_applied - self.merge_to_delivery
            ),
            "pass_s": _round(self.pass_seconds),
            "applied_value_on_api_server": self.value_seen,
        }


@dataclass
class Clock:
    """What the event loop saw, keyed by commit: deliveries to the plain receiver, pass results."""

    deliveries: dict[str, float] = field(default_factory=dict)
    applied: dict[str, tuple[float, PassResult]] = field(default_factory=dict)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "p95": round(pct(values, 95), 3),
        "max": round(max(values), 3),
    }


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Bench Person",
        "GIT_AUTHOR_EMAIL": "bench@example.test",
        "GIT_COMMITTER_NAME": "Bench Person",
        "GIT_COMMITTER_EMAIL": "bench@example.test",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Failed(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def configmap(value: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-merges\n"
        f"data:\n  merge: {json.dumps(value)}\n"
    )


async def until(pred: Any, timeout: float, what: str, interval: float = 0.01) -> Any:
    """Poll ``pred`` (sync) every ``interval`` s until truthy (returned) or raise :class:`TimeoutError`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(interval)


class Receiver:
    """The project's webhook receiver as its own process (``python -m webhooks``)."""

    def __init__(self, work: Path, nats_url: str) -> None:
        self.port = free_port()
        self.config = work / "webhooks.yaml"
        self.config.write_text(
            f"host: 127.0.0.1\nport: {self.port}\nnatsUrl: {nats_url}\n"
            f"receivers:\n- name: gitea\n  provider: gitea\n  secret: {SECRET}\n"
        )
        self.log = work / "webhooks.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook/gitea"

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "webhooks", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"the webhook receiver exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.05)
        raise Failed("the webhook receiver was not ready (NATS connected) in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


async def plain_receiver(clock: Clock) -> tuple[web.AppRunner, str]:
    """A loopback receiver that stamps the arrival of each push delivery by its ``after`` commit."""
    loop = asyncio.get_running_loop()

    async def handle(request: web.Request) -> web.Response:
        at = loop.time()
        body = await request.read()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            clock.deliveries.setdefault(json.loads(body)["after"], at)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/hook"


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from reconciler.runtime import Daemon
    from reconciler.settings import DaemonSettings

    cluster: LocalCluster | None = None
    kubeconfig, nats_url, forge_url = args.kubeconfig, args.nats, args.forge_url
    token = args.forge_token_file.read_text().strip() if args.forge_token_file else ""
    if not (kubeconfig and nats_url and forge_url and token):
        print("starting a local cluster with NATS and the forge …", file=sys.stderr)
        cluster = LocalCluster(work / "cluster", nodes=1, with_prometheus=False, with_forge=True)
        st = cluster.up(progress=lambda m: print(f"  {m}", file=sys.stderr))
        kubeconfig, nats_url, forge_url = Path(st.kubeconfig), st.nats_url, st.gitea_url
        token = read_token(cluster.gitea_files())
    suffix = uuid.uuid4().hex[:6]
    namespace = f"bench-forge-{suffix}"
    kube = KubeClient(kubeconfig)
    receiver = Receiver(work, nats_url)
    forge = Forge(forge_url, token)
    daemon: Any = None
    plain: web.AppRunner | None = None
    repo_name = f"bench-forge-{suffix}"
    owner = ""
    saved_env = dict(os.environ)
    try:
        me = await forge.me()
        owner = me.login
        # the daemon's and this process's git authenticate through the environment
        os.environ.update(git_auth_env(owner, token, base={}))
        os.environ.update({"RECONCILER_GIT_HOST": "gitea", "RECONCILER_GIT_HOST_TOKEN": token})
        kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            ObjectRef(kind="Namespace", name=namespace),
            field_manager="bench",
        )
        repo = await forge.create_repo(repo_name, private=True)
        person = work / "person"
        person.mkdir()
        git(person, "init", "-q", "-b", "main")
        git(person, "remote", "add", "origin", repo.clone_url)
        (person / "envs").mkdir()
        (person / "envs" / "staging.yaml").write_text(
            f"overlay: overlays/staging\nnamespace: {namespace}\nsync: {{interval: 3600}}\n"
            "health: {timeout: 30}\npromotion: {via: pr}\n"
        )
        overlay = person / "overlays" / "staging"
        overlay.mkdir(parents=True)
        (overlay / "kustomization.yaml").write_text("resources:\n- configmap.yaml\n")
        (overlay / "configmap.yaml").write_text(configmap("0"))
        git(person, "add", "-A")
        git(person, "commit", "-q", "-m", "bench: the staging environment")
        first = git(person, "rev-parse", "HEAD")
        git(person, "push", "-q", "origin", "main")
        await forge.wait_branch(owner, repo_name, "main", first)

        clock = Clock()
        plain, plain_url = await plain_receiver(clock)
        receiver.start()
        # the anchor's hook first: when the forge delivers one after the other, the anchor is not the later
        await forge.add_push_webhook(owner, repo_name, plain_url, "anchor-secret", branch_filter="main")
        await forge.add_push_webhook(owner, repo_name, receiver.url, SECRET, branch_filter="main")
        loop = asyncio.get_running_loop()

        def on_result(result: PassResult) -> None:
            if result.ok and "@sha1:" in result.revision:
                clock.applied.setdefault(result.revision.rsplit("@sha1:", 1)[1], (loop.time(), result))

        daemon = Daemon(
            DaemonSettings(
                repo=repo.clone_url,
                envs=["staging"],
                kubeconfig=kubeconfig,
                nats_url=nats_url,
                cache_dir=work / "daemon-cache",
                watch_local=False,
                poll_interval=3600,
            ),
            on_result=on_result,
        )
        if daemon.statuses is None:
            raise Failed("the daemon would post no commit statuses (no Git host token)")
        await daemon.start()
        await until(lambda: first in clock.applied, 60, "the first pass")
        statuses = daemon.statuses

        def status_posted(sha: str) -> bool:
            return any(p[1] == sha and p[2] in ("success", "failure") for p in statuses.posted)

        await until(lambda: status_posted(first), 60, "the first health gate")

        runs: list[Run] = []
        cm = ObjectRef(kind="ConfigMap", namespace=namespace, name="bench-merges")
        for i in range(1, args.merges + 1):
            branch = f"bench/{i}"
            git(person, "checkout", "-q", "-B", branch, "main")
            (overlay / "configmap.yaml").write_text(configmap(str(i)))
            git(person, "commit", "-q", "-am", f"bench: merge {i}")
            head = git(person, "rev-parse", "HEAD")
            git(person, "push", "-q", "origin", branch)
            await forge.wait_branch(owner, repo_name, branch, head)
            pr = await forge.open_pull(owner, repo_name, head=branch, base="main", title=f"bench merge {i}")
            r = Run(pr.number)
            t0 = loop.time()
            await forge.merge_pull(owner, repo_name, pr.number)
            r.merge_api = loop.time() - t0
            merged = await forge.get_pull(owner, repo_name, pr.number)
            if not merged.merge_commit_sha:
                raise Failed(f"pull request #{pr.number} has no merge commit")
            r.merge = sha = merged.merge_commit_sha
            try:
                await until(lambda: sha in clock.applied, args.timeout, f"merge {i} applied")  # noqa: B023
            except TimeoutError as exc:
                print(f"merge {i}: {exc}", file=sys.stderr)
                runs.append(r)
                continue
            at, result = clock.applied[sha]
            r.merge_to_applied, r.pass_seconds = at - t0, result.duration
            live = await asyncio.to_thread(kube.get, cm) or {}
            r.value_seen = (live.get("data") or {}).get("merge") == str(i)
            with contextlib.suppress(TimeoutError):
                await until(lambda: sha in clock.deliveries, 30, f"merge {i} delivered")  # noqa: B023
            if sha in clock.deliveries:
                r.merge_to_delivery = clock.deliveries[sha] - t0
            await until(lambda: status_posted(sha), 60, f"merge {i} health gate")  # noqa: B023
            git(person, "checkout", "-q", "main")
            git(person, "pull", "-q", "--ff-only", "origin", "main")
            runs.append(r)
            print(
                f"merge {i:3d}: API {_fmt(r.merge_api)}  →delivery {_fmt(r.merge_to_delivery)}"
                f"  →applied {_fmt(r.merge_to_applied)}  (pass {_fmt(r.pass_seconds)})",
                file=sys.stderr,
            )
        return report(args, runs, forge_version=await forge.version())
    finally:
        if daemon is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(daemon.stop(), 60)
        receiver.stop()
        if plain is not None:
            await plain.cleanup()
        os.environ.clear()
        os.environ.update(saved_env)
        with contextlib.suppress(Exception):
            kube.delete(ObjectRef(kind="Namespace", name=namespace))
        kube.close()
        if owner and not args.keep:
            with contextlib.suppress(Exception):
                await forge.delete_repo(owner, repo_name)
        await forge.close()
        if cluster is not None:
            cluster.down(progress=lambda m: None)


def _fmt(v: float | None) -> str:
    return "   -   " if v is None else f"{v:6.3f}s"


def report(args: argparse.Namespace, runs: list[Run], *, forge_version: str) -> dict[str, Any]:
    applied = [r.merge_to_applied for r in runs if r.merge_to_applied is not None]
    delivered = [r.merge_to_delivery for r in runs if r.merge_to_delivery is not None]
    behind = [
        r.merge_to_applied - r.merge_to_delivery
        for r in runs
        if r.merge_to_applied is not None and r.merge_to_delivery is not None
    ]
    passes = [r.pass_seconds for r in runs if r.pass_seconds is not None]
    merge_api = [r.merge_api for r in runs if r.merge_api is not None]
    all_applied = len(applied) == len(runs) and all(r.value_seen for r in runs)
    out: dict[str, Any] = {
        "config": {"merges": args.merges, "quick": args.quick, "forge": f"gitea {forge_version}"},
        "runs": [r.as_dict() for r in runs],
        "all_applied": all_applied,
    }
    if applied and delivered:
        a, d = summary(applied), summary(delivered)
        out["merge_to_applied_seconds"] = a
        out["merge_to_delivery_seconds"] = d
        out["delivery_to_applied_seconds"] = summary(behind) if behind else None
        out["pass_seconds"] = summary(passes) if passes else None
        out["merge_api_seconds"] = summary(merge_api) if merge_api else None
        out["ratios"] = {
            "merge_to_applied_p95 / merge_to_delivery_p95": round(a["p95"] / d["p95"], 2)
            if d["p95"]
            else None,
            "flux_mean_poll_wait / merge_to_applied_p95": round(FLUX_INTERVAL / 2 / a["p95"], 1),
            "argo_mean_poll_wait / merge_to_applied_p95": round(ARGO_INTERVAL / 2 / a["p95"], 1),
        }
        out["anchors"] = {
            "measured": {"name": "forge merge → webhook delivered (loopback)", "p95_seconds": d["p95"]},
            "named": [
                {"name": "flux GitRepository interval (mean wait = half)", "seconds": FLUX_INTERVAL},
                {"name": "argo-cd timeout.reconciliation (mean wait = half)", "seconds": ARGO_INTERVAL},
            ],
        }
    return out


def print_report(res: dict[str, Any]) -> None:
    print(json.dumps(res, indent=2))
    if "merge_to_applied_seconds" not in res:
        return
    a, d = res["merge_to_applied_seconds"], res["merge_to_delivery_seconds"]
    print(
        f"\nmerge→applied   p50 {a['p50']:.3f} s  p95 {a['p95']:.3f} s  max {a['max']:.3f} s\n"
        f"merge→delivery  p50 {d['p50']:.3f} s  p95 {d['p95']:.3f} s  max {d['max']:.3f} s"
        "   (the forge itself)",
        file=sys.stderr,
    )
    for label, ratio in res["ratios"].items():
        print(f"ratio {label} = {ratio}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--merges", type=int, default=20, help="pull requests merged (default 20)")
    ap.add_argument("--quick", action="store_true", help="3 merges (a smoke run)")
    ap.add_argument("--kubeconfig", type=Path, help="an existing cluster (with --nats and --forge-url)")
    ap.add_argument("--nats", help="an existing NATS with JetStream (nats://127.0.0.1:PORT)")
    ap.add_argument("--forge-url", help="an existing local Gitea (http://127.0.0.1:PORT/)")
    ap.add_argument("--forge-token-file", type=Path, help="its administrator's API token (a file)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds one merge may take to be applied")
    ap.add_argument("--deadline", type=float, default=900.0, help="seconds the whole run may take")
    ap.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory and the repository")
    args = ap.parse_args(argv)
    if args.quick:
        args.merges = 3
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="bench-forge-"))

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        res = asyncio.run(asyncio.wait_for(run(args, work), args.deadline))
    except (Failed, ReconcilerError, TimeoutError, OSError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_report(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0 if res["all_applied"] else 1


if __name__ == "__main__":
    sys.exit(main())
