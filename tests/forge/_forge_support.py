"""Helpers of the forge tests (imported by tests/forge/conftest.py and by tests elsewhere that need the
local Gitea forge): start it as ``cluster up --forge`` does, a repository with a local clone, a loopback
webhook receiver."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.devcluster import LocalCluster
from reconciler.devcluster.forge import Forge, push
from reconciler.devcluster.gitea import ADMIN_USER, GiteaFiles, read_token


@dataclass
class LocalForge:
    """A running local forge."""

    cluster: LocalCluster
    url: str
    token: str
    admin: str
    files: GiteaFiles

    def client(self) -> Forge:
        """A new API client as the administrator (use as ``async with``)."""
        return Forge(self.url, self.token)


def start_forge(state: Path) -> LocalForge:
    """Start (or bring back) the forge of the cluster in ``state``, as ``cluster up --forge`` does (a
    :class:`LocalCluster` with only the forge). Raises ``BuildError`` with the reason when Gitea cannot be
    built."""
    cluster = LocalCluster(state, with_kubernetes=False, with_nats=False, with_forge=True)
    st = cluster.up(progress=lambda m: None)
    files = cluster.gitea_files()
    return LocalForge(cluster, st.gitea_url, read_token(files), ADMIN_USER, files)


def git(work: Path, *args: str) -> str:
    """Run git in ``work`` and return its stripped stdout."""
    return subprocess.run(
        ["git", "-C", str(work), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class ForgeRepo:
    """A repository on the forge and its local clone."""

    owner: str
    name: str
    clone_url: str
    work: Path
    forge: LocalForge

    def commit(self, path: str, text: str, message: str | None = None) -> str:
        """Write ``path`` in the clone, commit it on the current branch, and return the commit's SHA."""
        f = self.work / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message or f"update {path}")
        return git(self.work, "rev-parse", "HEAD")

    async def push(self, *branches: str) -> None:
        """Push ``branches`` of the clone (default: the current one) to the same names over HTTP as the
        admin, and wait until the forge has recorded them (its branch table lags ``git push`` by about a
        second)."""
        names = list(branches) or [git(self.work, "rev-parse", "--abbrev-ref", "HEAD")]
        specs = [f"{b}:{b}" for b in names]
        await asyncio.to_thread(push, self.work, self.clone_url, self.forge.admin, self.forge.token, specs)
        async with self.forge.client() as client:
            for b in names:
                await client.wait_branch(self.owner, self.name, b, git(self.work, "rev-parse", b))


async def new_repo(forge: LocalForge, client: Forge, work: Path, name: str | None = None) -> ForgeRepo:
    """A new repository on ``forge`` whose ``main`` has one commit (README.md), pushed over HTTP from a new
    local clone in ``work``."""
    name = name or f"t-{uuid.uuid4().hex[:8]}"
    repo = await client.create_repo(name)
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    git(work, "config", "user.name", "tests")
    git(work, "config", "user.email", "tests@localhost.invalid")
    made = ForgeRepo(repo.owner.login, repo.name, repo.clone_url, work, forge)
    made.commit("README.md", f"# {name}\n", "initial commit")
    await made.push("main")
    return made


@dataclass
class Delivery:
    """One webhook request as received (``at``: the event loop's clock, seconds)."""

    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class HookReceiver:
    """A loopback webhook receiver: ``url`` to give the forge, ``deliveries`` as they arrive."""

    url: str
    deliveries: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)

    async def next(self, timeout: float = 15.0) -> Delivery:
        """The next delivery (waits up to ``timeout`` seconds)."""
        return await asyncio.wait_for(self.deliveries.get(), timeout)
