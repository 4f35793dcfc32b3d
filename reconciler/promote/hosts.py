"""Opening pull requests on the Git host: a small client for GitHub and GitLab with a configurable base URL.

* GitHub REST: ``POST /repos/{owner}/{repo}/pulls`` with ``{title, head, base, body}``; an already open
  pull request for the branch answers 422 and is looked up with ``GET /repos/{owner}/{repo}/pulls?head=
  {owner}:{branch}&base=…&state=open`` (https://docs.github.com/en/rest/pulls/pulls).
* GitLab REST v4: ``POST /projects/:id/merge_requests`` with ``{source_branch, target_branch, title,
  description}`` (``:id`` is the URL-encoded project path); an existing one answers 409 and is looked up
  with ``GET /projects/:id/merge_requests?source_branch=…&target_branch=…&state=opened``
  (https://docs.gitlab.com/api/merge_requests/).

Without a token, :func:`manual_instructions` says where to open it by hand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel

from reconciler.errors import ReconcilerError

HostKind = Literal["github", "gitlab"]
_TIMEOUT = aiohttp.ClientTimeout(total=30)


class HostError(ReconcilerError):
    """The Git host refused or failed a request; the message has the HTTP status and the host's words."""

    retryable = True


class PullRequest(BaseModel):
    """A pull (merge) request on the host."""

    number: int
    url: str
    created: bool = True


@dataclass(frozen=True)
class HostConfig:
    """Where and how to reach the Git host's API.

    Attributes:
        kind: ``github`` or ``gitlab``.
        repo: ``owner/name`` (GitHub) or the project path ``group/sub/name`` (GitLab).
        token: the API token (GitHub: a token with pull-request write; GitLab: ``api`` scope).
        api_url: the API base, e.g. ``https://api.github.com`` or ``https://gitlab.com/api/v4``.
        web_url: the web base, for links printed without a token.
    """

    kind: HostKind
    repo: str
    token: str | None
    api_url: str
    web_url: str


_SCP_RE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.+)$")
_URL_RE = re.compile(r"^[a-z+]+://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?/(?P<path>.+)$")


def parse_remote(url: str) -> tuple[str, str] | None:
    """``(host, path)`` of a clone URL (``https://github.com/acme/envs.git``, ``git@github.com:acme/envs``);
    ``None`` for a local path."""
    m = _URL_RE.match(url) or (None if url.startswith(("/", ".", "~", "file:")) else _SCP_RE.match(url))
    if not m:
        return None
    path = m.group("path").strip("/")
    return m.group("host").lower(), path.removesuffix(".git")


def host_config(
    remote_url: str,
    *,
    kind: HostKind | None = None,
    repo: str | None = None,
    token: str | None = None,
    api_url: str | None = None,
    web_url: str | None = None,
    environ: dict[str, str] | None = None,
) -> HostConfig | None:
    """Work out the Git host from explicit values, ``RECONCILER_GIT_HOST_*`` / ``GITHUB_TOKEN`` /
    ``GITLAB_TOKEN`` variables and the remote URL; ``None`` when the host is unknown (a local path).

    Variables: ``RECONCILER_GIT_HOST`` (github|gitlab), ``RECONCILER_GIT_HOST_REPO``,
    ``RECONCILER_GIT_HOST_API``, ``RECONCILER_GIT_HOST_URL``, ``RECONCILER_GIT_HOST_TOKEN`` (else
    ``GITHUB_TOKEN`` or ``GITLAB_TOKEN`` by kind).
    """
    env = os.environ if environ is None else environ
    parsed = parse_remote(remote_url)
    kind_value = kind or env.get("RECONCILER_GIT_HOST") or None
    if kind_value is None and parsed is not None:
        if "github" in parsed[0]:
            kind_value = "github"
        elif "gitlab" in parsed[0]:
            kind_value = "gitlab"
    if kind_value not in ("github", "gitlab"):
        return None
    repo = repo or env.get("RECONCILER_GIT_HOST_REPO") or (parsed[1] if parsed else None)
    if not repo:
        return None
    host = parsed[0] if parsed else ("github.com" if kind_value == "github" else "gitlab.com")
    default_web = f"https://{host}"
    if kind_value == "github":
        default_api = "https://api.github.com" if host == "github.com" else f"https://{host}/api/v3"
        tok = token or env.get("RECONCILER_GIT_HOST_TOKEN") or env.get("GITHUB_TOKEN")
    else:
        default_api = f"https://{host}/api/v4"
        tok = token or env.get("RECONCILER_GIT_HOST_TOKEN") or env.get("GITLAB_TOKEN")
    return HostConfig(
        kind="github" if kind_value == "github" else "gitlab",
        repo=repo,
        token=tok or None,
        api_url=(api_url or env.get("RECONCILER_GIT_HOST_API") or default_api).rstrip("/"),
        web_url=(web_url or env.get("RECONCILER_GIT_HOST_URL") or default_web).rstrip("/"),
    )


def manual_instructions(config: HostConfig | None, remote_url: str, head: str, base: str) -> str:
    """Where to open the pull request by hand (a compare/new-merge-request link when the host is known)."""
    if config is not None and config.kind == "github":
        compare = f"{config.web_url}/{config.repo}/compare/{base}...{quote(head, safe='/')}"
        return f"open a pull request: {compare}?expand=1"
    if config is not None and config.kind == "gitlab":
        return (
            f"open a merge request: {config.web_url}/{config.repo}/-/merge_requests/new"
            f"?merge_request%5Bsource_branch%5D={quote(head, safe='')}"
            f"&merge_request%5Btarget_branch%5D={quote(base, safe='')}"
        )
    return f"open a pull request from branch {head!r} into {base!r} of {remote_url}"


async def _json(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {"message": (await resp.text())[:500]}


def _message(data: Any) -> str:
    if isinstance(data, dict):
        parts = [str(data.get("message", ""))]
        for e in data.get("errors") or []:
            parts.append(str(e.get("message", e)) if isinstance(e, dict) else str(e))
        return "; ".join(p for p in parts if p)
    return str(data)[:500]


async def open_pull_request(
    config: HostConfig, *, head: str, base: str, title: str, body: str
) -> PullRequest:
    """Open a pull (merge) request from ``head`` into ``base``, or return the one already open.

    Raises:
        HostError: no token, or the host answered with an error (status and message included).
    """
    if not config.token:
        raise HostError(f"no API token for {config.kind} (set RECONCILER_GIT_HOST_TOKEN)")
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        try:
            if config.kind == "github":
                return await _github(session, config, head=head, base=base, title=title, body=body)
            return await _gitlab(session, config, head=head, base=base, title=title, body=body)
        except aiohttp.ClientError as exc:
            raise HostError(f"{config.api_url}: {exc}") from None


async def _github(
    session: aiohttp.ClientSession, config: HostConfig, *, head: str, base: str, title: str, body: str
) -> PullRequest:
    headers = {
        "Authorization": f"Bearer {config.token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "reconciler",
    }
    url = f"{config.api_url}/repos/{config.repo}/pulls"
    payload = {"title": title, "head": head, "base": base, "body": body}
    async with session.post(url, json=payload, headers=headers) as resp:
        data = await _json(resp)
        if resp.status == 201:
            return PullRequest(number=int(data["number"]), url=str(data["html_url"]), created=True)
        if resp.status != 422 or "already exists" not in _message(data):
            raise HostError(f"POST {url}: {resp.status}: {_message(data)}")
    owner = config.repo.split("/", 1)[0]
    params = {"head": f"{owner}:{head}", "base": base, "state": "open"}
    async with session.get(url, params=params, headers=headers) as resp:
        found = await _json(resp)
        if resp.status == 200 and isinstance(found, list) and found:
            return PullRequest(number=int(found[0]["number"]), url=str(found[0]["html_url"]), created=False)
        raise HostError(f"GET {url}: {resp.status}: the open pull request for {head} was not found")


async def _gitlab(
    session: aiohttp.ClientSession, config: HostConfig, *, head: str, base: str, title: str, body: str
) -> PullRequest:
    headers = {"PRIVATE-TOKEN": str(config.token), "User-Agent": "reconciler"}
    url = f"{config.api_url}/projects/{quote(config.repo, safe='')}/merge_requests"
    payload = {
        "source_branch": head,
        "target_branch": base,
        "title": title,
        "description": body,
        "remove_source_branch": True,
    }
    async with session.post(url, json=payload, headers=headers) as resp:
        data = await _json(resp)
        if resp.status == 201:
            return PullRequest(number=int(data["iid"]), url=str(data["web_url"]), created=True)
        if resp.status != 409:
            raise HostError(f"POST {url}: {resp.status}: {_message(data)}")
    params = {"source_branch": head, "target_branch": base, "state": "opened"}
    async with session.get(url, params=params, headers=headers) as resp:
        found = await _json(resp)
        if resp.status == 200 and isinstance(found, list) and found:
            return PullRequest(number=int(found[0]["iid"]), url=str(found[0]["web_url"]), created=False)
        raise HostError(f"GET {url}: {resp.status}: the open merge request for {head} was not found")
