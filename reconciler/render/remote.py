"""Remote bases and remote files for the renderer: the allow-list, fetching, cycles and the record.

Behaviour follows kustomize v5.8.1 (api v0.21.1):

* ``api/internal/target/kusttarget.go`` ``accumulateResources``: a ``resources`` entry is tried as a file
  first (an ``http(s)://`` URL is fetched over HTTP), then as a base (a directory or a Git repository). A
  successful response that is not valid YAML makes a Git-like URL a repository; an unsuccessful one
  (``HTTP Error: status code 404 (Not Found)``) stops the build unless the URL is Git-like.
* ``api/internal/loader/fileloader.go``: ``New`` turns any entry that
  :func:`~reconciler.render.repospec.parse_repo_spec` accepts into a loader rooted in a clone
  (``newLoaderAtGitClone``: the path must be a directory inside the clone; files are then read with the
  root-only restrictor, within the clone); ``errIfRepoCycle``
  refuses a repository whose URL is a prefix of one being built (``cycle detected: URI … referenced by
  previous URI …``); ``Load`` reads ``http(s)`` file paths over HTTP (``httpClientGetContent``) anywhere a
  kustomization names a file.

Additions: every remote (and every HTTP redirect) must match the environment's allow-list
(``render.remoteBases.allow``, or ``reconciler build --allow-remote``), checked before any network access;
a repository that comes back to the same commit and directory is a cycle too (kustomize would clone it
forever); each remote used is recorded as a :class:`~reconciler.model.remote.RemoteBase` (commit or
SHA-256) in :attr:`RemoteOptions.used`. Fetching is :class:`reconciler.source.remote.RemoteRepos`'s.
"""

from __future__ import annotations

import hashlib
import http
import http.client
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.model.remote import RemoteBase, allowed_by, target_of
from reconciler.render.errors import RenderError

if TYPE_CHECKING:
    from reconciler.model.environment import Environment
from reconciler.render.repospec import (
    DEFAULT_TIMEOUT,
    RepoSpec,
    RepoSpecError,
    is_remote_file,
    parse_repo_spec,
)

#: Longest any one fetch may be given, whatever a URL's ``?timeout=`` asks (seconds).
MAX_TIMEOUT = 300.0
#: Default size cap of one remote repository's checked-out tree (bytes).
DEFAULT_MAX_BYTES = 64 << 20
#: What the messages tell a user to edit when no :class:`RemoteOptions` names the setting.
DEFAULT_SETTING = "render.remoteBases.allow in envs/<env>.yaml (reconciler build: --allow-remote)"


class FetchedTreeLike(Protocol):
    """What a fetcher returns (:class:`reconciler.source.remote.FetchedTree`)."""

    @property
    def root(self) -> Path: ...

    @property
    def commit(self) -> str: ...


class RepoFetcher(Protocol):
    """Fetches a commit of a remote repository (:class:`reconciler.source.remote.RemoteRepos`)."""

    def fetch(
        self,
        url: str,
        ref: str,
        *,
        timeout: float,
        max_bytes: int,
        submodules: bool = True,
        check_url: Any = None,
    ) -> FetchedTreeLike: ...


@dataclass
class RemoteOptions:
    """What a render may fetch, and what it fetched.

    Attributes:
        allow: host patterns (:mod:`reconciler.model.remote`); empty: nothing remote is allowed.
        setting: where the user adds a pattern, named in "not allowed" errors.
        timeout: seconds for each fetch of a repository (all its Git commands together) and each HTTP
            request (a URL's ``?timeout=`` replaces it, up to :data:`MAX_TIMEOUT`).
        max_bytes: size cap of one repository's checked-out tree.
        cache_dir: the reconciler cache directory holding ``remote-bases/`` (used when ``fetcher`` is None).
        fetcher: fetches repositories; by default a :class:`reconciler.source.remote.RemoteRepos` on
            ``cache_dir``.
        used: every remote the render used, in order (filled in by the render).
    """

    allow: list[str] = field(default_factory=list)
    setting: str = DEFAULT_SETTING
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES
    cache_dir: Path | None = None
    fetcher: RepoFetcher | None = None
    used: list[RemoteBase] = field(default_factory=list)

    def repos(self) -> RepoFetcher:
        """The fetcher (made on first use)."""
        if self.fetcher is None:
            from reconciler.paths import default_cache_dir
            from reconciler.source.remote import RemoteRepos

            self.fetcher = RemoteRepos(self.cache_dir or default_cache_dir())
        return self.fetcher

    def record(self, base: RemoteBase) -> None:
        """Add ``base`` to :attr:`used` (once per entry, kustomization and pin)."""
        if base not in self.used:
            self.used.append(base)


def environment_options(
    env: Environment, cache_dir: Path | None = None, *, extra_allow: list[str] | None = None
) -> RemoteOptions:
    """What the environment's renders may fetch (its ``render.remoteBases``); repositories are cached
    under ``<cache_dir>/remote-bases`` (default: the user's cache directory)."""
    policy = env.render.remote_bases
    return RemoteOptions(
        allow=[*policy.allow, *(extra_allow or [])],
        setting=f"render.remoteBases.allow in envs/{env.name}.yaml",
        timeout=policy.timeout,
        max_bytes=policy.max_bytes,
        cache_dir=cache_dir,
    )


@dataclass(frozen=True)
class RemoteOrigin:
    """The remote repository a loader's files come from."""

    spec: RepoSpec
    commit: str
    tree: str  # resolved root of the checked-out tree

    def display(self, path: str) -> str:
        """How a file of this checkout is named in messages: ``<clone URL>//<path>?ref=<ref>``."""
        rel = os.path.relpath(path, self.tree) if path != self.tree else ""
        return self.spec.display(rel.replace(os.sep, "/"))

    def describe(self) -> str:
        """The URL as written, with the commit it resolved to."""
        return f"{self.spec.raw} ({self.commit[:12]})"


def repo_spec(entry: str) -> RepoSpec | None:
    """The entry as a remote Git target, or ``None`` when kustomize would take it for a local path."""
    try:
        return parse_repo_spec(entry)
    except RepoSpecError:
        return None


def wants_remote(entry: str, root: str) -> bool:
    """Whether a ``resources`` entry is remote: an ``http(s)`` URL, or a Git target that is not a local
    file (kustomize tries a local file first)."""
    if is_remote_file(entry):
        return True
    return repo_spec(entry) is not None and not os.path.isfile(os.path.join(root, entry))


def _timeout(opts: RemoteOptions, spec: RepoSpec | None = None) -> float:
    wanted = spec.timeout if spec is not None and spec.timeout is not None else opts.timeout
    return min(wanted, MAX_TIMEOUT)


def check_allowed(opts: RemoteOptions | None, url: str, *, entry: str, where: str, what: str) -> None:
    """Refuse a remote no allow-list pattern matches, naming the kustomization, the entry and the setting.

    Raises:
        RenderError: with ``path=where``.
    """
    allow = opts.allow if opts is not None else []
    if allowed_by(allow, url) is not None:
        return
    target = target_of(url)
    setting = opts.setting if opts is not None else DEFAULT_SETTING
    if target.scheme == "file":
        hint = f"add 'file:///{target.path}' there"
    else:
        hint = f"add '{target}' (only this) or '{target.host}' (anything on that host) there"
    raise RenderError(
        f"remote {what} {entry!r} is not allowed: {target} matches no pattern of {setting}; to allow it, "
        f"{hint}",
        path=where,
    )


def open_base(
    opts: RemoteOptions | None, spec: RepoSpec, *, where: str, chain: list[RemoteOrigin], top: str
) -> tuple[str, RemoteOrigin]:
    """Fetch the repository of a remote base and check it as kustomize's ``newLoaderAtGitClone`` does.

    Args:
        opts: the render's remote options (``None``: nothing is allowed).
        spec: the parsed entry.
        where: the kustomization naming it.
        chain: the remote repositories being built, outermost first.
        top: the outermost kustomization (the start of the chain in cycle messages).

    Returns:
        ``(directory, origin)``: the resolved kustomization directory inside the checkout, and the origin
        its loader carries.

    Raises:
        RenderError: not allowed, a cycle, a failed fetch, or a path that is not a directory of the clone.
    """
    entry = spec.raw
    check_allowed(opts, spec.clone_spec, entry=entry, where=where, what="base")
    assert opts is not None
    for origin in chain:
        if origin.spec.raw.startswith(spec.raw):
            raise RenderError(
                f"cycle detected: URI '{spec.raw}' referenced by previous URI '{origin.spec.raw}' "
                f"({_chain_text(top, chain, spec.raw)})",
                path=where,
            )
    tree = _fetch(opts, spec, where=where)
    root = os.path.realpath(tree.root)
    origin = RemoteOrigin(spec, tree.commit, root)
    for seen in chain:
        if (seen.spec.clone_spec, seen.commit, seen.spec.kust_root_path.strip("/")) == (
            spec.clone_spec,
            tree.commit,
            spec.kust_root_path.strip("/"),
        ):
            raise RenderError(
                f"cycle detected: remote base '{spec.raw}' is '{seen.spec.raw}' again (commit "
                f"{tree.commit[:12]}): {_chain_text(top, chain, spec.raw)}",
                path=where,
            )
    directory = os.path.realpath(os.path.join(root, spec.kust_root_path))
    shown = origin.display(os.path.join(root, spec.kust_root_path))
    if not os.path.exists(directory):
        raise RenderError(f"remote base {entry!r}: '{shown}' does not exist", path=where)
    if not (directory == root or directory.startswith(root + os.sep)):
        raise RenderError(
            f"remote base {entry!r}: {shown!r} refers to directory outside of repo {spec.clone_spec!r}",
            path=where,
        )
    if not os.path.isdir(directory):
        raise RenderError(
            f"remote base {entry!r}: '{shown}' refers to file '{os.path.basename(directory)}'; expecting "
            "directory",
            path=where,
        )
    opts.record(
        RemoteBase(url=entry, kustomization=where, repo=spec.clone_spec, ref=spec.ref, commit=tree.commit)
    )
    return directory, origin


def _chain_text(top: str, chain: list[RemoteOrigin], last: str) -> str:
    return " -> ".join([top, *(o.spec.raw for o in chain), last])


def _fetch(opts: RemoteOptions, spec: RepoSpec, *, where: str) -> FetchedTreeLike:
    from reconciler.errors import SourceError
    from reconciler.source.remote import RemoteTooLarge

    def check_url(url: str) -> None:
        check_allowed(opts, url, entry=f"{spec.raw} (submodule {url})", where=where, what="submodule")

    try:
        return opts.repos().fetch(
            spec.clone_spec,
            spec.ref,
            timeout=_timeout(opts, spec),
            max_bytes=opts.max_bytes,
            submodules=spec.submodules,
            check_url=check_url,
        )
    except RemoteTooLarge as exc:
        raise RenderError(
            f"remote base {spec.raw!r}: {exc} (the size cap, render.remoteBases.maxBytes, is "
            f"{opts.max_bytes} bytes)",
            path=where,
        ) from None
    except SourceError as exc:
        raise RenderError(f"remote base {spec.raw!r}: {exc}", path=where) from None


# -- files over HTTP ----------------------------------------------------------------------------------


class _HttpFailure(Exception):
    def __init__(self, message: str, *, status: bool) -> None:
        super().__init__(message)
        self.status = status  # an unsuccessful status (kustomize's ErrHTTP), not a transport failure


def http_get(opts: RemoteOptions | None, url: str, *, entry: str, where: str, max_bytes: int) -> bytes:
    """GET ``url`` (kustomize's ``httpClientGetContent``), following redirects that the allow-list allows.

    Raises:
        RenderError: not allowed (the URL or a redirect), or a body over ``max_bytes``.
        _HttpFailure: an unsuccessful status or a transport failure.
    """
    check_allowed(opts, url, entry=entry, where=where, what="file")
    assert opts is not None
    timeout = _timeout(opts)

    class Redirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(
            self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
        ) -> urllib.request.Request | None:
            check_allowed(opts, newurl, entry=f"{entry} (redirected to {newurl})", where=where, what="file")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(Redirects())
    deadline = time.monotonic() + timeout
    try:
        with opener.open(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    raise _HttpFailure(f"Get {url!r}: timed out after {timeout:g} s", status=False)
                chunk = resp.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise RenderError(
                        f"remote file {entry!r} is over the {max_bytes}-byte limit for one file", path=where
                    )
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as exc:
        try:
            text = http.HTTPStatus(exc.code).phrase
        except ValueError:
            text = ""
        raise _HttpFailure(f"HTTP Error: status code {exc.code} ({text})", status=True) from None
    except urllib.error.URLError as exc:
        raise _HttpFailure(f"Get {url!r}: {exc.reason}", status=False) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise _HttpFailure(f"Get {url!r}: {exc}", status=False) from None


def resource_file(opts: RemoteOptions | None, entry: str, *, where: str, max_bytes: int) -> bytes | None:
    """The body of a ``resources`` entry that is an ``http(s)`` URL, or ``None`` when the entry is to be
    built as a Git repository instead (it is not an HTTP URL, or the GET failed and it is Git-like).

    Raises:
        RenderError: not allowed, or the GET failed and the URL is no Git repository.
    """
    if not is_remote_file(entry):
        return None
    spec = repo_spec(entry)
    if spec is not None:  # a Git-like URL: the repository must be allowed (checked before any request)
        check_allowed(opts, spec.clone_spec, entry=entry, where=where, what="base")
    try:
        return http_get(opts, entry, entry=entry, where=where, max_bytes=max_bytes)
    except _HttpFailure as exc:
        if repo_spec(entry) is not None:
            return None
        raise RenderError(f"accumulating resources from '{entry}': {exc}", path=where) from None


def read_file(opts: RemoteOptions | None, url: str, *, where: str, max_bytes: int) -> bytes:
    """A file a kustomization names by ``http(s)`` URL (a patch, a generator's file …), recorded.

    Raises:
        RenderError: not allowed, or the GET failed (kustomize's ``URL is a git repository`` when the URL is
            Git-like).
    """
    try:
        data = http_get(opts, url, entry=url, where=where, max_bytes=max_bytes)
    except _HttpFailure as exc:
        reason = "URL is a git repository" if exc.status and repo_spec(url) is not None else str(exc)
        raise RenderError(f"remote file {url!r}: {reason}", path=where) from None
    record_file(opts, url, where=where, data=data)
    return data


def record_file(opts: RemoteOptions | None, url: str, *, where: str, data: bytes) -> None:
    """Record a file used from ``url`` with its SHA-256."""
    if opts is not None:
        opts.record(RemoteBase(url=url, kustomization=where, sha256=hashlib.sha256(data).hexdigest()))


__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_SETTING",
    "MAX_TIMEOUT",
    "RemoteOptions",
    "RemoteOrigin",
    "RepoFetcher",
    "RepoSpec",
    "check_allowed",
    "environment_options",
    "is_remote_file",
    "open_base",
    "read_file",
    "record_file",
    "repo_spec",
    "resource_file",
    "wants_remote",
]
