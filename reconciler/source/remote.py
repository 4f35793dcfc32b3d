"""Remote bases' repositories: shallow fetches into a cache keyed by clone URL and resolved commit.

What a fetch does follows kustomize's cloner (kustomize api v0.21.1 ``api/internal/git/cloner.go``:
``git init``, ``git remote add origin <url>``, ``git fetch --depth=1 <url> <ref>``, ``git checkout
FETCH_HEAD``, ``git submodule update --init --recursive``), with these differences:

* The ref is first resolved to a commit with ``git ls-remote`` (choosing among matching refs as ``git
  fetch`` does: the name itself, then ``refs/``, ``refs/tags/``, ``refs/heads/``, ``refs/remotes/``; an
  annotated tag gives the commit it points at). A ref that is a full commit id is used as it is, so a
  cached commit needs no network at all. The tree is cached under ``<cache>/remote-bases/<url hash>/<commit>``
  and reused by every later render, in this process or another (a ``flock`` per URL, the
  :class:`~reconciler.source.gitops._PathLock` the other clones use, serialises the fetches).
* A fetch (``ls-remote``, ``fetch``, ``checkout``, submodules: every Git command of it together) has a
  timeout in seconds; the command running when it expires is killed with its process group. The
  directory it writes is measured while it runs and the command killed when it grows past twice the size
  cap. Before the checkout, ``git ls-tree`` sizes (:func:`reconciler.source.git.check_tree_sizes`)
  refuse a tree over the cap; after it (submodules included) the checked-out files are measured again.
  A failed fetch leaves nothing behind.
* Submodules are fetched one level at a time (``--depth 1``), each URL first checked by the caller's
  ``check_url`` (the allow-list); relative URLs resolve against the repository's URL as Git resolves them.
* ``.git`` is deleted from the cached tree: a render reads files only.
* Git never prompts (``GIT_TERMINAL_PROMPT=0``; ``ssh -o BatchMode=yes`` unless ``GIT_SSH_COMMAND`` is set).
  The user's Git configuration applies as it does for kustomize (``url.<base>.insteadOf``, credentials).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import git

from reconciler.errors import SourceError
from reconciler.source.git import check_tree_sizes
from reconciler.source.gitops import NETWORK_TIMEOUT, _PathLock, configure_clone, remove_leftover_clones

log = logging.getLogger("reconciler.git")

_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
#: Slack over twice the size cap that a command's directory may reach before it is killed (Git's own files).
_SLACK_BYTES = 8 << 20
#: How long a cached tree stays before it may be removed (while other entries of the URL are newer).
_KEEP_SECONDS = 3600.0


class RemoteFetchError(SourceError):
    """A remote repository could not be fetched (unreachable, unknown ref, timeout, too large)."""

    retryable = False


class RemoteTooLarge(RemoteFetchError):
    """The remote repository's tree is over the size cap."""


class _Budget:
    """The time left of one fetch's timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


@dataclass(frozen=True)
class FetchedTree:
    """A checked-out commit of a remote repository (read-only by convention)."""

    root: Path
    commit: str
    url: str


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _git_env() -> dict[str, str]:
    env = {"GIT_TERMINAL_PROMPT": "0"}
    if not os.environ.get("GIT_SSH_COMMAND") and not os.environ.get("GIT_SSH"):
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env


def _dir_bytes(path: Path, *, skip_git: bool = False) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        if skip_git:
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            if skip_git and name == ".git":
                continue
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (fatal or lines or [""])[-1]


def resolve_relative_url(base: str, rel: str) -> str:
    """A submodule URL as Git resolves it against the superproject's ``origin`` URL: each ``../`` drops
    one path component of ``base`` (``./`` none); an absolute URL is returned unchanged."""
    if not rel.startswith(("./", "../")):
        return rel
    url = base.rstrip("/")
    while True:
        if rel.startswith("./"):
            rel = rel[2:]
        elif rel.startswith("../"):
            rel = rel[3:]
            cut = max(url.rfind("/"), url.rfind(":"))
            url = url[:cut] if cut > 0 else url
        else:
            break
    sep = ":" if (re.match(r"^[^/:]+@[^/:]+$", url) or re.match(r"^[^/:]+@[^/:]+:$", url)) else "/"
    return f"{url.rstrip(':')}{sep}{rel}" if sep == ":" else f"{url}/{rel}"


class RemoteRepos:
    """The cache of remote bases' repositories under ``<cache_dir>/remote-bases``.

    Args:
        cache_dir: the reconciler's cache directory (the daemon's, or the CLI's default).
        keep: how many commits of one URL to keep (older ones go once they are an hour old).
    """

    def __init__(self, cache_dir: Path, *, keep: int = 16) -> None:
        self.root = cache_dir / "remote-bases"
        self.keep = keep

    # -- resolution -------------------------------------------------------------------------------

    def resolve(
        self, url: str, ref: str, *, timeout: float = 27.0, budget: _Budget | None = None
    ) -> tuple[str, str]:
        """The commit ``ref`` names in the repository at ``url``, and what to fetch to get it.

        Returns:
            ``(commit, fetch_ref)``: for a full commit id both are that id (no network); otherwise the
            full ref name chosen as ``git fetch`` chooses it.

        Raises:
            RemoteFetchError: the remote cannot be reached, the command timed out, or no ref matches.
        """
        if _FULL_SHA.match(ref.lower()):
            return ref.lower(), ref.lower()
        want = ref or "HEAD"
        out = self._git(
            None,
            ["ls-remote", "--", url, want, want + "^{}"],  # the second pattern lists annotated tags' commits
            budget=budget or _Budget(timeout),
            what=f"git ls-remote {url} {want}",
        )
        refs: dict[str, str] = {}
        peeled: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if not name:
                continue
            if name.endswith("^{}"):
                peeled[name[:-3]] = sha
            else:
                refs[name] = sha
        rules = [want, f"refs/{want}", f"refs/tags/{want}", f"refs/heads/{want}", f"refs/remotes/{want}"]
        rules.append(f"refs/remotes/{want}/HEAD")
        for rule in rules:
            if rule in refs:
                return peeled.get(rule, refs[rule]), rule
        raise RemoteFetchError(f"{url}: couldn't find remote ref {want!r}")

    # -- fetching ---------------------------------------------------------------------------------

    def fetch(
        self,
        url: str,
        ref: str,
        *,
        timeout: float,
        max_bytes: int,
        submodules: bool = True,
        check_url: Callable[[str], None] | None = None,
    ) -> FetchedTree:
        """The checked-out tree of ``ref`` in the repository at ``url`` (fetched once per commit).

        Args:
            url: the clone URL (kustomize's ``CloneSpec``).
            ref: a branch, tag, full ref name or full commit id; '' for the remote's ``HEAD``.
            timeout: seconds the whole fetch may take (capped at ``NETWORK_TIMEOUT``).
            max_bytes: the largest checked-out tree, submodules included.
            submodules: fetch the tree's submodules too.
            check_url: called with each submodule's URL before it is fetched; raises to refuse it.

        Raises:
            RemoteFetchError: unreachable remote, unknown ref, timeout, a tree over ``max_bytes``
                (:class:`RemoteTooLarge`), or a refused submodule; nothing is left in the cache.
        """
        budget = _Budget(min(timeout, NETWORK_TIMEOUT))
        commit, fetch_ref = self.resolve(url, ref, budget=budget)
        base = self.root / _url_key(url)
        found = self._cached(base, commit)
        if found is not None:
            return FetchedTree(found, commit, url)
        lock = _PathLock.for_path(base.with_name(base.name + ".lock"))
        with lock.hold():
            found = self._cached(base, commit)
            if found is not None:
                return FetchedTree(found, commit, url)
            base.mkdir(parents=True, exist_ok=True)
            tree = self._fetch_locked(base, url, commit, fetch_ref, budget, max_bytes, submodules, check_url)
            self._gc(base, keep=tree.name)
        return FetchedTree(tree, tree.name, url)

    @staticmethod
    def _cached(base: Path, commit: str) -> Path | None:
        tree = base / commit
        if (tree / ".complete").is_file():
            with contextlib.suppress(OSError):
                os.utime(tree)
            return tree
        return None

    def _fetch_locked(
        self,
        base: Path,
        url: str,
        commit: str,
        fetch_ref: str,
        budget: _Budget,
        max_bytes: int,
        submodules: bool,
        check_url: Callable[[str], None] | None,
    ) -> Path:
        remove_leftover_clones(base / commit)
        tmp = base / f"{commit}.tmp{time.monotonic_ns()}"
        try:
            repo = git.Repo.init(tmp)
            try:
                configure_clone(repo)
                repo.git.remote("add", "origin", url)
            finally:
                repo.close()
            limit = 2 * max_bytes + _SLACK_BYTES
            self._git(
                tmp,
                ["fetch", "--depth=1", "--no-tags", url, fetch_ref],
                budget=budget,
                what=f"git fetch --depth=1 {url} {fetch_ref}",
                watch=(tmp, limit),
            )
            got = self._git(tmp, ["rev-parse", "FETCH_HEAD^{commit}"], budget=budget, what="git rev-parse")
            got = got.strip()
            if got != commit and _FULL_SHA.match(fetch_ref):
                raise RemoteFetchError(f"{url}: fetched {got} for commit {commit}")
            if got != commit:  # the ref moved between ls-remote and fetch: what was fetched counts
                log.info("%s: %s moved from %s to %s while fetching", url, fetch_ref, commit[:7], got[:7])
                commit = got
                cached = self._cached(base, commit)
                if cached is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return cached
            with git.Repo(tmp) as r:
                gitlinks = check_tree_sizes(
                    r, commit, max_blob=max_bytes, max_total=max_bytes, what=f"{url} at {commit}"
                )
            self._git(
                tmp,
                ["-c", "advice.detachedHead=false", "checkout", "--quiet", "FETCH_HEAD"],
                budget=budget,
                what="git checkout FETCH_HEAD",
                watch=(tmp, limit),
            )
            if submodules and gitlinks:
                self._submodules(tmp, url, budget, limit, check_url, depth=0)
            size = _dir_bytes(tmp, skip_git=True)
            if size > max_bytes:
                raise RemoteTooLarge(
                    f"{url} at {commit}: the checked-out files total {size} bytes, "
                    f"over the {max_bytes}-byte limit"
                )
            for root, dirs, files in os.walk(tmp, topdown=True):
                for d in [d for d in dirs if d == ".git"]:
                    shutil.rmtree(os.path.join(root, d), ignore_errors=True)
                    dirs.remove(d)
                if ".git" in files:
                    os.unlink(os.path.join(root, ".git"))
            (tmp / ".complete").write_text(f"{url} {commit}\n")
            tree = base / commit
            if tree.exists():
                shutil.rmtree(tree, ignore_errors=True)
            tmp.replace(tree)
            return tree
        except SourceError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, RemoteFetchError):
                raise
            message = str(exc)
            if "-byte limit" in message:
                raise RemoteTooLarge(message) from None
            raise RemoteFetchError(message) from None
        except (git.exc.GitError, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RemoteFetchError(f"{url}: {exc}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _submodules(
        self,
        work: Path,
        url: str,
        budget: _Budget,
        limit: int,
        check_url: Callable[[str], None] | None,
        *,
        depth: int,
    ) -> None:
        """Fetch the submodules of the checkout ``work`` (whose ``origin`` is ``url``), level by level."""
        if depth > 10:
            raise RemoteFetchError(f"{url}: submodules nested deeper than 10 levels")
        if not (work / ".gitmodules").is_file():
            return
        listing = self._git(
            work,
            ["config", "-f", ".gitmodules", "--get-regexp", r"^submodule\..*\.(url|path)$"],
            budget=budget,
            what="git config -f .gitmodules",
            ok_codes=(0, 1),
        )
        names: dict[str, dict[str, str]] = {}
        for line in listing.splitlines():
            key, _, value = line.partition(" ")
            name, _, field = key.removeprefix("submodule.").rpartition(".")
            names.setdefault(name, {})[field] = value
        for info in names.values():
            sub_url = resolve_relative_url(url, info.get("url", ""))
            if check_url is not None and sub_url:
                check_url(sub_url)
        self._git(
            work,
            ["-c", "advice.detachedHead=false", "submodule", "update", "--init", "--depth", "1"],
            budget=budget,
            what=f"git submodule update --init ({url})",
            watch=(work, limit),
        )
        for info in names.values():
            path = info.get("path", "")
            sub = work / path
            if path and (sub / ".gitmodules").is_file():
                sub_url = resolve_relative_url(url, info.get("url", ""))
                self._submodules(sub, sub_url, budget, limit, check_url, depth=depth + 1)

    # -- running Git ------------------------------------------------------------------------------

    def _git(
        self,
        cwd: Path | None,
        args: list[str],
        *,
        budget: _Budget,
        what: str,
        watch: tuple[Path, int] | None = None,
        ok_codes: tuple[int, ...] = (0,),
    ) -> str:
        """Run Git within what is left of ``budget`` (and, with ``watch``, a bound on the bytes under a
        directory); the command and its children are killed when either is passed.

        Raises:
            RemoteFetchError: non-zero exit (Git's last ``fatal:`` line), timeout, or size exceeded.
        """
        runner = git.Git(str(cwd) if cwd is not None else "/")
        runner.update_environment(**_git_env())
        handle = runner.execute(
            ["git", *args],
            as_process=True,
            start_new_session=True,
        )
        proc = handle.proc
        assert proc is not None
        chunks: dict[str, bytes] = {}

        def drain(name: str, stream: object) -> None:
            read = getattr(stream, "read", None)
            chunks[name] = read() if read is not None else b""

        readers = [
            threading.Thread(target=drain, args=(name, stream), daemon=True)
            for name, stream in (("out", proc.stdout), ("err", proc.stderr))
        ]
        for t in readers:
            t.start()
        deadline = time.monotonic() + budget.left()
        problem = ""
        while True:
            remaining = deadline - time.monotonic()
            try:  # returns as soon as the command ends; wakes up every 0.2 s to measure
                proc.wait(timeout=max(0.0, min(remaining, 0.2) if watch is not None else remaining))
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() >= deadline:
                problem = f"{what}: timed out (the fetch's timeout is {budget.seconds:g} s)"
            elif watch is not None and _dir_bytes(watch[0]) > watch[1]:
                problem = f"{what}: the download passed {watch[1]} bytes (size limit); stopped"
            if problem:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
        for t in readers:
            t.join(timeout=5)
        if problem:
            raise (RemoteTooLarge if "size limit" in problem else RemoteFetchError)(problem)
        code = proc.returncode
        out = chunks.get("out", b"").decode("utf-8", "replace")
        err = chunks.get("err", b"").decode("utf-8", "replace")
        if code not in ok_codes:
            raise RemoteFetchError(f"{what}: {_last_line(err) or f'exit status {code}'}")
        return out

    # -- housekeeping -----------------------------------------------------------------------------

    def _gc(self, base: Path, *, keep: str) -> None:
        """Remove what killed fetches left, and the URL's oldest trees beyond :attr:`keep` that were not
        used for an hour (hold the lock)."""
        for leftover in base.glob("*.tmp*"):  # the lock is held: no live fetch owns these
            shutil.rmtree(leftover, ignore_errors=True)
        entries = sorted(
            (d for d in base.iterdir() if d.is_dir() and ".tmp" not in d.name and d.name != keep),
            key=lambda d: d.stat().st_mtime,
        )
        excess = len(entries) + 1 - self.keep
        cutoff = time.time() - _KEEP_SECONDS
        for d in entries[: max(0, excess)]:
            if d.stat().st_mtime > cutoff:
                continue
            doomed = d.with_name(d.name + ".tmp-gc")
            try:
                d.replace(doomed)
            except OSError:
                continue
            shutil.rmtree(doomed, ignore_errors=True)


__all__ = ["FetchedTree", "RemoteFetchError", "RemoteRepos", "RemoteTooLarge", "resolve_relative_url"]
