"""Helpers for the image automation tests: case repositories with a bare remote, environments with image
policies, the webhook app with an in-memory publisher, and Git inspection of the remote."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
from aiohttp.test_utils import TestClient, TestServer
from pydantic import Field
from ruamel.yaml import YAML

from reconciler.model import Environment
from reconciler.model.imagepolicy import ImagePolicy
from reconciler.source.bootstrap import init_repo_with_remote
from webhooks.config import ReceiverConfig, WebhookSettings
from webhooks.events import ImagePushed
from webhooks.server import build_app

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES = REPO_ROOT / "tests" / "cases"
CASE25 = CASES / "25-webhook-harbor-match-newname-with-port"
CASE28 = CASES / "28-git-no-empty-or-duplicate-commits"
CASE31 = CASES / "31-git-revert-rollback-must-stick"

HARBOR_AUTH = "Bearer harbor-hook-token-0001"  # case 25 webhook-config.json
QUAY_TOKEN = "7f3c9e2a51d04b8c"  # case 28 webhook-config.json (path token)
CE_TOKEN = "ce-case31-token"


class PolicyEnv(Environment):
    """An Environment with ``imagePolicies`` (the field the lead adds to the model itself)."""

    image_policies: list[ImagePolicy] = Field(default_factory=list, alias="imagePolicies")


def load_envs(root: Path) -> dict[str, Environment]:
    """envs/*.yaml with their image policies (the project's loader once Environment has the field)."""
    if "image_policies" in Environment.model_fields:
        from reconciler.reconcile import load_environments

        return load_environments(root)
    out: dict[str, Environment] = {}
    for path in sorted((root / "envs").glob("*.yaml")):
        data = YAML(typ="safe").load(path.read_text()) or {}
        data.setdefault("name", path.stem)
        out[path.stem] = PolicyEnv.model_validate(data)
    return out


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@dataclass
class CaseRepo:
    """A case's repo-before as an environment repository with a bare remote."""

    remote: Path
    work: Path

    @property
    def repo(self) -> git.Repo:
        return git.Repo(self.remote)

    def commits(self, branch: str = "main") -> list[str]:
        """Commit ids on ``branch`` of the remote, oldest first (first parents)."""
        r = self.repo
        try:
            return list(reversed(r.git.rev_list("--first-parent", branch).split()))
        finally:
            r.close()

    def head(self, branch: str = "main") -> str:
        return self.commits(branch)[-1]

    def git(self, *args: str) -> str:
        r = self.repo
        try:
            return str(r.git.execute(["git", *args]))
        finally:
            r.close()

    def show(self, rev: str, path: str) -> str:
        r = self.repo
        try:
            return str(r.git.execute(["git", "show", f"{rev}:{path}"], strip_newline_in_stdout=False))
        finally:
            r.close()

    def changed_files(self, sha: str) -> list[str]:
        return self.git("diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()

    def tree(self, sha: str) -> str:
        return self.git("rev-parse", f"{sha}^{{tree}}")

    def message(self, sha: str) -> str:
        return self.git("log", "-1", "--format=%B", sha)

    def parents(self, sha: str) -> list[str]:
        return self.git("log", "-1", "--format=%P", sha).split()

    def diff_lines(self, sha: str) -> list[str]:
        out = self.git("show", "--format=", "--unified=0", sha)
        return [line for line in out.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]

    def branches(self) -> list[str]:
        return self.git("for-each-ref", "--format=%(refname:short)", "refs/heads/").split()

    def no_empty_commits(self) -> bool:
        """No commit on any branch has the same tree as its (first) parent."""
        for sha in self.git("rev-list", "--all").split():
            parents = self.parents(sha)
            if parents and self.tree(sha) == self.tree(parents[0]):
                return False
        return True


def make_case_repo(case: Path, dest: Path, envs: dict[str, str]) -> CaseRepo:
    """Copy ``case/repo-before`` plus ``envs`` (file name → YAML text) into a repository with a bare
    remote."""
    src = dest / "src"
    shutil.copytree(case / "repo-before", src)
    (src / "envs").mkdir(exist_ok=True)
    for name, text in envs.items():
        (src / "envs" / name).write_text(text)
    include = tuple(sorted(p.name for p in src.iterdir() if p.is_dir()))
    remote, work = init_repo_with_remote(src, dest / "repo", include=include)
    return CaseRepo(remote, work)


@dataclass
class Captured:
    """An in-memory publisher for the webhook app: keeps what a NATS publish would have stored."""

    connected: bool = True
    messages: list[tuple[str, bytes, str | None]] = field(default_factory=list)

    async def publish(
        self, subject: str, data: bytes, *, msg_id: str | None = None, timeout: float = 5.0
    ) -> int:
        self.messages.append((subject, data, msg_id))
        return len(self.messages)

    def take(self) -> list[ImagePushed]:
        """The image events published since the last call."""
        out = [ImagePushed.model_validate_json(d) for s, d, _ in self.messages if s.startswith("registry.")]
        self.messages.clear()
        return out


def webhook_settings() -> WebhookSettings:
    c31 = read_json(CASE31 / "webhook-config.json")
    return WebhookSettings(
        receivers=[
            ReceiverConfig(name="harbor", provider="harbor", secret=HARBOR_AUTH),
            ReceiverConfig(name="quay", provider="quay", secret=QUAY_TOKEN),
            ReceiverConfig.model_validate(
                {
                    "name": "ce",
                    "provider": "cloudevents",
                    "secret": CE_TOKEN,
                    "mappings": [c31["event_mapping"]],
                }
            ),
        ]
    )


class Hooks:
    """The real webhook app (verify → normalise) in front of a :class:`Captured` publisher."""

    def __init__(self) -> None:
        self.captured = Captured()
        self.client: TestClient[Any, Any] | None = None

    async def __aenter__(self) -> Hooks:
        self.client = TestClient(TestServer(build_app(webhook_settings(), self.captured)))
        await self.client.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.client is not None
        await self.client.close()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, list[ImagePushed]]:
        assert self.client is not None
        resp = await self.client.post(path, data=body, headers=headers)
        await resp.read()
        return resp.status, self.captured.take()
