"""The Git host's API: pull requests and commit statuses on GitHub, GitLab and Gitea, with retries.

Pull requests (``open_pull_request``, ``find_pull_request``, ``get_pull_request``):

* GitHub REST (https://docs.github.com/en/rest/pulls/pulls): ``POST /repos/{owner}/{repo}/pulls`` with
  ``{title, head, base, body}``; an open pull request for the branch answers 422 ("A pull request already
  exists") and is looked up with ``GET /repos/{owner}/{repo}/pulls?head={owner}:{branch}&base=…&state=open``;
  one is read with ``GET /repos/{owner}/{repo}/pulls/{number}`` (``state``, ``merged``,
  ``merge_commit_sha``, ``head.sha``).
* GitLab REST v4 (https://docs.gitlab.com/api/merge_requests/): ``POST /projects/:id/merge_requests`` with
  ``{source_branch, target_branch, title, description}`` (``:id`` is the URL-encoded project path); an
  open one answers 409 and is looked up with ``GET /projects/:id/merge_requests?source_branch=…&
  target_branch=…&state=opened``; one is read with ``GET /projects/:id/merge_requests/:iid`` (``state``
  opened|closed|locked|merged, ``merge_commit_sha`` or ``squash_commit_sha``, ``sha``).
* Gitea API v1 (https://docs.gitea.com/api/1.27/, swagger at ``<web>/swagger.v1.json``; authorization
  ``Authorization: token <token>``): ``POST /repos/{owner}/{repo}/pulls`` with ``{head, base, title,
  body}`` answers 201, or 409 when an unmerged pull request has the same head and base (older releases:
  422 "already exists"). It is then looked up with ``GET /repos/{owner}/{repo}/pulls/{base}/{head}``
  (which may also return a closed one, so its ``state`` is checked), else among ``GET /repos/{owner}/
  {repo}/pulls?state=open&base_branch=…`` by ``head.ref``/``base.ref``; one is read with ``GET
  /repos/{owner}/{repo}/pulls/{index}`` (``state``, ``merged``, ``merge_commit_sha``, ``head.sha``).

Commit statuses (``post_commit_status``, ``list_commit_statuses``), in the states pending, success,
failure and error:

* GitHub (https://docs.github.com/en/rest/commits/statuses): ``POST /repos/{owner}/{repo}/statuses/{sha}``
  with ``{state, target_url, description, context}``; ``GET /repos/{owner}/{repo}/commits/{ref}/statuses``
  (newest first).
* GitLab (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit): ``POST
  /projects/:id/statuses/:sha`` with ``{state, name, description, target_url}``, states pending, running,
  success, failed, canceled (``failure`` and ``error`` are sent as ``failed``); ``GET
  /projects/:id/repository/commits/:sha/statuses`` (the latest status of each name). GitLab refuses to
  set a status to the state it already has (400 "Cannot transition status"); that answer counts as done.
* Gitea: ``POST /repos/{owner}/{repo}/statuses/{sha}`` with GitHub's body (states pending, success, error,
  failure, warning); ``GET /repos/{owner}/{repo}/commits/{ref}/statuses`` (each status names its state
  ``status``).

Every description is cut to :data:`DESCRIPTION_LIMIT` characters (GitHub's limit).

Retries: a connection error, a timeout, a 5xx or a 429 answer (and a 403 that carries ``Retry-After``,
GitHub's secondary rate limit) is retried with exponential backoff and jitter, at least as long as the
host's ``Retry-After`` says, until :attr:`HostConfig.retry_seconds` have passed since the operation
began; each retry is logged on ``reconciler.promote.hosts``. Other 4xx answers are final. A pull request
whose creation succeeded on the host while the answer was lost is found by the retried POST's "already
exists" answer, so a retry never opens a second one (it is then returned with ``created=False``). Errors
name the method, the URL (never a token: tokens travel in headers, and any token or URL credentials are
masked), the HTTP status and the host's message.

Without a token, :func:`manual_instructions` says where to open the pull request by hand.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, TypeVar, get_args
from urllib.parse import quote

import aiohttp
import tenacity
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from yarl import URL

from reconciler.cluster.retry import parse_retry_after
from reconciler.errors import ConfigError, ReconcilerError

__all__ = [
    "DEFAULT_RETRY_SECONDS",
    "DESCRIPTION_LIMIT",
    "HOST_KINDS",
    "CommitStatus",
    "HostConfig",
    "HostError",
    "HostKind",
    "PullRequest",
    "PullRequestState",
    "StatusState",
    "as_kind",
    "find_pull_request",
    "get_pull_request",
    "host_config",
    "latest_status",
    "list_commit_statuses",
    "manual_instructions",
    "open_pull_request",
    "parse_remote",
    "post_commit_status",
    "replace_section",
    "set_pull_request_section",
]

log = logging.getLogger("reconciler.promote.hosts")

_M = TypeVar("_M", bound=BaseModel)

HostKind = Literal["github", "gitlab", "gitea"]
HOST_KINDS: tuple[HostKind, ...] = get_args(HostKind)
StatusState = Literal["pending", "success", "failure", "error"]

DEFAULT_RETRY_SECONDS = 60.0
"""How long, in seconds, one operation keeps retrying a host that fails transiently."""

DESCRIPTION_LIMIT = 140
"""The longest commit-status description sent (GitHub refuses longer ones)."""

_RETRY_STATUSES = frozenset({429})
_GITLAB_STATE: dict[StatusState, str] = {
    "pending": "pending",
    "success": "success",
    "failure": "failed",
    "error": "failed",
}
_NORMALIZED: dict[str, StatusState] = {
    # GitHub and Gitea
    "pending": "pending",
    "success": "success",
    "failure": "failure",
    "error": "error",
    "warning": "failure",
    "skipped": "success",
    # GitLab
    "created": "pending",
    "waiting_for_resource": "pending",
    "preparing": "pending",
    "running": "pending",
    "scheduled": "pending",
    "manual": "pending",
    "failed": "failure",
    "canceled": "error",
}


class HostError(ReconcilerError):
    """The Git host refused or failed a request; the message has the method, URL, HTTP status and the
    host's words.

    Attributes:
        status: the last HTTP status (0 when no answer came; ``None`` for errors before any request).
    """

    retryable = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Transient(HostError):
    """An attempt failed in a way another attempt may not (no answer, 5xx, 429)."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class PullRequest(BaseModel):
    """A pull (merge) request on the host.

    ``created`` is False when it was open already, also when an earlier attempt of the same call opened
    it but its answer was lost.
    """

    number: int
    url: str
    created: bool = True


class PullRequestState(BaseModel):
    """What the host says about a pull (merge) request now."""

    number: int
    url: str
    state: Literal["open", "closed", "merged"]
    merged: bool
    merge_commit_sha: str | None = Field(
        default=None, description="the merge (or squash) commit, once merged (None before)"
    )
    head_sha: str | None = None
    head_ref: str = ""
    base_ref: str = ""


class CommitStatus(BaseModel):
    """One status of a commit.

    ``state`` is in this module's words (GitLab's ``failed`` reads as ``failure``, ``running`` as
    ``pending``, ``canceled`` as ``error``; Gitea's ``warning`` as ``failure``); ``host_state`` is the
    host's own.
    """

    context: str
    state: StatusState
    host_state: str
    description: str = ""
    target_url: str | None = None
    id: int | None = None
    created_at: str | None = None


@dataclass(frozen=True)
class HostConfig:
    """Where and how to reach the Git host's API.

    Attributes:
        kind: ``github``, ``gitlab`` or ``gitea``.
        repo: ``owner/name`` (GitHub, Gitea) or the project path ``group/sub/name`` (GitLab).
        token: the API token (GitHub: pull requests and commit statuses write; GitLab: ``api`` scope;
            Gitea: ``write:repository``).
        api_url: the API base, e.g. ``https://api.github.com``, ``https://gitlab.com/api/v4`` or
            ``https://gitea.example/api/v1``.
        web_url: the web base, for links printed without a token.
        retry_seconds: how long one operation retries transient failures (0: one attempt only).
        retry_initial: the first backoff, in seconds (doubling per retry).
        retry_max_wait: the longest single backoff, in seconds (a host's ``Retry-After`` may ask more).
        request_timeout: the limit of one attempt, in seconds.
    """

    kind: HostKind
    repo: str
    token: str | None
    api_url: str
    web_url: str
    retry_seconds: float = DEFAULT_RETRY_SECONDS
    retry_initial: float = 0.5
    retry_max_wait: float = 10.0
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("retry_seconds", "retry_initial", "retry_max_wait", "request_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"HostConfig.{name} must be a finite number >= 0, got {value!r}")

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        return (
            f"HostConfig(kind={self.kind!r}, repo={self.repo!r}, token={'***' if self.token else None}, "
            f"api_url={self.api_url!r}, web_url={self.web_url!r})"
        )


_SCP_RE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.+)$")
_URL_RE = re.compile(r"^[a-z+]+://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?/(?P<path>.+)$")
_HTTP_BASE_RE = re.compile(r"^(?P<scheme>https?)://(?:[^@/]+@)?(?P<netloc>[^/]+)/", re.IGNORECASE)


def parse_remote(url: str) -> tuple[str, str] | None:
    """``(host, path)`` of a clone URL (``https://github.com/acme/envs.git``, ``git@github.com:acme/envs``);
    ``None`` for a local path."""
    m = _URL_RE.match(url) or (None if url.startswith(("/", ".", "~", "file:")) else _SCP_RE.match(url))
    if not m:
        return None
    path = m.group("path").strip("/")
    return m.group("host").lower(), path.removesuffix(".git")


def _kind_of(value: str | None) -> HostKind | None:
    for kind in HOST_KINDS:
        if value == kind:
            return kind
    return None


def host_config(
    remote_url: str,
    *,
    kind: HostKind | None = None,
    repo: str | None = None,
    token: str | None = None,
    api_url: str | None = None,
    web_url: str | None = None,
    retry_seconds: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> HostConfig | None:
    """Work out the Git host from explicit values, ``RECONCILER_GIT_HOST_*`` / ``GITHUB_TOKEN`` /
    ``GITLAB_TOKEN`` / ``GITEA_TOKEN`` variables and the remote URL; ``None`` when the host is unknown
    (a local path, or a host name that names no kind and no kind is given).

    Variables: ``RECONCILER_GIT_HOST`` (github|gitlab|gitea; else the remote's host name when it contains
    one of them), ``RECONCILER_GIT_HOST_REPO``, ``RECONCILER_GIT_HOST_API``, ``RECONCILER_GIT_HOST_URL``,
    ``RECONCILER_GIT_HOST_TOKEN`` (else ``GITHUB_TOKEN``, ``GITLAB_TOKEN`` or ``GITEA_TOKEN`` by kind),
    ``RECONCILER_GIT_HOST_RETRY_SECONDS`` (default :data:`DEFAULT_RETRY_SECONDS`).

    The web base defaults to the remote's scheme, host and port for an ``http(s)://`` remote, else to
    ``https://<host>``; the API base to ``https://api.github.com`` (github.com), ``<web>/api/v3``
    (GitHub Enterprise), ``<web>/api/v4`` (GitLab) or ``<web>/api/v1`` (Gitea).

    Raises:
        ConfigError: ``RECONCILER_GIT_HOST`` names no known kind, or the retry time is not a number >= 0.
    """
    env = os.environ if environ is None else environ
    parsed = parse_remote(remote_url)
    named = env.get("RECONCILER_GIT_HOST") or None
    kind_value = kind or _kind_of(named)
    if kind is None and named is not None and kind_value is None:
        raise ConfigError(f"RECONCILER_GIT_HOST must be one of {', '.join(HOST_KINDS)}, not {named!r}")
    if kind_value is None and parsed is not None:
        kind_value = next((k for k in HOST_KINDS if k in parsed[0]), None)
    if kind_value is None:
        return None
    repo = repo or env.get("RECONCILER_GIT_HOST_REPO") or (parsed[1] if parsed else None)
    if not repo:
        return None
    host = parsed[0] if parsed else f"{kind_value}.com"
    http = _HTTP_BASE_RE.match(remote_url)
    remote_web = f"{http['scheme'].lower()}://{http['netloc'].lower()}" if http else f"https://{host}"
    web = (web_url or env.get("RECONCILER_GIT_HOST_URL") or remote_web).rstrip("/")
    if kind_value == "github":
        default_api = "https://api.github.com" if web == "https://github.com" else f"{web}/api/v3"
    elif kind_value == "gitlab":
        default_api = f"{web}/api/v4"
    else:
        default_api = f"{web}/api/v1"
    tok = token or env.get("RECONCILER_GIT_HOST_TOKEN") or env.get(f"{kind_value.upper()}_TOKEN")
    if retry_seconds is None:
        raw = env.get("RECONCILER_GIT_HOST_RETRY_SECONDS") or ""
        try:
            retry_seconds = float(raw) if raw.strip() else DEFAULT_RETRY_SECONDS
        except ValueError:
            raise ConfigError(f"RECONCILER_GIT_HOST_RETRY_SECONDS must be seconds, not {raw!r}") from None
    if not (math.isfinite(retry_seconds) and retry_seconds >= 0):
        raise ConfigError(f"the Git host's retry time must be seconds >= 0, not {retry_seconds!r}")
    return HostConfig(
        kind=kind_value,
        repo=repo,
        token=tok or None,
        api_url=(api_url or env.get("RECONCILER_GIT_HOST_API") or default_api).rstrip("/"),
        web_url=web,
        retry_seconds=retry_seconds,
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
    if config is not None and config.kind == "gitea":
        compare = f"{config.web_url}/{config.repo}/compare/{quote(base, safe='/')}...{quote(head, safe='/')}"
        return f"open a pull request: {compare}"
    return f"open a pull request from branch {head!r} into {base!r} of {remote_url}"


# --- the hosts' JSON ---------------------------------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Branch(_Loose):
    ref: str = ""
    sha: str | None = None


class _Pull(_Loose):
    """A GitHub or Gitea pull request (lists may omit ``merged``; GitHub's then has ``merged_at``)."""

    number: int
    html_url: str
    state: str = "open"
    merged: bool | None = None
    merged_at: str | None = None
    merge_commit_sha: str | None = None
    head: _Branch = Field(default_factory=_Branch)
    base: _Branch = Field(default_factory=_Branch)


class _MergeRequest(_Loose):
    iid: int
    web_url: str
    state: str = "opened"
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    sha: str | None = None
    source_branch: str = ""
    target_branch: str = ""


class _HubStatus(_Loose):
    """A GitHub status (``state``) or a Gitea one (``status``)."""

    id: int | None = None
    state: str | None = None
    status: str | None = None
    context: str = "default"
    description: str | None = None
    target_url: str | None = None
    created_at: str | None = None


class _LabStatus(_Loose):
    id: int | None = None
    status: str
    name: str = "default"
    description: str | None = None
    target_url: str | None = None
    created_at: str | None = None


# --- requests with retries ---------------------------------------------------------------------------


def _redact(url: str) -> str:
    """``url`` without user information (``https://user:secret@host`` → ``https://host``)."""
    try:
        return str(URL(url).with_user(None))
    except (ValueError, TypeError):
        return re.sub(r"//[^@/]*@", "//", url)


def _message(data: Any) -> str:
    if isinstance(data, dict):
        raw = data.get("message", data.get("error", ""))
        parts = [", ".join(map(str, raw)) if isinstance(raw, list) else str(raw)]
        for e in data.get("errors") or []:
            parts.append(str(e.get("message", e)) if isinstance(e, dict) else str(e))
        return "; ".join(p for p in parts if p)[:500]
    return str(data)[:500]


def _jitter(wait: float) -> float:
    """``wait`` plus up to a fifth more, at random (so that clients retrying together spread out)."""
    return wait + wait * 0.2 * random.random()


class _Api:
    """One operation against the host: a session, the headers of its kind and a retry deadline shared by
    every request of the operation."""

    def __init__(self, config: HostConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self.deadline = time.monotonic() + config.retry_seconds
        self.headers: dict[str, str] = {"User-Agent": "reconciler", "Accept": "application/json"}
        if config.kind == "github":
            self.headers["Accept"] = "application/vnd.github+json"
            self.headers["X-GitHub-Api-Version"] = "2022-11-28"
            if config.token:
                self.headers["Authorization"] = f"Bearer {config.token}"
        elif config.kind == "gitlab":
            if config.token:
                self.headers["PRIVATE-TOKEN"] = config.token
        elif config.token:
            self.headers["Authorization"] = f"token {config.token}"

    # paths
    def repo_path(self) -> str:
        if self.config.kind == "gitlab":
            return f"{self.config.api_url}/projects/{quote(self.config.repo, safe='')}"
        return f"{self.config.api_url}/repos/{self.config.repo}"

    def masked(self, text: str) -> str:
        token = self.config.token
        return text.replace(token, "***") if token else text

    def error(self, method: str, url: str, status: int, data: Any, extra: str = "") -> HostError:
        what = _message(data) if data is not None else ""
        text = f"{method} {_redact(url)}: {status}: {what}{extra}"
        return HostError(self.masked(text), status=status)

    def fail(self, method: str, url: str, status: int, data: Any) -> NoReturn:
        raise self.error(method, url, status, data)

    async def call(
        self,
        method: str,
        url: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """``(status, JSON body)`` of the first attempt that got an answer other than a transient
        failure; transient failures are retried until the deadline.

        Raises:
            HostError: the host stayed unreachable or kept failing (names the attempts and the time).
        """
        started = time.monotonic()
        attempts = 0

        def wait(state: tenacity.RetryCallState) -> float:
            backoff = min(
                self.config.retry_max_wait, self.config.retry_initial * 2 ** max(0, state.attempt_number - 1)
            )
            backoff = _jitter(backoff)
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None and outcome.failed else None
            if isinstance(exc, _Transient) and exc.retry_after is not None:
                backoff = max(backoff, exc.retry_after)
            return backoff

        def stop(state: tenacity.RetryCallState) -> bool:
            return time.monotonic() + (state.upcoming_sleep or 0.0) > self.deadline

        def report(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            log.warning(
                "git host: %s; retrying in %.1f s (attempt %d)",
                exc,
                state.upcoming_sleep,
                state.attempt_number + 1,
            )

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(_Transient),
            wait=wait,
            stop=stop,
            before_sleep=report,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    return await self._once(method, url, json=json, params=params)
        except _Transient as exc:
            took = time.monotonic() - started
            raise HostError(
                f"{exc} (gave up after {attempts} attempt{'s' if attempts != 1 else ''} in {took:.1f} s)",
                status=exc.status,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        method: str,
        url: str,
        *,
        json: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> tuple[int, Any]:
        remaining = self.deadline - time.monotonic()
        timeout = aiohttp.ClientTimeout(total=min(self.config.request_timeout, max(5.0, remaining)))
        where = f"{method} {_redact(url)}"
        try:
            async with self.session.request(
                method, url, json=json, params=params, headers=self.headers, timeout=timeout
            ) as resp:
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = {"message": (await resp.text())[:500]}
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise _Transient(self.masked(f"{where}: no answer: {reason}"), status=0) from None
        if status >= 500 or status in _RETRY_STATUSES or (status == 403 and retry_after is not None):
            raise _Transient(
                self.masked(f"{where}: {status}: {_message(data)}"), status=status, retry_after=retry_after
            )
        return status, data

    def parse(self, model: type[_M], data: Any, method: str, url: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise HostError(
                f"{method} {_redact(url)}: unexpected answer ({exc.error_count()} problem(s): "
                f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']})"
            ) from None

    def parse_list(self, model: type[_M], data: Any, method: str, url: str) -> list[_M]:
        if not isinstance(data, list):
            raise HostError(f"{method} {_redact(url)}: unexpected answer (not a list)")
        return [self.parse(model, item, method, url) for item in data]


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


def _need_token(config: HostConfig) -> None:
    if not config.token:
        env = f"{config.kind.upper()}_TOKEN"
        raise HostError(f"no API token for {config.kind} (set RECONCILER_GIT_HOST_TOKEN or {env})")


# --- pull requests -----------------------------------------------------------------------------------


async def open_pull_request(
    config: HostConfig, *, head: str, base: str, title: str, body: str
) -> PullRequest:
    """Open a pull (merge) request from ``head`` into ``base``, or return the one already open
    (``created=False``). Transient failures are retried (see the module docstring); a POST whose answer
    was lost never leads to a second pull request.

    Raises:
        HostError: no token, or the host answered with an error (method, URL, status and message).
    """
    _need_token(config)
    async with _session() as session:
        api = _Api(config, session)
        if config.kind == "gitlab":
            return await _gitlab_open(api, head=head, base=base, title=title, body=body)
        return await _hub_open(api, head=head, base=base, title=title, body=body)


async def find_pull_request(config: HostConfig, *, head: str, base: str) -> PullRequest | None:
    """The open pull (merge) request from ``head`` into ``base`` (``created=False``), or ``None``.

    Raises:
        HostError: the host answered with an error.
    """
    async with _session() as session:
        api = _Api(config, session)
        if config.kind == "github":
            return await _github_find(api, head=head, base=base)
        if config.kind == "gitlab":
            return await _gitlab_find(api, head=head, base=base)
        return await _gitea_find(api, head=head, base=base)


async def get_pull_request(config: HostConfig, number: int) -> PullRequestState:
    """The pull (merge) request ``number`` (GitLab: the ``iid``) as the host says it is now.

    Raises:
        HostError: the host answered with an error (404 when there is no such pull request).
    """
    async with _session() as session:
        api = _Api(config, session)
        if config.kind == "gitlab":
            url = f"{api.repo_path()}/merge_requests/{int(number)}"
            status, data = await api.call("GET", url)
            if status != 200:
                api.fail("GET", url, status, data)
            mr = api.parse(_MergeRequest, data, "GET", url)
            state: Literal["open", "closed", "merged"] = (
                "merged" if mr.state == "merged" else "closed" if mr.state == "closed" else "open"
            )
            return PullRequestState(
                number=mr.iid,
                url=mr.web_url,
                state=state,
                merged=state == "merged",
                merge_commit_sha=mr.merge_commit_sha or mr.squash_commit_sha,
                head_sha=mr.sha,
                head_ref=mr.source_branch,
                base_ref=mr.target_branch,
            )
        url = f"{api.repo_path()}/pulls/{int(number)}"
        status, data = await api.call("GET", url)
        if status != 200:
            api.fail("GET", url, status, data)
        return _pull_state(api.parse(_Pull, data, "GET", url))


def replace_section(body: str, name: str, text: str) -> str:
    """``body`` with the section ``name`` (between ``<!-- name -->`` and ``<!-- /name -->``) set to
    ``text``: replaced where it is, else appended after a blank line."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    i = body.find(start)
    j = body.find(end, i) if i >= 0 else -1
    if i >= 0 and j >= 0:
        return body[:i] + block + body[j + len(end) :]
    return (body.rstrip() + "\n\n" if body.strip() else "") + block + "\n"


async def set_pull_request_section(config: HostConfig, number: int, name: str, text: str) -> None:
    """Set a marked section of pull (merge) request ``number``'s description (see :func:`replace_section`),
    keeping the rest as it is: the check's report in a promotion pull request's body, replaced on every
    run rather than appended. GitHub ``PATCH /repos/{o}/{r}/pulls/{n}`` ``{body}``, Gitea the same path and
    field, GitLab ``PUT /projects/:id/merge_requests/:iid`` ``{description}``. Nothing is sent when the
    section already says ``text``.

    Raises:
        HostError: no token, or the host answered with an error.
    """
    _need_token(config)
    async with _session() as session:
        api = _Api(config, session)
        gitlab = config.kind == "gitlab"
        url = f"{api.repo_path()}/{'merge_requests' if gitlab else 'pulls'}/{int(number)}"
        status, data = await api.call("GET", url)
        if status != 200:
            api.fail("GET", url, status, data)
        field = "description" if gitlab else "body"
        current = str((data or {}).get(field) or "") if isinstance(data, dict) else ""
        wanted = replace_section(current, name, text)
        if wanted == current:
            return
        method = "PUT" if gitlab else "PATCH"
        status, data = await api.call(method, url, json={field: wanted})
        if status not in (200, 201):
            api.fail(method, url, status, data)


def _pull_state(pr: _Pull) -> PullRequestState:
    merged = bool(pr.merged) or pr.merged_at is not None
    state: Literal["open", "closed", "merged"] = (
        "merged" if merged else "closed" if pr.state == "closed" else "open"
    )
    return PullRequestState(
        number=pr.number,
        url=pr.html_url,
        state=state,
        merged=merged,
        merge_commit_sha=pr.merge_commit_sha if merged else None,
        head_sha=pr.head.sha,
        head_ref=pr.head.ref,
        base_ref=pr.base.ref,
    )


def _already_exists(kind: HostKind, status: int, data: Any) -> bool:
    if kind == "gitlab":
        return status == 409
    if kind == "gitea" and status == 409:
        return True
    return status == 422 and "already exists" in _message(data).lower()


async def _hub_open(api: _Api, *, head: str, base: str, title: str, body: str) -> PullRequest:
    """GitHub and Gitea: the same request body, different "already open" answers."""
    url = f"{api.repo_path()}/pulls"
    payload = {"title": title, "head": head, "base": base, "body": body}
    status, data = await api.call("POST", url, json=payload)
    if status in (200, 201):
        pr = api.parse(_Pull, data, "POST", url)
        return PullRequest(number=pr.number, url=pr.html_url, created=True)
    if not _already_exists(api.config.kind, status, data):
        api.fail("POST", url, status, data)
    find = _github_find if api.config.kind == "github" else _gitea_find
    found = await find(api, head=head, base=base)
    if found is None:
        raise api.error(
            "POST", url, status, data, f" (and the open pull request from {head} into {base} was not found)"
        )
    return found


async def _github_find(api: _Api, *, head: str, base: str) -> PullRequest | None:
    url = f"{api.repo_path()}/pulls"
    owner = api.config.repo.split("/", 1)[0]
    status, data = await api.call(
        "GET", url, params={"head": f"{owner}:{head}", "base": base, "state": "open"}
    )
    if status != 200:
        api.fail("GET", url, status, data)
    pulls = api.parse_list(_Pull, data, "GET", url)
    return PullRequest(number=pulls[0].number, url=pulls[0].html_url, created=False) if pulls else None


_GITEA_PAGE = 50
_GITEA_PAGES = 20


async def _gitea_find(api: _Api, *, head: str, base: str) -> PullRequest | None:
    if "/" not in base:  # the dedicated route is /pulls/{base}/{head...}: one segment for the base
        url = f"{api.repo_path()}/pulls/{quote(base, safe='')}/{quote(head, safe='/')}"
        status, data = await api.call("GET", url)
        if status == 200:  # else (404: none, or a release without the route) look in the list
            pr = api.parse(_Pull, data, "GET", url)
            if pr.state == "open" and not pr.merged:
                return PullRequest(number=pr.number, url=pr.html_url, created=False)
    url = f"{api.repo_path()}/pulls"
    for page in range(1, _GITEA_PAGES + 1):
        params = {"state": "open", "base_branch": base, "page": str(page), "limit": str(_GITEA_PAGE)}
        status, data = await api.call("GET", url, params=params)
        if status != 200:
            api.fail("GET", url, status, data)
        pulls = api.parse_list(_Pull, data, "GET", url)
        for pr in pulls:
            if pr.head.ref == head and pr.base.ref == base and pr.state == "open":
                return PullRequest(number=pr.number, url=pr.html_url, created=False)
        if len(pulls) < _GITEA_PAGE:
            break
    return None


async def _gitlab_open(api: _Api, *, head: str, base: str, title: str, body: str) -> PullRequest:
    url = f"{api.repo_path()}/merge_requests"
    payload = {
        "source_branch": head,
        "target_branch": base,
        "title": title,
        "description": body,
        "remove_source_branch": True,
    }
    status, data = await api.call("POST", url, json=payload)
    if status in (200, 201):
        mr = api.parse(_MergeRequest, data, "POST", url)
        return PullRequest(number=mr.iid, url=mr.web_url, created=True)
    if not _already_exists("gitlab", status, data):
        api.fail("POST", url, status, data)
    found = await _gitlab_find(api, head=head, base=base)
    if found is None:
        raise api.error(
            "POST", url, status, data, f" (and the open merge request from {head} into {base} was not found)"
        )
    return found


async def _gitlab_find(api: _Api, *, head: str, base: str) -> PullRequest | None:
    url = f"{api.repo_path()}/merge_requests"
    params = {"source_branch": head, "target_branch": base, "state": "opened"}
    status, data = await api.call("GET", url, params=params)
    if status != 200:
        api.fail("GET", url, status, data)
    mrs = api.parse_list(_MergeRequest, data, "GET", url)
    return PullRequest(number=mrs[0].iid, url=mrs[0].web_url, created=False) if mrs else None


# --- commit statuses ---------------------------------------------------------------------------------


def _cut(text: str) -> str:
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


def _host_state(kind: HostKind, state: StatusState) -> str:
    return _GITLAB_STATE[state] if kind == "gitlab" else state


def _status_of(item: _HubStatus | _LabStatus) -> CommitStatus:
    if isinstance(item, _LabStatus):
        raw, context = item.status, item.name
    else:
        raw, context = item.state or item.status or "", item.context
    return CommitStatus(
        context=context,
        state=_NORMALIZED.get(raw, "error"),
        host_state=raw,
        description=item.description or "",
        target_url=item.target_url or None,
        id=item.id,
        created_at=item.created_at,
    )


def latest_status(statuses: Iterable[CommitStatus], context: str) -> CommitStatus | None:
    """The newest status of ``context`` among ``statuses`` (the highest id; without ids, the first, as
    hosts list the newest first)."""
    mine = [s for s in statuses if s.context == context]
    if not mine:
        return None
    if all(s.id is not None for s in mine):
        return max(mine, key=lambda s: s.id or 0)
    return mine[0]


def _same(existing: CommitStatus, host_state: str, description: str, target_url: str | None) -> bool:
    return (
        existing.host_state == host_state
        and existing.description == description
        and (existing.target_url or None) == (target_url or None)
    )


async def list_commit_statuses(config: HostConfig, sha: str) -> list[CommitStatus]:
    """The statuses of commit ``sha`` as the host lists them (GitHub and Gitea: every status, newest
    first, one page of up to 100 or 50; GitLab: the latest of each name). See :func:`latest_status`.

    Raises:
        HostError: the host answered with an error.
    """
    async with _session() as session:
        return await _list_statuses(_Api(config, session), sha)


async def _list_statuses(api: _Api, sha: str) -> list[CommitStatus]:
    kind = api.config.kind
    ref = quote(sha, safe="")
    if kind == "gitlab":
        url = f"{api.repo_path()}/repository/commits/{ref}/statuses"
        params = {"per_page": "100"}
    else:
        url = f"{api.repo_path()}/commits/{ref}/statuses"
        params = {"per_page": "100"} if kind == "github" else {"limit": "50"}
    status, data = await api.call("GET", url, params=params)
    if status != 200:
        api.fail("GET", url, status, data)
    model: type[_HubStatus] | type[_LabStatus] = _LabStatus if kind == "gitlab" else _HubStatus
    return [_status_of(item) for item in api.parse_list(model, data, "GET", url)]


async def post_commit_status(
    config: HostConfig,
    sha: str,
    *,
    context: str,
    state: StatusState,
    description: str,
    target_url: str | None = None,
    only_if_changed: bool = False,
) -> CommitStatus:
    """Set the status ``context`` (GitLab: the status ``name``) of commit ``sha``.

    Args:
        state: pending, success, failure or error (GitLab gets ``failed`` for the last two).
        description: cut to :data:`DESCRIPTION_LIMIT` characters.
        target_url: the link the host shows with the status.
        only_if_changed: first read the commit's statuses and post nothing when the latest of
            ``context`` already has this state, description and link (that one is returned then).

    Returns:
        The status as the host recorded it (or the unchanged one).

    Raises:
        HostError: no token, ``state`` is unknown, or the host answered with an error.
    """
    _need_token(config)
    if state not in _GITLAB_STATE:
        raise HostError(f"commit status state must be pending, success, failure or error, not {state!r}")
    text = _cut(description)
    wanted = _host_state(config.kind, state)
    async with _session() as session:
        api = _Api(config, session)
        if only_if_changed:
            current = latest_status(await _list_statuses(api, sha), context)
            if current is not None and _same(current, wanted, text, target_url):
                return current
        url = f"{api.repo_path()}/statuses/{quote(sha, safe='')}"
        name = "name" if config.kind == "gitlab" else "context"
        payload: dict[str, Any] = {"state": wanted, name: context, "description": text}
        if target_url:
            payload["target_url"] = target_url
        status, data = await api.call("POST", url, json=payload)
        if status in (200, 201):
            model: type[_HubStatus] | type[_LabStatus] = _LabStatus if config.kind == "gitlab" else _HubStatus
            return _status_of(api.parse(model, data, "POST", url))
        if config.kind == "gitlab" and status == 400 and "cannot transition" in _message(data).lower():
            # already in that state (also: a retried POST whose first answer was lost)
            current = latest_status(await _list_statuses(api, sha), context)
            if current is not None and current.host_state == wanted:
                return current
        api.fail("POST", url, status, data)


def as_kind(value: str | None) -> HostKind | None:
    """``value`` as a :data:`HostKind`, ``None`` for ``None``.

    Raises:
        ConfigError: not a known kind.
    """
    if value is None:
        return None
    kind = _kind_of(value)
    if kind is None:
        raise ConfigError(f"the Git host must be github, gitlab or gitea, not {value!r}")
    return kind
