"""A small administrator's client for the local Gitea forge (:mod:`reconciler.devcluster.gitea`), for the
tests and the demo: create repositories, push to them over HTTP, add push webhooks, protect branches with
required status checks, open, merge and close pull requests, and set commit statuses.

It speaks Gitea's REST API v1 (``<forge>/api/v1``; the running instance serves its OpenAPI 2 document at
``/swagger.v1.json``, and https://docs.gitea.com/api/1.27/ renders it), authenticated with the
administrator's token in an ``Authorization: token <token>`` header. Responses are validated with
pydantic models that keep only the fields used here.

Credentials never appear in a URL, an argument list, a log line or an error message: Git pushes get the
token through ``http.extraHeader`` set in the environment of the ``git`` process (``GIT_CONFIG_COUNT`` /
``GIT_CONFIG_KEY_n`` / ``GIT_CONFIG_VALUE_n``, https://git-scm.com/docs/git-config#ENVIRONMENT).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict

from reconciler.errors import ReconcilerError

_TIMEOUT = aiohttp.ClientTimeout(total=30)
MergeStyle = Literal["merge", "rebase", "rebase-merge", "squash", "fast-forward-only"]
StatusState = Literal["pending", "success", "error", "failure", "warning"]
#: Webhook events used here (Gitea has more: issues, releases, …).
HookEvent = Literal["push", "create", "delete", "pull_request", "pull_request_sync", "status"]


class ForgeError(ReconcilerError):
    """The forge refused or failed a request (the message has the method, path, HTTP status and Gitea's
    own words), or a push failed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class User(_Model):
    """``#/definitions/User``: an account."""

    id: int
    login: str
    email: str = ""
    is_admin: bool = False


class Repository(_Model):
    """``#/definitions/Repository``: a repository."""

    id: int
    name: str
    full_name: str
    owner: User
    clone_url: str
    html_url: str
    default_branch: str = ""
    empty: bool = False
    private: bool = False


class Hook(_Model):
    """``#/definitions/Hook``: a repository webhook (``config`` holds ``url`` and ``content_type``; Gitea
    never returns the secret)."""

    id: int
    type: str
    active: bool
    events: list[str] = []
    config: dict[str, str] = {}
    branch_filter: str = ""


class BranchProtection(_Model):
    """``#/definitions/BranchProtection``: a protected-branch rule."""

    rule_name: str = ""
    branch_name: str = ""
    enable_status_check: bool = False
    status_check_contexts: list[str] = []
    required_approvals: int = 0


class BranchRef(_Model):
    """``#/definitions/PRBranchInfo``: one side of a pull request."""

    ref: str
    sha: str
    label: str = ""


class PullRequest(_Model):
    """``#/definitions/PullRequest``: a pull request."""

    number: int
    title: str = ""
    body: str = ""
    state: str
    merged: bool = False
    mergeable: bool = False
    merge_commit_sha: str | None = None
    html_url: str
    head: BranchRef
    base: BranchRef


class CommitStatus(_Model):
    """``#/definitions/CommitStatus``: one status of a commit."""

    id: int
    context: str
    status: str
    description: str = ""
    target_url: str = ""


class PayloadCommit(_Model):
    """The ``commit`` of ``#/definitions/Branch``."""

    id: str


class Branch(_Model):
    """``#/definitions/Branch``: a branch and the commit it points at."""

    name: str
    commit: PayloadCommit


class ServerVersion(_Model):
    """``#/definitions/ServerVersion``."""

    version: str


class Forge:
    """An asynchronous client of the forge's API as the administrator (use as ``async with``).

    Args:
        url: the forge's root URL (``http://127.0.0.1:<port>/``; ``ClusterState.gitea_url``).
        token: an API token (``gitea.read_token(files)``), sent only in the ``Authorization`` header.
        session: an aiohttp session to reuse (it is then not closed here); default: one of its own.
    """

    def __init__(self, url: str, token: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/") + "/"
        self.api = self.url + "api/v1"
        self._token = token
        self._session = session
        self._own = session is None

    def __repr__(self) -> str:  # never the token
        return f"Forge({self.url!r})"

    async def __aenter__(self) -> Forge:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session when this client made it."""
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        ok: tuple[int, ...],
    ) -> Any:
        """``method`` ``/api/v1<path>`` and its decoded JSON body (``None`` when empty).

        Raises:
            ForgeError: the status is not in ``ok``, or the forge cannot be reached.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
            self._own = True
        headers = {"Authorization": f"token {self._token}", "Accept": "application/json"}
        try:
            async with self._session.request(
                method, self.api + path, json=json, params=params, headers=headers
            ) as resp:
                text = await resp.text()
                if resp.status not in ok:
                    raise ForgeError(f"{method} {path}: {resp.status}: {_message(text)}", resp.status)
                if not text.strip():
                    return None
                return await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise ForgeError(f"{method} {self.api}{path}: {exc}") from None

    # -- identity -------------------------------------------------------------------------------------

    async def version(self) -> str:
        """The server's version (``GET /version``)."""
        return ServerVersion.model_validate(await self.request("GET", "/version", ok=(200,))).version

    async def me(self) -> User:
        """The token's user (``GET /user``)."""
        return User.model_validate(await self.request("GET", "/user", ok=(200,)))

    # -- repositories ---------------------------------------------------------------------------------

    async def create_repo(
        self, name: str, *, private: bool = False, default_branch: str = "main", auto_init: bool = False
    ) -> Repository:
        """Create a repository owned by the token's user (``POST /user/repos``, ``CreateRepoOption``).

        Raises:
            ForgeError: e.g. 409 when it exists.
        """
        body = {"name": name, "private": private, "default_branch": default_branch, "auto_init": auto_init}
        return Repository.model_validate(await self.request("POST", "/user/repos", json=body, ok=(201,)))

    async def get_repo(self, owner: str, repo: str) -> Repository:
        """``GET /repos/{owner}/{repo}``."""
        return Repository.model_validate(await self.request("GET", _repo(owner, repo), ok=(200,)))

    async def delete_repo(self, owner: str, repo: str) -> None:
        """``DELETE /repos/{owner}/{repo}`` (no error when it does not exist)."""
        await self.request("DELETE", _repo(owner, repo), ok=(204, 404))

    async def branch_sha(self, owner: str, repo: str, branch: str) -> str | None:
        """The commit ``branch`` points at as the forge records it (``GET /repos/{owner}/{repo}/branches/
        {branch}``), or ``None`` when it has no such branch. A repository the forge still records as empty
        has none (and is not asked: Gitea 1.27 answers that endpoint with a 500 for it)."""
        if (await self.get_repo(owner, repo)).empty:
            return None
        data = await self.request(
            "GET", f"{_repo(owner, repo)}/branches/{quote(branch, safe='')}", ok=(200, 404)
        )
        if not isinstance(data, dict) or "commit" not in data:
            return None
        return Branch.model_validate(data).commit.id

    async def wait_branch(
        self, owner: str, repo: str, branch: str, sha: str, *, timeout: float = 30.0
    ) -> None:
        """Wait until the forge records ``branch`` at ``sha``. Gitea processes a push (its branch table, the
        repository's ``empty`` flag, webhooks) in a queue after ``git push`` returns, typically within a
        second; a pull request opened before that sees the old head.

        Raises:
            ForgeError: not within ``timeout`` seconds (the message says where the branch is).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seen = await self.branch_sha(owner, repo, branch)
            if seen == sha:
                return
            if loop.time() > deadline:
                raise ForgeError(
                    f"{owner}/{repo}: branch {branch} is at {seen} after {timeout:.0f} s, not {sha}"
                )
            await asyncio.sleep(0.1)

    # -- webhooks -------------------------------------------------------------------------------------

    async def add_push_webhook(
        self,
        owner: str,
        repo: str,
        url: str,
        secret: str,
        *,
        branch_filter: str = "*",
        events: tuple[HookEvent, ...] = ("push",),
    ) -> Hook:
        """Add an active ``gitea``-type webhook sending ``events`` (default ``push`` only) as JSON to
        ``url``, signed with ``secret`` (``X-Gitea-Signature``: hex HMAC-SHA256 of the body) (``POST
        /repos/{owner}/{repo}/hooks``, ``CreateHookOption``). ``pull_request`` covers a pull request opened,
        closed, reopened or edited; ``pull_request_sync`` new commits on its head (both arrive with
        ``X-Gitea-Event: pull_request``). ``branch_filter`` applies to ``push`` only. The forge delivers to
        127.0.0.1 because app.ini allows ``loopback`` hosts.
        """
        body = {
            "type": "gitea",
            "active": True,
            "events": list(events),
            "branch_filter": branch_filter,
            "config": {"url": url, "content_type": "json", "secret": secret},
        }
        return Hook.model_validate(
            await self.request("POST", _repo(owner, repo) + "/hooks", json=body, ok=(201,))
        )

    async def delete_hook(self, owner: str, repo: str, hook_id: int) -> None:
        """``DELETE /repos/{owner}/{repo}/hooks/{id}``. (To change a hook's secret, delete it and add
        another: Gitea 1.27's ``PATCH …/hooks/{id}`` updates the URL and content type of ``config`` but
        ignores its ``secret``.)"""
        await self.request("DELETE", f"{_repo(owner, repo)}/hooks/{hook_id}", ok=(204,))

    async def list_hooks(self, owner: str, repo: str) -> list[Hook]:
        """``GET /repos/{owner}/{repo}/hooks``."""
        data = await self.request("GET", _repo(owner, repo) + "/hooks", ok=(200,))
        return [Hook.model_validate(h) for h in data or []]

    async def test_hook(self, owner: str, repo: str, hook_id: int) -> None:
        """Make the forge deliver a test ``push`` event for the last commit of the default branch
        (``POST /repos/{owner}/{repo}/hooks/{id}/tests``). Gitea 1.27's API has no endpoint listing a
        hook's past deliveries (the web UI shows them); receivers count what arrives instead."""
        await self.request("POST", f"{_repo(owner, repo)}/hooks/{hook_id}/tests", ok=(204,))

    # -- branch protection and statuses ---------------------------------------------------------------

    async def protect_branch(
        self,
        owner: str,
        repo: str,
        branch: str,
        *,
        status_checks: list[str] | None = None,
        required_approvals: int = 0,
    ) -> BranchProtection:
        """Protect ``branch``: pull requests into it merge only when every context in ``status_checks``
        has a ``success`` status on the head commit (``POST /repos/{owner}/{repo}/branch_protections``,
        ``CreateBranchProtectionOption``; ``enable_status_check`` + ``status_check_contexts``, which may be
        glob patterns). Direct pushes stay allowed for the administrator (``enable_push`` with no
        allow-list)."""
        contexts = list(status_checks or [])
        body = {
            "rule_name": branch,
            "enable_push": True,
            "enable_status_check": bool(contexts),
            "status_check_contexts": contexts,
            "required_approvals": required_approvals,
        }
        return BranchProtection.model_validate(
            await self.request("POST", _repo(owner, repo) + "/branch_protections", json=body, ok=(201,))
        )

    async def set_status(
        self,
        owner: str,
        repo: str,
        sha: str,
        context: str,
        state: StatusState,
        *,
        description: str = "",
        target_url: str = "",
    ) -> CommitStatus:
        """Record a commit status (``POST /repos/{owner}/{repo}/statuses/{sha}``, ``CreateStatusOption``)."""
        body = {"context": context, "state": state, "description": description, "target_url": target_url}
        return CommitStatus.model_validate(
            await self.request("POST", f"{_repo(owner, repo)}/statuses/{sha}", json=body, ok=(201,))
        )

    async def commit_statuses(self, owner: str, repo: str, ref: str) -> list[CommitStatus]:
        """Every status of commit ``ref``, newest first (``GET /repos/{owner}/{repo}/commits/{ref}/statuses``;
        one page of up to 50)."""
        data = await self.request(
            "GET",
            f"{_repo(owner, repo)}/commits/{quote(ref, safe='')}/statuses",
            params={"limit": "50"},
            ok=(200,),
        )
        return [CommitStatus.model_validate(s) for s in data or []]

    # -- pull requests --------------------------------------------------------------------------------

    async def open_pull(
        self, owner: str, repo: str, *, head: str, base: str, title: str, body: str = ""
    ) -> PullRequest:
        """Open a pull request from branch ``head`` into ``base`` (``POST /repos/{owner}/{repo}/pulls``,
        ``CreatePullRequestOption``).

        Raises:
            ForgeError: e.g. 409 when one is already open for the same branches.
        """
        payload = {"head": head, "base": base, "title": title, "body": body}
        return PullRequest.model_validate(
            await self.request("POST", _repo(owner, repo) + "/pulls", json=payload, ok=(201,))
        )

    async def list_pulls(
        self, owner: str, repo: str, *, state: Literal["open", "closed", "all"] = "all"
    ) -> list[PullRequest]:
        """The repository's pull requests in ``state``, newest first (``GET /repos/{owner}/{repo}/pulls``;
        one page of up to 50)."""
        data = await self.request(
            "GET", _repo(owner, repo) + "/pulls", params={"state": state, "limit": "50"}, ok=(200,)
        )
        return [PullRequest.model_validate(p) for p in data or []]

    async def get_pull(self, owner: str, repo: str, number: int) -> PullRequest:
        """``GET /repos/{owner}/{repo}/pulls/{index}``."""
        return PullRequest.model_validate(
            await self.request("GET", f"{_repo(owner, repo)}/pulls/{number}", ok=(200,))
        )

    async def merge_pull(
        self, owner: str, repo: str, number: int, *, style: MergeStyle = "merge", message: str | None = None
    ) -> None:
        """Merge a pull request (``POST /repos/{owner}/{repo}/pulls/{index}/merge``,
        ``MergePullRequestOption``: ``do`` is the merge style).

        Raises:
            ForgeError: 405 when it cannot be merged (e.g. a required status check has not succeeded), 409
                when the head changed meanwhile.
        """
        body: dict[str, Any] = {"do": style}
        if message is not None:
            body["merge_message_field"] = message
        await self.request("POST", f"{_repo(owner, repo)}/pulls/{number}/merge", json=body, ok=(200,))

    async def close_pull(self, owner: str, repo: str, number: int) -> PullRequest:
        """Close a pull request without merging (``PATCH /repos/{owner}/{repo}/pulls/{index}``,
        ``EditPullRequestOption`` with ``state: closed``)."""
        return PullRequest.model_validate(
            await self.request(
                "PATCH", f"{_repo(owner, repo)}/pulls/{number}", json={"state": "closed"}, ok=(201,)
            )
        )


def _repo(owner: str, repo: str) -> str:
    return f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"


def _message(text: str) -> str:
    """Gitea's error message from a response body (``{"message": …, "errors": […]}``), else the text."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(data, dict):
        parts = [str(data.get("message", ""))] + [str(e) for e in data.get("errors") or []]
        return "; ".join(p for p in parts if p)[:500] or text.strip()[:500]
    return text.strip()[:500]


def git_auth_env(username: str, token: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for ``git`` that authenticates HTTP requests as ``username`` with ``token`` (Basic
    authentication, token as the password, which Gitea accepts for Git over HTTP) through an
    ``http.extraHeader`` given in ``GIT_CONFIG_*`` variables: the credentials are in no URL, no argument
    list and no Git output. Terminal prompts are off, so a wrong token fails instead of waiting."""
    env = dict(os.environ if base is None else base)
    n = int(env.get("GIT_CONFIG_COUNT", "0") or "0")
    basic = base64.b64encode(f"{username}:{token}".encode()).decode()
    env.update(
        {
            f"GIT_CONFIG_KEY_{n}": "http.extraHeader",
            f"GIT_CONFIG_VALUE_{n}": f"Authorization: Basic {basic}",
            "GIT_CONFIG_COUNT": str(n + 1),
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    return env


def push(
    work: Path, clone_url: str, username: str, token: str, refspecs: list[str], *, force: bool = False
) -> None:
    """Push ``refspecs`` (e.g. ``["main:main"]``) of the repository at ``work`` to ``clone_url`` over HTTP,
    authenticated by :func:`git_auth_env`.

    Raises:
        ForgeError: git failed (its output is in the message; it holds no credentials).
        ValueError: ``clone_url`` carries credentials (``user:pass@``), which would end up in logs.
    """
    if "@" in clone_url.split("://", 1)[-1].split("/", 1)[0]:
        raise ValueError("the clone URL must not carry credentials; they are passed in the environment")
    cmd = [
        "git",
        "-C",
        str(work),
        "push",
        "--porcelain",
        *(["--force"] if force else []),
        clone_url,
        *refspecs,
    ]
    proc = subprocess.run(
        cmd, env=git_auth_env(username, token), capture_output=True, text=True, check=False, timeout=120
    )
    if proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip()).replace(token, "***")[-2000:]
        raise ForgeError(f"git push {clone_url} {' '.join(refspecs)} failed (exit {proc.returncode}): {out}")
