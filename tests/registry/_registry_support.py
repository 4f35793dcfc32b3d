"""The real chain for the registry tests and the benchmark: a CNCF Distribution registry (built from its Go
module) whose notifications go to the project's webhook receiver (``distribution`` provider), which
publishes to a nats-server of the test's own; the durable image-automation consumer commits to a Git bare
remote. Everything on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from reconciler.bus import STREAM_REGISTRY, Bus
from reconciler.devcluster.process import free_port
from reconciler.devcluster.registry import HOOK_RECEIVER, Crane, LocalRegistry, start_registry
from reconciler.model import Environment
from reconciler.promote.images import DURABLE, AutomationResult, ImageAutomation, run_consumer
from reconciler.source.bootstrap import init_repo_with_remote
from reconciler.source.gitops import GitWriter
from webhooks.config import WebhookSettings
from webhooks.server import build_app

REPO = "acme/clock-mcp"


def load_envs(root: Path) -> dict[str, Environment]:
    from reconciler.reconcile import load_environments

    return load_environments(root)


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``pred`` (sync or async) every 0.05 s until it is truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def env_yaml(image: str, *, scan: str = "") -> str:
    return (
        "overlay: overlays/dev\n"
        "promotion: {via: push}\n"
        "imagePolicies:\n"
        "- name: clock\n"
        f"  image: {image}\n"
        "  policy: {semver: {range: '>=1.0.0'}}\n"
        "  digest: pin\n" + (f"  scan: {scan}\n" if scan else "")
    )


def make_repo(dest: Path, image: str, *, scan: str = "") -> tuple[Path, Path]:
    """An environment repository (``dev`` follows ``image`` at 0.9.0) with a bare remote."""
    src = dest / "src"
    (src / "envs").mkdir(parents=True)
    (src / "overlays" / "dev").mkdir(parents=True)
    (src / "envs" / "dev.yaml").write_text(env_yaml(image, scan=scan))
    (src / "overlays" / "dev" / "kustomization.yaml").write_text(
        f"resources:\n- deployment.yaml\nimages:\n- name: {image}\n  newTag: 0.9.0\n"
    )
    (src / "overlays" / "dev" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: clock}\nspec:\n  template:\n    spec:\n"
        f"      containers:\n      - {{name: clock, image: '{image}:0.9.0'}}\n"
    )
    return init_repo_with_remote(src, dest / "repo")


@dataclass
class Chain:
    """Registry → receiver → NATS → image automation → Git remote."""

    tmp: Path
    nats_url: str
    scan: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    hook_port: int = field(default_factory=free_port)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    results: list[AutomationResult] = field(default_factory=list)
    registry: LocalRegistry | None = None
    #: called with each automation result and each delivered event, when set (the benchmark's clocks)
    result_hook: Callable[[AutomationResult], None] | None = None
    delivery_hook: Callable[[dict[str, Any]], None] | None = None
    crane: Crane | None = None
    automation: ImageAutomation | None = None
    remote: Path | None = None
    _bus: Bus | None = None
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @property
    def image(self) -> str:
        assert self.registry is not None
        return f"{self.registry.host}/{REPO}"

    async def start(self) -> Chain:
        self._bus = Bus(self.nats_url, name="registry-test")
        await self._bus.connect()
        settings = WebhookSettings.model_validate(
            {
                "port": self.hook_port,
                "natsUrl": self.nats_url,
                "receivers": [{"name": HOOK_RECEIVER, "provider": "distribution", "secret": self.token}],
            }
        )
        app = build_app(settings, self._bus)

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            body = await request.content.read()
            with warnings.catch_warnings():  # give the body back to the receiver, which reads the stream
                warnings.simplefilter("ignore", DeprecationWarning)
                request.content.unread_data(body)
            response = await handler(request)
            with contextlib.suppress(ValueError):
                for ev in json.loads(body).get("events", []):
                    ev["_status"] = getattr(response, "status", 0)
                    self.deliveries.append(ev)
                    if self.delivery_hook is not None:
                        self.delivery_hook(ev)
            return response  # type: ignore[no-any-return]

        app.middlewares.append(record)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await self.receiver_up()
        self.registry = await asyncio.to_thread(
            start_registry,
            self.tmp / "registry",
            notify_url=f"http://127.0.0.1:{self.hook_port}/hook/{HOOK_RECEIVER}",
            notify_token=self.token,
        )
        self.crane = Crane(self.registry.host, self.tmp / "layers")
        self.remote, _ = make_repo(self.tmp / "env", self.image, scan=self.scan)
        self.automation = ImageAutomation(GitWriter(str(self.remote), "main", self.tmp / "cache"), load_envs)
        self._task = asyncio.create_task(
            run_consumer(
                self._bus,
                self.automation,
                self._stop,
                on_result=self._on_result,
                nak_delay=0.5,
                notify=False,
            )
        )
        await until(self._consumer_exists, 15, "the durable consumer exists")
        return self

    def _on_result(self, result: AutomationResult) -> None:
        self.results.append(result)
        if self.result_hook is not None:
            self.result_hook(result)

    async def _consumer_exists(self) -> bool:
        assert self._bus is not None
        try:
            await self._bus.js.consumer_info(STREAM_REGISTRY, DURABLE)
        except Exception:
            return False
        return True

    async def receiver_up(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.hook_port, reuse_address=True)
        await self._site.start()

    async def receiver_down(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def idle(self) -> bool:
        assert self._bus is not None
        try:
            info = await self._bus.js.consumer_info(STREAM_REGISTRY, DURABLE)
        except Exception:
            return False
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    def delivered(self, action: str, *, tag: str | None = None, digest: str | None = None) -> bool:
        """Whether the receiver has taken (2xx) a notification of ``action`` for the test repository."""
        for ev in self.deliveries:
            target = ev.get("target", {})
            if ev.get("action") != action or target.get("repository") != REPO or ev["_status"] >= 300:
                continue
            if tag is not None and target.get("tag") != tag:
                continue
            if digest is not None and target.get("digest") != digest:
                continue
            return True
        return False

    def handled(self, tag: str) -> bool:
        """Whether image automation finished an event for ``tag``."""
        return any(r.tag == tag for r in self.results)

    def commits(self) -> list[str]:
        import git

        assert self.remote is not None
        r = git.Repo(self.remote)
        try:
            return list(reversed(r.git.rev_list("--first-parent", "main").split()))
        finally:
            r.close()

    def show(self, rev: str, path: str = "overlays/dev/kustomization.yaml") -> str:
        import git

        assert self.remote is not None
        r = git.Repo(self.remote)
        try:
            return str(r.git.show(f"{rev}:{path}"))
        finally:
            r.close()

    def message(self, rev: str) -> str:
        import git

        assert self.remote is not None
        r = git.Repo(self.remote)
        try:
            return str(r.git.log("-1", "--format=%B", rev))
        finally:
            r.close()

    def pinned(self) -> tuple[str, str | None]:
        """``(newTag, digest)`` of the overlay's entry at the remote's head."""
        tag, digest = "", None
        for line in self.show("main").splitlines():
            line = line.strip()
            if line.startswith("newTag:"):
                tag = line.split(":", 1)[1].strip()
            elif line.startswith("digest:"):
                digest = line.split(":", 1)[1].strip()
        return tag, digest

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 30)
        if self.registry is not None:
            await asyncio.to_thread(self.registry.stop)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._bus is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._bus.close(), 3)
