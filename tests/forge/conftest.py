"""Fixtures on a real local Gitea forge (the pinned build, ``tools/controlplane/build.sh gitea``), started
through the same code path as ``reconciler cluster up --forge`` (a :class:`LocalCluster` with only the
forge), once per test module, in a temporary state directory.

Reuse: tests under ``tests/forge/`` get these fixtures; tests elsewhere can ``from _forge_support import
start_forge, new_repo`` (the helpers behind them) once tests/forge is on the path, as tests/probe does with
``_promote_support``. The fixtures:

* ``local_forge`` (module): the running forge — ``url``, ``token``, ``admin``, ``cluster``, ``files``;
* ``forge`` (function, async): a :class:`~reconciler.devcluster.forge.Forge` API client as the admin;
* ``forge_repo`` (function, async): a new repository with one commit on ``main`` pushed over HTTP, and its
  local clone (``work``) whose ``commit()`` + ``await push()`` make more;
* ``hook_receiver`` (function, async): an aiohttp server on 127.0.0.1 collecting webhook deliveries;
* ``receiver`` (module): the project's webhook receiver (``webhooks.server``) on 127.0.0.1 publishing to
  the session's NATS (``_e2e_support.Receiver``);
* ``stack`` (function, async): an environment repository on the forge with the daemon following it over
  HTTP, webhooks into ``receiver`` and git credentials in the environment (``_e2e_support.Stack``; call
  ``await stack.create()`` and ``await stack.start_daemon()``).

A repository with a push webhook and a protected ``main``::

    async def test_x(forge, forge_repo, hook_receiver):
        await forge.add_push_webhook(forge_repo.owner, forge_repo.name, hook_receiver.url, "s3cret")
        await forge.protect_branch(
            forge_repo.owner, forge_repo.name, "main", status_checks=["reconciler/health"]
        )

If Gitea cannot be built (no Go toolchain, no network for the module download) the fixture fails with the
build's reason: it is never skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _e2e_support import Names, Receiver, Stack, use_forge_credentials
from _forge_support import Delivery, ForgeRepo, HookReceiver, LocalForge, new_repo, start_forge
from aiohttp import web

from reconciler.cluster.client import KubeClient
from reconciler.devcluster.forge import Forge


@pytest.fixture(scope="module")
def local_forge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForge]:
    """A running local Gitea for the test module (stopped at its end)."""
    state = tmp_path_factory.mktemp("forge")
    served = start_forge(state)
    try:
        yield served
    finally:
        served.cluster.down(progress=lambda m: None)


@pytest.fixture
async def forge(local_forge: LocalForge) -> AsyncIterator[Forge]:
    """An API client of ``local_forge`` as its administrator."""
    async with local_forge.client() as client:
        yield client


@pytest.fixture
async def forge_repo(local_forge: LocalForge, forge: Forge, tmp_path: Path) -> ForgeRepo:
    """A new repository on the forge whose ``main`` has one commit (README.md), pushed over HTTP from the
    local clone in ``tmp_path / "work"``."""
    return await new_repo(local_forge, forge, tmp_path / "work")


@pytest.fixture
async def hook_receiver() -> AsyncIterator[HookReceiver]:
    """An aiohttp server on 127.0.0.1 answering 200 to ``POST /hook`` and queueing each delivery."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        queue.put_nowait(Delivery(dict(request.headers), body, loop.time()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield HookReceiver(f"http://127.0.0.1:{port}/hook", queue)
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def receiver(nats_url: str) -> Iterator[Receiver]:
    """The project's webhook receiver on 127.0.0.1 (a thread of its own), publishing to the session's NATS,
    for the test module."""
    served = Receiver(nats_url)
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
async def stack(
    local_forge: LocalForge,
    forge: Forge,
    receiver: Receiver,
    kube: KubeClient,
    kubeconfig: Path,
    nats_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stack]:
    """An end-to-end stack on the forge (not created yet: ``await stack.create()``, then ``await
    stack.start_daemon()``); its daemon is stopped and its namespaces deleted afterwards."""
    use_forge_credentials(monkeypatch, local_forge)
    made = Stack(local_forge, forge, receiver, kube, kubeconfig, nats_url, tmp_path, Names())
    try:
        yield made
    finally:
        await made.close()
