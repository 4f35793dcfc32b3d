"""The crash-consistency harness: a scripted workload, a daemon that is killed at failpoints and
restarted, and the oracle that checks every run.

The workload is a list of :class:`Step` drawn from a seeded random generator: Git changes to an
environment's ConfigMaps (add, edit, remove), image versions pushed through a Docker Hub webhook (some
delivered twice), or both at once. Before a step's triggers are sent, one failpoint
(:mod:`reconciler.failpoints`) is armed in the running daemon through its failpoints file, chosen among
the points the step is sure to reach (``apply`` and ``prune`` at a random object of the step). The daemon
kills its own process group there; the harness checks the inventory at the moment of death, restarts the
daemon unarmed, and waits until the oracle — the harness's own model of the workload, never the daemon's
view — finds nothing left to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
from reconciler_testing import free_port

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.cluster.manager import FIELD_MANAGER
from reconciler.devcluster import process

RECONCILER = Path(sys.executable).parent / "reconciler"
IMAGE = "docker.io/acme/crash-agent"
HUB_REPO = "acme/crash-agent"
ENV = "crash"
HUB_TOKEN = "crash-hub-token"
GH_SECRET = "crash-gh-secret"
AUTHOR = ("crash harness", "crash@reconciler.local")

GIT_POINTS = ("fetch", "render", "record", "ack")
IMAGE_POINTS = ("commit", "push", "ack", "fetch", "render", "record")


@dataclass
class Step:
    """One run of the workload: what changes and where the daemon dies."""

    index: int
    add: dict[str, str] = field(default_factory=dict)
    edit: dict[str, str] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    version: str | None = None
    duplicate: str = ""  # "" | "same" (identical body again) | "again" (same tag, new delivery)
    point: str = ""
    hit: int = 1

    @property
    def kind(self) -> str:
        git_part = bool(self.add or self.edit or self.remove)
        return "both" if git_part and self.version else ("git" if git_part else "image")


def initial_configmaps() -> dict[str, str]:
    """The environment's ConfigMaps (name → value) before the first step."""
    return {f"cm-{i:03d}": f"start-{i}" for i in range(4)}


def plan_workload(runs: int, seed: int) -> list[Step]:
    """``runs`` steps drawn from ``random.Random(seed)``; versions ``1.<n>.0`` only ever increase."""
    rng = random.Random(seed)
    cms = initial_configmaps()
    serial = 4
    steps: list[Step] = []
    for i in range(runs):
        step = Step(index=i)
        kind = rng.choice(("git", "git", "image", "both"))
        if kind in ("git", "both"):
            for _ in range(rng.randint(0, 3)):
                name = f"cm-{serial:03d}"
                serial += 1
                step.add[name] = f"v{i}-new"
            for name in rng.sample(sorted(cms), rng.randint(0, min(2, len(cms)))):
                step.edit[name] = f"v{i}-edit"
            removable = [n for n in sorted(cms) if n not in step.edit]
            for name in rng.sample(removable, rng.randint(0, max(0, min(3, len(removable) - 2)))):
                step.remove.append(name)
            if not (step.add or step.edit or step.remove):
                step.add[f"cm-{serial:03d}"] = f"v{i}-new"
                serial += 1
            cms.update(step.add)
            cms.update(step.edit)
            for name in step.remove:
                del cms[name]
        if kind in ("image", "both"):
            step.version = f"1.{i + 1}.0"
            step.duplicate = rng.choice(("", "", "same", "again"))
        points: list[tuple[str, int]] = []
        if step.add or step.edit or step.remove:
            points += [(p, 1) for p in GIT_POINTS]
        if step.version:
            points += [(p, 1) for p in IMAGE_POINTS if (p, 1) not in points]
        writes = len(step.add) + len(step.edit) + (1 if step.version else 0)
        if writes:
            points += [("apply", rng.randint(1, writes))] * 2  # the most interesting points, twice as likely
        if step.add:
            points.append(("inventory", 1))
        if step.remove:
            points += [("prune", rng.randint(1, len(step.remove)))] * 2
        step.point, step.hit = rng.choice(points)
        steps.append(step)
    return steps


@dataclass
class Model:
    """What the environment must look like: the oracle's own record of the workload."""

    configmaps: dict[str, str]
    tag: str = "1.0.0"
    versions: list[str] = field(default_factory=list)

    def apply(self, step: Step) -> None:
        """Record ``step``'s changes."""
        self.configmaps.update(step.add)
        self.configmaps.update(step.edit)
        for name in step.remove:
            del self.configmaps[name]
        if step.version:
            self.versions.append(step.version)
            self.tag = step.version


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def wait_until(pred: Any, timeout: float, interval: float = 0.1) -> Any:
    """Poll ``pred`` until it returns something truthy (returned) or ``timeout`` seconds pass (``None``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# -- the environment repository ---------------------------------------------------------------------


def _cm(name: str, value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {value}\n"


class Repo:
    """The environment repository: a bare remote served by ``git daemon`` on 127.0.0.1 (:attr:`url`, what
    the reconciler uses) and the harness's own clone (people's commits, pushed through the file system).

    A real Git server, not a path: with a path remote, ``git push`` runs the remote's ``receive-pack`` as
    a child of the reconciler, and the crash would kill the server side too, leaving locks no real
    server would leave.
    """

    def __init__(self, root: Path, namespace: str, model: Model) -> None:
        self.remote = root / "remote.git"
        self.work = root / "work"
        git.Repo.init(self.remote, bare=True, initial_branch="main").close()
        port = free_port()
        self.url = f"git://127.0.0.1:{port}/remote.git"
        self.server = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--listen=127.0.0.1",
                f"--port={port}",
                f"--base-path={root}",
                "--export-all",
                "--enable=receive-pack",
                "--informative-errors",
                str(root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(root / "git-daemon.log").open("w"),
            start_new_session=True,
        )
        if not wait_until(lambda: _listening(port), 15):
            self.close()
            raise AssertionError("git daemon did not start")
        self.repo = git.Repo.init(self.work, initial_branch="main")
        self.repo.git.remote("add", "origin", str(self.remote))
        self.namespace = namespace
        w = self.work
        (w / "envs").mkdir()
        (w / "envs" / f"{ENV}.yaml").write_text(
            "overlay: overlays/crash\n"
            f"namespace: {namespace}\n"
            "promotion: {via: push}\n"
            "sync: {interval: 5, allowMassPrune: true}\n"
            "health: {timeout: 30}\n"
            "imagePolicies:\n"
            "- name: agent\n"
            f"  image: {IMAGE}\n"
            "  policy: {semver: {range: '>=1.0.0'}}\n"
        )
        o = w / "overlays" / "crash"
        (o / "configmaps").mkdir(parents=True)
        (o / "kustomization.yaml").write_text(
            f"resources:\n- deployment.yaml\n- configmaps\nimages:\n- name: {IMAGE}\n  newTag: {model.tag}\n"
        )
        (o / "deployment.yaml").write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: agent\nspec:\n  replicas: 1\n"
            "  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n"
            f"    spec:\n      containers:\n      - name: agent\n        image: {IMAGE}:0.0.1\n"
        )
        self._write_configmaps(model.configmaps)
        self._commit("environment crash: first version")

    def _write_configmaps(self, cms: dict[str, str]) -> None:
        d = self.work / "overlays" / "crash" / "configmaps"
        for f in d.glob("cm-*.yaml"):
            if f.stem not in cms:
                f.unlink()
        for name, value in cms.items():
            (d / f"{name}.yaml").write_text(_cm(name, value))
        (d / "kustomization.yaml").write_text("resources:\n" + "".join(f"- {n}.yaml\n" for n in sorted(cms)))

    def _commit(self, message: str) -> str:
        self.repo.git.add(A=True)
        env = {"GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1]}
        env |= {"GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1]}
        self.repo.git.commit("-q", "-m", message, env=env)
        for _ in range(20):  # the daemon's image automation pushes to the same branch
            status, _out, err = self.repo.git.execute(
                ["git", "push", "-q", "origin", "main:main"], with_extended_output=True, with_exceptions=False
            )
            if status == 0:
                return str(self.repo.head.commit.hexsha)
            self.repo.git.pull("-q", "--rebase", "origin", "main", env=env)
        raise AssertionError(f"could not push the harness's commit: {err}")

    def change(self, step: Step, model: Model) -> tuple[str, str]:
        """Commit and push ``step``'s ConfigMap changes (``model`` already holds them); returns
        ``(before, after)`` commit ids."""
        self.repo.git.pull("-q", "--rebase", "origin", "main")
        before = str(self.repo.head.commit.hexsha)
        self._write_configmaps(model.configmaps)
        after = self._commit(
            f"run {step.index}: add {len(step.add)}, edit {len(step.edit)}, remove {len(step.remove)}"
        )
        return before, after

    def close(self) -> None:
        """Stop the Git server."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.pid, signal.SIGTERM)
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(10)

    def remote_git(self, *args: str) -> str:
        """``git <args>`` in the bare remote."""
        return subprocess.run(
            ["git", "-C", str(self.remote), *args], capture_output=True, text=True, check=True
        ).stdout

    def remote_tag(self) -> str | None:
        """The image tag the followed branch pins."""
        text = self.remote_git("show", "main:overlays/crash/kustomization.yaml")
        m = re.search(r"newTag:\s*['\"]?([^'\"\s#]+)", text)
        return m.group(1) if m else None

    def audit(self, versions: list[str]) -> dict[str, Any]:
        """Read the followed branch's history: empty commits, commits per image version, events lost
        (versions never committed) and duplicates (a version or an event committed more than once)."""
        log = self.remote_git("log", "--format=%H %P", "main").splitlines()
        empty: list[str] = []
        per_version = {v: 0 for v in versions}
        per_event: dict[str, int] = {}
        for line in log:
            sha, *parents = line.split()
            if len(parents) == 1:
                changed = self.remote_git("diff", "--name-only", parents[0], sha).strip()
                if not changed:
                    empty.append(sha)
            body = self.remote_git("log", "-1", "--format=%(trailers:only,unfold)", sha)
            for key, value in (ln.split(": ", 1) for ln in body.splitlines() if ": " in ln):
                if key == "Image":
                    m = re.search(r":(\d+\.\d+\.\d+)", value)
                    if m and m.group(1) in per_version:
                        per_version[m.group(1)] += 1
                elif key == "Image-Event":
                    per_event[value] = per_event.get(value, 0) + 1
        return {
            "commits": len(log),
            "empty": empty,
            "lost": [v for v, n in per_version.items() if n == 0],
            "duplicate_versions": {v: n for v, n in per_version.items() if n > 1},
            "duplicate_events": {e: n for e, n in per_event.items() if n > 1},
        }


# -- webhooks -----------------------------------------------------------------------------------------


class Webhooks:
    """``reconciler webhooks serve`` with a Docker Hub and a GitHub receiver, on a free loopback port."""

    def __init__(self, root: Path, nats_url: str) -> None:
        self.port = free_port()
        cfg = root / "webhooks.yaml"
        cfg.write_text(
            "receivers:\n"
            f"- {{name: hub, provider: dockerhub, secret: {HUB_TOKEN}}}\n"
            f"- {{name: gh, provider: github, secret: {GH_SECRET}}}\n"
        )
        self.log = root / "webhooks.log"
        self.proc = subprocess.Popen(
            [
                str(RECONCILER),
                "webhooks",
                "serve",
                "--config",
                str(cfg),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--nats",
                nats_url,
            ],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_until(self._ready, 30):
            self.close()
            raise AssertionError(f"webhook server did not start: {self.log.read_text()[-2000:]}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **headers},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)

    def image_pushed(self, tag: str, pushed_at: int) -> int:
        """Docker Hub's push webhook for ``acme/crash-agent:<tag>``; returns the HTTP status."""
        body = json.dumps(
            {
                "push_data": {"pushed_at": pushed_at, "pusher": "ci", "tag": tag},
                "repository": {"repo_name": HUB_REPO, "namespace": "acme", "name": "crash-agent"},
            }
        ).encode()
        return self._post(f"/hook/hub/{HUB_TOKEN}", body, {})

    def git_pushed(self, remote: str, before: str, after: str) -> int:
        """GitHub's push webhook for the environment repository; returns the HTTP status."""
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "before": before,
                "after": after,
                "repository": {"full_name": "acme/crash-envs", "clone_url": remote},
                "commits": [],
            }
        ).encode()
        sig = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sig,
        }
        return self._post("/hook/gh", body, headers)

    def close(self) -> None:
        """Stop the server."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


# -- the daemon ---------------------------------------------------------------------------------------


class DaemonProcess:
    """``reconciler run`` in its own process group, with a failpoints file the harness arms."""

    def __init__(self, root: Path, remote: str, kubeconfig: Path, nats_url: str, ack_wait: float) -> None:
        self.root = root
        self.failpoints = root / "failpoints"
        self.log = root / "daemon.log"
        self.argv = [
            str(RECONCILER),
            "run",
            "--repo",
            remote,
            "--kubeconfig",
            str(kubeconfig),
            "--nats",
            nats_url,
            "--interval",
            "5",
            "--http",
            "",
            "--log-format",
            "text",
        ]
        self.env = {
            **os.environ,
            "RECONCILER_CACHE_DIR": str(root / "cache"),
            "RECONCILER_FAILPOINTS_FILE": str(self.failpoints),
            "RECONCILER_IMAGE_ACK_WAIT": str(ack_wait),
            "RECONCILER_WATCH_LOCAL": "false",
            "COLUMNS": "200",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the daemon (unarmed)."""
        self.failpoints.unlink(missing_ok=True)
        self.starts += 1
        with self.log.open("a") as f:
            f.write(f"\n===== start {self.starts} =====\n")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )

    def arm(self, point: str, hit: int) -> None:
        """Arm one failpoint in the running daemon (read at its next failpoint call)."""
        tmp = self.failpoints.with_suffix(".tmp")
        tmp.write_text(f"{point}={hit}\n")
        tmp.replace(self.failpoints)

    def wait_dead(self, timeout: float) -> int | None:
        """Wait until the daemon exits; its return code, or ``None`` if it is still running."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def group_gone(self) -> bool:
        """Whether no process of the daemon's group is left (git children die with it)."""
        assert self.proc is not None
        return not process.group_members(self.proc.pid)

    def last_failpoint(self) -> str | None:
        """The failpoint named by the last ``failpoint … SIGKILL`` line of the log."""
        found = re.findall(r"failpoint (\w+) hit (\d+): SIGKILL", self.log.read_text(errors="replace"))
        return found[-1][0] if found else None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, the daemon's process group."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


# -- the oracle ---------------------------------------------------------------------------------------


def _managed_by_us(obj: dict[str, Any]) -> bool:
    return any(m.get("manager") == FIELD_MANAGER for m in obj["metadata"].get("managedFields") or [])


def live_objects(kube: KubeClient, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    """ConfigMaps and Deployments in ``namespace`` that the reconciler's field manager wrote."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for group, version, kind in (("", "v1", "ConfigMap"), ("apps", "v1", "Deployment")):
        items, _ = kube.list(group, version, kind, namespace=namespace)
        for o in items:
            if _managed_by_us(o) and o["metadata"].get("deletionTimestamp") is None:
                out[(kind, o["metadata"]["name"])] = o
    return out


def inventory_keys(kube: KubeClient, remote: str) -> set[tuple[str, str]]:
    """``(kind, name)`` of every entry of the environment's stored inventory."""
    inv = InventoryStore(kube, source=remote).load(ENV)
    return {(e.kind, e.name) for e in inv.entries}


def untracked(kube: KubeClient, remote: str, namespace: str) -> list[str]:
    """Live objects written by the reconciler that its inventory does not list (lost from it)."""
    live = live_objects(kube, namespace)
    inv = inventory_keys(kube, remote)
    return sorted(f"{k}/{n}" for (k, n) in live if (k, n) not in inv)


def differences(kube: KubeClient, repo: Repo, model: Model) -> list[str]:
    """What still differs from ``model``: in Git (the image version), on the cluster, in the inventory."""
    out: list[str] = []
    tag = repo.remote_tag()
    if tag != model.tag:
        out.append(f"Git pins {IMAGE}:{tag}, the newest pushed version is {model.tag}")
    live = live_objects(kube, repo.namespace)
    for name, value in model.configmaps.items():
        o = live.get(("ConfigMap", name))
        if o is None:
            out.append(f"ConfigMap/{name} missing")
        elif (o.get("data") or {}).get("value") != value:
            out.append(f"ConfigMap/{name} has {(o.get('data') or {}).get('value')!r}, want {value!r}")
    for kind, name in live:
        if kind == "ConfigMap" and name not in model.configmaps:
            out.append(f"ConfigMap/{name} was not pruned")
    dep = live.get(("Deployment", "agent"))
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"] if dep else None
    if image != f"{IMAGE}:{model.tag}":
        out.append(f"Deployment/agent runs {image}, want {IMAGE}:{model.tag}")
    want = {("ConfigMap", n) for n in model.configmaps} | {("Deployment", "agent")}
    inv = inventory_keys(kube, repo.url)
    if inv != want:
        out.append(f"inventory: extra {sorted(inv - want)}, missing {sorted(want - inv)}")
    return out


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]
