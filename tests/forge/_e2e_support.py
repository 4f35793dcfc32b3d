"""The end-to-end stack of promotion by pull request on the local Gitea forge, shared by the e2e tests
(tests/forge/test_forge_e2e.py) and reusable elsewhere (``from _e2e_support import Stack``):

* :class:`Receiver` — the project's webhook receiver (:func:`webhooks.server.serve_async`) in a thread of
  its own on 127.0.0.1, publishing to the session's NATS: a ``gitea`` receiver (push and pull-request
  events, signed with :data:`GITEA_SECRET`) and a ``harbor`` one (registry pushes, token
  :data:`HARBOR_TOKEN`);
* :class:`Stack` — one environment repository hosted on the forge (a private repository: every fetch is
  authenticated), its two environments ``dev`` (``promotion.via: push``, an image policy) and ``staging``
  (``from: dev, via: pr``), each in a namespace of its own on the session's API server, a Gitea webhook
  (push + pull_request, with the secret) pointed at the receiver, a person's clone, and the daemon
  (:class:`reconciler.runtime.Daemon`) following ``http://127.0.0.1:<port>/<owner>/<repo>.git`` with git
  credentials from the environment (:func:`reconciler.devcluster.forge.git_auth_env` in ``GIT_CONFIG_*``;
  never in the URL), ``RECONCILER_GIT_HOST=gitea`` and the forge token, and a poll interval of an hour:
  only webhooks trigger its passes.

Nothing here is a stand-in: every request goes to the real Gitea, NATS, API server and receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _forge_support import LocalForge, start_forge
from reconciler_testing import REPO_ROOT, free_port

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.devcluster.forge import CommitStatus, Forge, git_auth_env
from reconciler.model import ObjectRef, PassResult
from reconciler.runtime import Daemon
from reconciler.settings import DaemonSettings
from webhooks.config import ReceiverConfig, WebhookSettings
from webhooks.server import serve_async

GITEA_SECRET = "e2e-gitea-hook-secret-0001"
HARBOR_TOKEN = "Bearer e2e-harbor-hook-token-0001"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DIGEST_C = "sha256:" + "c" * 64
#: Commit statuses of the project on the forge.
CHECK = "reconciler/check"


def cli_argv(*args: str) -> list[str]:
    """``reconciler ARGS`` as a subprocess of this interpreter."""
    return [sys.executable, "-m", "reconciler.cli", *args]


class Receiver:
    """The project's webhook receiver (``webhooks.server.serve_async``) running in a thread of its own
    with its own event loop, on a free port of 127.0.0.1, publishing to ``nats_url``."""

    def __init__(self, nats_url: str) -> None:
        self.port = free_port()
        self.settings = WebhookSettings(
            host="127.0.0.1",
            port=self.port,
            nats_url=nats_url,
            receivers=[
                ReceiverConfig.model_validate({"name": "gitea", "provider": "gitea", "secret": GITEA_SECRET}),
                ReceiverConfig.model_validate(
                    {"name": "harbor", "provider": "harbor", "secret": HARBOR_TOKEN}
                ),
            ],
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def url(self, receiver: str) -> str:
        """``http://127.0.0.1:<port>/hook/<receiver>``."""
        return f"http://127.0.0.1:{self.port}/hook/{receiver}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until ``/readyz`` says NATS is connected.

        Raises:
            RuntimeError: not ready within ``timeout`` seconds (or the server failed).
        """
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready.set()
            await serve_async(self.settings, self._stop)

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # reported by start() / stop()
                self._error = exc
                ready.set()

        self._thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._error is not None:
                raise RuntimeError(f"the webhook receiver failed: {self._error!r}")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the webhook receiver was not ready within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop it and wait for its thread."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def metric(self, provider: str, result: str) -> float:
        """``reconciler_webhook_deliveries_total{provider, result}`` as its ``/metrics`` serves it (0 when
        absent)."""
        import urllib.request

        with urllib.request.urlopen(self.base + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        want = f'reconciler_webhook_deliveries_total{{provider="{provider}",result="{result}"}}'
        for line in text.splitlines():
            if line.startswith(want):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@dataclass
class Names:
    """Per-stack names: environments ``dev``/``staging`` live in namespaces of their own, and the image
    is unique so that registry events of one stack never reach another."""

    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    @property
    def ns_dev(self) -> str:
        return f"t-e2e-dev-{self.suffix}"

    @property
    def ns_stg(self) -> str:
        return f"t-e2e-stg-{self.suffix}"

    @property
    def project(self) -> str:
        return f"e2e-{self.suffix}"

    @property
    def image(self) -> str:
        return f"harbor.test/{self.project}/clock-mcp"


def kustomization(image: str, tag: str, digest: str | None, *, extra: str = "") -> str:
    """An overlay on ``../base`` pinning ``image`` to ``tag`` (and ``digest``)."""
    pin = f"\n  digest: {digest}" if digest else ""
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources:\n"
        "- ../base\n"
        "images:\n"
        f"- name: {image}   # the clock MCP server\n"
        f"  newTag: {tag}{pin}\n"
        f"{extra}"
    )


def repo_files(n: Names, *, dev: tuple[str, str], staging: tuple[str, str]) -> dict[str, str]:
    """The environment repository: dev (push, image policy pinning digests), staging (pr from dev)."""
    return {
        "envs/dev.yaml": (
            f"overlay: overlays/dev\nnamespace: {n.ns_dev}\n"
            "sync: {interval: 3600, allowMassPrune: true}\n"
            "health: {timeout: 60, noControllerAfter: 5}\n"
            "promotion: {via: push}\n"
            "imagePolicies:\n"
            "- name: clock\n"
            f"  image: {n.image}\n"
            "  policy: {semver: {range: '>=0.1.0'}}\n"
            "  digest: pin\n"
        ),
        "envs/staging.yaml": (
            f"overlay: overlays/staging\nnamespace: {n.ns_stg}\n"
            "sync: {interval: 3600, allowMassPrune: true}\n"
            "health: {timeout: 60, noControllerAfter: 5}\n"
            "promotion: {from: dev, via: pr, requireHealth: healthy}\n"
            "onFailure: none\n"
        ),
        "overlays/base/kustomization.yaml": "resources:\n- deployment.yaml\n",
        "overlays/base/deployment.yaml": (
            "apiVersion: apps/v1\n"
            "kind: Deployment\n"
            "metadata:\n"
            "  name: clock-mcp\n"
            "  labels: {app.kubernetes.io/name: clock-mcp}\n"
            "spec:\n"
            "  replicas: 1\n"
            "  selector:\n"
            "    matchLabels: {app.kubernetes.io/name: clock-mcp}\n"
            "  template:\n"
            "    metadata:\n"
            "      labels: {app.kubernetes.io/name: clock-mcp}\n"
            "    spec:\n"
            "      containers:\n"
            "      - name: server\n"
            f"        image: {n.image}:0.0.1\n"
        ),
        "overlays/dev/kustomization.yaml": kustomization(n.image, *dev),
        "overlays/staging/kustomization.yaml": kustomization(n.image, *staging),
    }


@dataclass
class Seen:
    """A pass result as the daemon reported it (``at``: ``time.monotonic()``)."""

    at: float
    result: PassResult


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """``git ARGS`` in ``cwd`` as a person (the environment's credentials apply: GIT_CONFIG_*)."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Dana Dev",
        "GIT_AUTHOR_EMAIL": "dana@example.test",
        "GIT_COMMITTER_NAME": "Dana Dev",
        "GIT_COMMITTER_EMAIL": "dana@example.test",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


async def until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``pred`` (a function, or a coroutine function) until it returns something truthy, which is
    returned; raises AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(interval)


@dataclass
class CliResult:
    """A finished ``reconciler`` subprocess."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Stack:
    """One environment repository on the forge with its webhook, namespaces, person's clone and daemon
    (see the module docstring). Use :func:`open_stack`."""

    def __init__(
        self,
        forge: LocalForge,
        client: Forge,
        receiver: Receiver,
        kube: KubeClient,
        kubeconfig: Path,
        nats_url: str,
        tmp: Path,
        names: Names,
    ) -> None:
        self.forge = forge
        self.client = client
        self.receiver = receiver
        self.kube = kube
        self.kubeconfig = kubeconfig
        self.nats_url = nats_url
        self.tmp = tmp
        self.n = names
        self.owner = forge.admin
        self.name = f"envs-{names.suffix}"
        self.clone_url = ""
        self.work = tmp / "person"
        self.daemon: Daemon | None = None
        self.seen: list[Seen] = []
        self.hook_id = 0
        self._clients: list[Forge] = []  # API clients made here (closed by close())

    # -- set-up ------------------------------------------------------------------------------------

    async def create(
        self,
        *,
        dev: tuple[str, str] = ("0.1.0", DIGEST_A),
        staging: tuple[str, str] = ("0.1.0", DIGEST_A),
        hook_secret: str = GITEA_SECRET,
    ) -> str:
        """Create the repository (private), push its first commit from the person's clone, add the
        webhook (push, pull_request, pull_request_sync) with ``hook_secret``, and create the namespaces.
        Returns the first commit."""
        repo = await self.client.create_repo(self.name, private=True)
        self.clone_url = repo.clone_url
        assert "@" not in self.clone_url.split("://", 1)[1].split("/", 1)[0]
        self.work.mkdir(parents=True)
        git(self.work, "init", "-q", "-b", "main")
        git(self.work, "remote", "add", "origin", self.clone_url)
        for rel, text in repo_files(self.n, dev=dev, staging=staging).items():
            self.write(rel, text)
        first = self.commit("bootstrap the environment repository")
        await self.push("main")
        hook = await self.client.add_push_webhook(
            self.owner,
            self.name,
            self.receiver.url("gitea"),
            hook_secret,
            events=("push", "pull_request", "pull_request_sync"),
        )
        self.hook_id = hook.id
        for ns in (self.n.ns_dev, self.n.ns_stg):
            self.kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                ObjectRef(kind="Namespace", name=ns),
                field_manager="tests",
            )
        return first

    async def start_daemon(self, **overrides: Any) -> Daemon:
        """Start the daemon for dev and staging (poll interval one hour: webhooks trigger the passes)."""
        values: dict[str, Any] = {
            "repo": self.clone_url,
            "envs": ["dev", "staging"],
            "kubeconfig": self.kubeconfig,
            "nats_url": self.nats_url,
            "cache_dir": self.tmp / "daemon-cache",
            "watch_local": False,
            "poll_interval": 3600,
            "drift_watch": False,
            **overrides,
        }
        daemon = Daemon(DaemonSettings(**values))
        assert daemon.statuses is not None, "the daemon posts no commit statuses (no Git host token?)"
        loop = asyncio.get_running_loop()
        daemon.on_result = lambda r: self.seen.append(Seen(loop.time(), r))
        self.daemon = daemon
        await daemon.start()
        return daemon

    async def close(self) -> None:
        """Stop the daemon and delete the namespaces (the repository stays on the module's forge)."""
        if self.daemon is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.daemon.stop(), 60)
            self.daemon = None
        for ns in (self.n.ns_dev, self.n.ns_stg):
            with contextlib.suppress(Exception):
                self.kube.delete(ObjectRef(kind="Namespace", name=ns))
        for c in self._clients:
            await c.close()

    # -- the forge going down and coming back --------------------------------------------------------

    async def stop_forge(self) -> None:
        """Stop the forge's process (``LocalCluster.down``: SIGTERM, then wait until its port is free)."""
        stopped = await asyncio.to_thread(self.forge.cluster.down, progress=lambda m: None)
        assert stopped == ["gitea"], stopped

    async def start_forge(self) -> float:
        """Start the forge again on its recorded port with its data (as ``cluster up`` does) and use a new
        API client (the old one's pooled connections died with the process); returns the seconds it took."""
        t0 = time.monotonic()
        again = await asyncio.to_thread(start_forge, self.forge.cluster.state_dir)
        assert again.url == self.forge.url and again.token == self.forge.token
        took = time.monotonic() - t0
        self.client = again.client()
        self._clients.append(self.client)
        return took

    # -- the person's clone -------------------------------------------------------------------------

    def write(self, rel: str, text: str) -> None:
        p = self.work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def read(self, rel: str) -> str:
        return (self.work / rel).read_text()

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.work, *args, check=check)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    async def push(self, *refspecs: str, force: bool = False) -> None:
        """``git push origin REFSPECS`` over HTTP (credentials from the environment), then wait until the
        forge has recorded each branch at the pushed commit."""
        args = ["push", "-q", *(["--force"] if force else []), "origin", *refspecs]
        await asyncio.to_thread(self.git, *args)
        for spec in refspecs:
            src, _, dst = spec.lstrip("+").partition(":")
            sha = self.git("rev-parse", src)
            await self.client.wait_branch(self.owner, self.name, dst or src, sha)

    def pull(self) -> str:
        """Fetch and hard-reset the clone's ``main`` to the forge's; returns its head."""
        self.git("fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
        self.git("checkout", "-q", "-B", "main", "origin/main")
        return self.git("rev-parse", "HEAD")

    # -- what the forge, the daemon and the API server say ------------------------------------------

    async def head(self, branch: str = "main") -> str | None:
        return await self.client.branch_sha(self.owner, self.name, branch)

    async def statuses(self, sha: str) -> list[CommitStatus]:
        return await self.client.commit_statuses(self.owner, self.name, sha)

    async def status(self, sha: str, context: str) -> CommitStatus | None:
        """The newest status ``context`` of commit ``sha`` on the forge."""
        mine = [s for s in await self.statuses(sha) if s.context == context]
        return max(mine, key=lambda s: s.id) if mine else None

    async def wait_status(self, sha: str, context: str, state: str, timeout: float = 60) -> CommitStatus:
        """Wait until the newest ``context`` status of ``sha`` is ``state``."""

        async def check() -> CommitStatus | None:
            s = await self.status(sha, context)
            return s if s is not None and s.status == state else None

        found: CommitStatus = await until(check, timeout, f"status {context}={state} on {sha[:12]}", 0.25)
        return found

    def passes(self, env: str, sha: str | None = None) -> list[Seen]:
        """The daemon's passes of ``env`` (on commit ``sha``), oldest first."""
        out = [s for s in self.seen if s.result.environment == env]
        if sha is not None:
            out = [s for s in out if s.result.revision == f"main@sha1:{sha}"]
        return out

    async def wait_pass(self, env: str, sha: str, timeout: float = 60) -> PassResult:
        """Wait for a successful pass of ``env`` on commit ``sha``."""
        seen: list[Seen] = await until(
            lambda: [s for s in self.passes(env, sha) if s.result.ok], timeout, f"{env} applied {sha[:12]}"
        )
        return seen[0].result

    def applied(self, env: str) -> str:
        """The revision the API server's inventory records as applied for ``env``."""
        return InventoryStore(self.kube, source=self.clone_url).load(env).revision

    def deployment(self, env: str) -> dict[str, Any]:
        ns = self.n.ns_dev if env == "dev" else self.n.ns_stg
        live = self.kube.get(ObjectRef(group="apps", kind="Deployment", namespace=ns, name="clock-mcp"))
        assert live is not None, f"no Deployment clock-mcp in {ns}"
        return live

    def image(self, env: str) -> str:
        """The image of the Deployment of ``env`` on the API server."""
        return str(self.deployment(env)["spec"]["template"]["spec"]["containers"][0]["image"])

    def ref(self, tag: str, digest: str) -> str:
        return f"{self.n.image}:{tag}@{digest}"

    # -- the CLI -------------------------------------------------------------------------------------

    async def cli(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        stderr_file: Path | None = None,
        cache: str = "cli-cache",
    ) -> CliResult:
        """``reconciler ARGS --repo <clone URL> --cache-dir <tmp>/<cache>`` as a subprocess (with this
        process's environment: the git credentials and the Git host token; ``env`` adds to it). With
        ``stderr_file`` its standard error goes there as it is written."""
        argv = cli_argv(*args, "--repo", self.clone_url, "--cache-dir", str(self.tmp / cache))
        full = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=full,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if stderr_file is None else stderr_file.open("w"),
        )
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        err_text = err.decode() if err is not None else stderr_file.read_text() if stderr_file else ""
        return CliResult(proc.returncode or 0, out.decode(), err_text)

    # -- registry webhooks ---------------------------------------------------------------------------

    async def registry_push(self, tag: str, digest: str) -> int:
        """POST a Harbor ``PUSH_ARTIFACT`` webhook for ``<image>:<tag>@<digest>`` to the receiver; returns
        the HTTP status."""
        repo = self.n.image.partition("/")[2]
        body = {
            "type": "PUSH_ARTIFACT",
            "occur_at": int(time.time()),
            "operator": "robot$e2e",
            "event_data": {
                "resources": [{"digest": digest, "tag": tag, "resource_url": f"{self.n.image}:{tag}"}],
                "repository": {
                    "name": repo.rsplit("/", 1)[-1],
                    "namespace": repo.split("/", 1)[0],
                    "repo_full_name": repo,
                    "repo_type": "private",
                },
            },
        }
        headers = {"Authorization": HARBOR_TOKEN, "Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.receiver.url("harbor"), data=json.dumps(body), headers=headers) as resp,
        ):
            await resp.read()
            return resp.status


def use_forge_credentials(
    monkeypatch: pytest.MonkeyPatch, forge: LocalForge, retry_seconds: float = 30
) -> None:
    """Put the forge's git credentials (``GIT_CONFIG_*`` http.extraHeader, no prompt) and the Git host
    settings (``RECONCILER_GIT_HOST=gitea``, its token, the retry budget) into ``os.environ``, as a
    deployment would give them to the daemon and the CLI."""
    for key, value in git_auth_env(forge.admin, forge.token, base={}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RECONCILER_GIT_HOST", "gitea")
    monkeypatch.setenv("RECONCILER_GIT_HOST_TOKEN", forge.token)
    monkeypatch.setenv("RECONCILER_GIT_HOST_RETRY_SECONDS", f"{retry_seconds:g}")


class GitPause:
    """Holds the ``git`` processes of one CLI run at one point, so that a test can stop the forge there:
    a ``reference-transaction`` hook (https://git-scm.com/docs/githooks#_reference_transaction) given to
    that run only, through ``GIT_CONFIG_*`` (``core.hooksPath``; the command scope wins over the clone's
    own ``core.hooksPath``). The first time a committed ref update names a ref starting with ``prefix``,
    the hook creates ``paused`` and waits until :meth:`resume` (then, and on later updates, it returns at
    once). ``refs/remotes/origin/promote/`` pauses right after a push of a promotion branch (git updates
    the remote-tracking ref of what it pushed); ``refs/heads/promote/`` when the branch is checked out."""

    def __init__(self, root: Path, prefix: str) -> None:
        self.root = root
        root.mkdir(parents=True)
        hooks = root / "hooks"
        hooks.mkdir()
        hook = hooks / "reference-transaction"
        hook.write_text(
            "#!/bin/sh\n"
            '[ "$1" = committed ] || exit 0\n'
            f"grep -q ' {prefix}' || exit 0\n"
            f"[ -e '{root}/paused' ] && exit 0\n"
            f": > '{root}/paused'\n"
            f"while [ ! -e '{root}/resume' ]; do sleep 0.05; done\n"
        )
        hook.chmod(0o755)
        self.hooks = hooks

    def env(self) -> dict[str, str]:
        """The variables that give the hook to a process started with this process's environment."""
        n = int(os.environ.get("GIT_CONFIG_COUNT", "0") or "0")
        return {
            f"GIT_CONFIG_KEY_{n}": "core.hooksPath",
            f"GIT_CONFIG_VALUE_{n}": str(self.hooks),
            "GIT_CONFIG_COUNT": str(n + 1),
        }

    @property
    def paused(self) -> bool:
        return (self.root / "paused").exists()

    def resume(self) -> None:
        (self.root / "resume").touch()
