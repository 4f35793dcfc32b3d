"""Commits the daemon makes: a private working clone of the environment repository (under ``cache_dir``).

:class:`GitWriter` is the only place that writes to the environment repository: it commits with
trailers, pushes (rebasing and retrying when another writer got there first, falling back to a branch
when the target branch is protected), makes ``git revert`` commits, and keeps Git notes under
``refs/notes/reconciler``. Every Git call goes through GitPython's command wrapper.

Formats followed:
  * trailers: ``git interpret-trailers`` (the last paragraph of the message, ``Key: value`` lines,
    keys of letters, digits and ``-``); read back with ``git log --format=%(trailers:only,unfold)``.
  * revert messages: the same text ``git revert`` writes (``Revert "<subject>"`` and
    ``This reverts commit <sha>.``), so other Git tools recognise them.
  * push results: ``git push --porcelain`` (``<flag>\\t<from>:<to>\\t<summary> (<reason>)``).

Crash recovery: a process killed (SIGKILL) in the middle of a Git command can leave stale ``*.lock`` files,
a stopped rebase, revert, cherry-pick or merge, unpushed commits, or a damaged clone. Every write starts
from :meth:`GitWriter.sync`, which removes stale locks (safe: the clone's ``flock`` is held, so no live
process owns them), aborts a stopped operation, hard-resets to the remote branch (dropping unpushed
commits), and when the clone itself is damaged (a local fault, never a failure to reach the remote)
clones it again once. :class:`reconciler.source.git.GitSource` uses the same helpers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import shutil
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import git
from pydantic import BaseModel, Field
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from reconciler.errors import SourceError
from reconciler.failpoints import failpoint
from reconciler.model import sensitive

log = logging.getLogger("reconciler.git")

#: Seconds a fetch or push may take before it is killed: a remote that stops answering without closing
#: the connection must not hold a pass (or a daemon's shutdown) forever.
NETWORK_TIMEOUT = 300.0

NOTES_REF = "refs/notes/reconciler"
_TRAILER_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_REF_RACE = ("failed to update ref", "cannot lock ref", "incorrect old value", "failed to lock")
_REVERTS_RE = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
_FIELD = "\x1f"
_RECORD = "\x1e"
_LOG_FORMAT = _FIELD.join(
    ["%H", "%P", "%an", "%ae", "%at", "%cn", "%ce", "%ct", "%B", "%(trailers:only,unfold)"]
)
#: What a stopped rebase / am / cherry-pick / revert / merge keeps in the Git directory.
_OPERATION_STATE = (
    "rebase-merge",
    "rebase-apply",
    "sequencer",
    "CHERRY_PICK_HEAD",
    "REVERT_HEAD",
    "MERGE_HEAD",
    "MERGE_MODE",
    "MERGE_MSG",
    "AUTO_MERGE",
)


class PushResult(BaseModel):
    """Where a push went.

    ``fallback`` is true when the target branch refused the push (protected) and the commit was pushed
    to ``pushed_to`` = ``reconciler/<branch>/<short-sha>`` instead; ``reason`` is the remote's message.
    """

    pushed_to: str
    fallback: bool = False
    sha: str
    attempts: int = 1
    reason: str = ""


class CommitInfo(BaseModel):
    """One commit as :meth:`GitWriter.log` reads it; times are UNIX seconds."""

    sha: str
    parents: list[str] = Field(default_factory=list)
    author_name: str
    author_email: str
    authored_at: float
    committer_name: str
    committer_email: str
    committed_at: float
    subject: str
    body: str = Field(description="the full message")
    trailers: dict[str, list[str]] = Field(default_factory=dict, description="key → values, in order")

    @property
    def short(self) -> str:
        """The first 7 characters of the commit id."""
        return self.sha[:7]

    @property
    def is_merge(self) -> bool:
        """Whether the commit has more than one parent."""
        return len(self.parents) > 1

    def trailer(self, key: str) -> list[str]:
        """Every value of trailer ``key`` (case-insensitive), in message order; ``[]`` when absent."""
        want = key.lower()
        out: list[str] = []
        for k, values in self.trailers.items():
            if k.lower() == want:
                out.extend(values)
        return out

    def first(self, key: str) -> str | None:
        """The first value of trailer ``key`` (case-insensitive), or ``None``."""
        values = self.trailer(key)
        return values[0] if values else None

    @property
    def reverts(self) -> str | None:
        """The commit this one reverts: its ``Rollback-Of`` trailer, else the ``This reverts commit``
        line ``git revert`` writes; ``None`` for an ordinary commit."""
        of = self.first("Rollback-Of")
        if of:
            return of
        m = _REVERTS_RE.search(self.body)
        return m.group(1) if m else None


class NothingToRevert(SourceError):
    """``git revert`` produced no change (the commit's change is already undone)."""

    retryable = False


class RevertConflict(SourceError):
    """``git revert`` stopped on a conflict; nothing was committed."""

    retryable = False


class _NonFastForward(Exception):
    pass


def format_trailers(trailers: dict[str, str | list[str]] | None) -> str:
    """``Key: value`` lines (one per value) for a commit message's trailer paragraph.

    Raises:
        ValueError: a key that is not letters, digits and ``-``, or a value with a line break.
    """
    lines: list[str] = []
    for key, value in (trailers or {}).items():
        if not _TRAILER_KEY_RE.match(key):
            raise ValueError(f"trailer key {key!r} must be letters, digits and '-'")
        for v in [value] if isinstance(value, str) else value:
            if "\n" in v or "\r" in v:
                raise ValueError(f"trailer {key} value {v!r} must be one line")
            lines.append(f"{key}: {v.strip()}")
    return "\n".join(lines)


def compose_message(message: str, trailers: dict[str, str | list[str]] | None) -> str:
    """The commit message: ``message`` then a blank line and the trailer paragraph (when any)."""
    text = message.strip()
    if not text:
        raise ValueError("a commit message must not be empty")
    block = format_trailers(trailers)
    return f"{text}\n\n{block}\n" if block else f"{text}\n"


def parse_trailer_lines(text: str) -> dict[str, list[str]]:
    """Parse ``Key: value`` lines (as ``%(trailers:only,unfold)`` prints them) into key → values."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep or not _TRAILER_KEY_RE.match(key.strip()):
            continue
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def remove_stale_locks(gitdir: Path) -> list[Path]:
    """Delete the lock files a killed Git command left in the Git directory ``gitdir``, each with a warning.

    Removes every ``*.lock`` file (``index.lock``, ``HEAD.lock``, ``config.lock``, ``packed-refs.lock``,
    ``shallow.lock``, ``refs/**/<name>.lock`` …; no ref name may end in ``.lock``, so no ref is touched)
    and the temporary pack files (``objects/pack/tmp_*``) of an interrupted fetch. Call it only while
    holding the clone's :class:`_PathLock`: every process that runs Git in these clones holds that lock
    for the whole command (and auto-gc runs in the foreground, see :func:`configure_clone`), so any lock
    file found then belongs to a process that is gone.

    Args:
        gitdir: the ``.git`` directory of a working clone, or a bare repository.

    Returns:
        the paths removed (empty when there were none or ``gitdir`` does not exist).
    """
    removed: list[Path] = []
    objects = gitdir / "objects"
    for root, dirs, files in os.walk(gitdir):
        here = Path(root)
        if here == objects:
            dirs[:] = [d for d in dirs if d in ("info", "pack")]  # skip the loose-object fan-out
        for name in files:
            if name.endswith(".lock") or (here == objects / "pack" and name.startswith("tmp_")):
                path = here / name
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                log.warning("removed %s, left by a Git command that was killed", path)
                removed.append(path)
    return removed


def clone_problem(gitdir: Path, *, worktree: Path | None = None, thorough: bool = False) -> str | None:
    """Why the clone with Git directory ``gitdir`` cannot be used, judged locally; ``None`` when it is sound.

    The remote is never contacted, so a network failure can never make a clone look damaged. The quick
    check opens the repository with Git (``HEAD``, ``config`` and the object store readable) and, for a
    working clone, wants its ``origin`` remote. ``thorough`` also runs ``git fsck --connectivity-only``,
    which reads every commit and tree reachable from the refs (and the index of ``worktree``) and fails on
    a missing or corrupt object or a broken index; use it after an operation failed.

    Args:
        gitdir: the ``.git`` directory of a working clone, or a bare repository.
        worktree: the working tree of a working clone (``None`` for a bare repository).
        thorough: run the ``fsck`` check too (reads the whole history: seconds on a large repository).

    Returns:
        a one-line description of the first problem found, or ``None``.
    """
    if not (gitdir / "HEAD").is_file():
        return f"{gitdir / 'HEAD'} is missing"
    base = ["git", f"--git-dir={gitdir}"] + ([f"--work-tree={worktree}"] if worktree is not None else [])
    probes = [["rev-parse", "--git-dir"]]
    if worktree is not None:
        probes.append(["config", "--get", "remote.origin.url"])
    if thorough:
        probes.append(["fsck", "--connectivity-only", "--no-dangling", "--no-progress"])
    runner = git.Git(str(gitdir))
    for probe in probes:
        try:
            status, out, err = runner.execute(
                [*base, *probe], with_extended_output=True, with_exceptions=False
            )
        except (git.exc.GitError, OSError) as exc:
            return f"git {probe[0]}: {exc}"
        if int(status) != 0:
            lines = (str(err).strip() or str(out).strip() or f"exit status {status}").splitlines()
            return f"git {' '.join(probe)}: {lines[0]}"
    return None


def open_clone(gitdir: Path) -> git.Repo:
    """Open the clone whose Git directory is ``gitdir`` (a bare repository or a working clone's ``.git``)
    with GitPython, configured by :func:`configure_clone`.

    Git is kept from walking up into an enclosing repository (``GIT_CEILING_DIRECTORIES``), and the
    repository Git finds from GitPython's working directory must be ``gitdir`` itself: a bare clone whose
    ``config`` was lost looks like a working tree to GitPython, and would fail every command.

    Raises:
        git.exc.GitError, OSError, ValueError: the clone cannot be opened or is not where it should be.
    """
    repo = git.Repo(gitdir.parent if gitdir.name == ".git" else gitdir)
    try:
        repo.git.update_environment(
            GIT_CEILING_DIRECTORIES=str(Path(repo.git.working_dir or gitdir).resolve().parent)
        )
        found = str(repo.git.rev_parse("--absolute-git-dir"))
        if Path(found).resolve() != gitdir.resolve():
            raise ValueError(f"Git finds the repository {found}, not {gitdir}")
        configure_clone(repo)
    except BaseException:
        repo.close()
        raise
    return repo


def configure_clone(repo: git.Repo) -> None:
    """Settings every private clone gets: automatic ``gc``/``maintenance`` run in the foreground.

    By default Git detaches automatic garbage collection into a background process of its own session,
    which would outlive a killed daemon and hold ``packed-refs.lock`` and ref locks outside our
    ``flock``; in the foreground it runs inside the Git command, under the lock.
    """
    with repo.config_writer() as cw:
        cw.set_value("gc", "autoDetach", "false")
        cw.set_value("maintenance", "autoDetach", "false")


def remove_leftover_clones(dest: Path) -> None:
    """Delete ``<dest>.tmp*`` and ``<dest>.broken*``: clones a killed process left half-made or
    half-deleted next to ``dest`` (call while holding the clone's lock)."""
    for pattern in (f"{dest.name}.tmp*", f"{dest.name}.broken*"):
        for leftover in dest.parent.glob(pattern):
            log.warning("removing %s, left by a clone that was interrupted", leftover)
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def open_or_clone(url: str, dest: Path, *, bare: bool, opener: Callable[[], git.Repo]) -> git.Repo:
    """Open the clone at ``dest`` with ``opener``, or clone ``url`` there (:func:`clone_and_open`) when
    there is none or :func:`clone_problem` finds it damaged. Half-made clones beside it and stale lock
    files in it are removed first. Call it holding the clone's :class:`_PathLock`.

    Args:
        url: the remote.
        dest: the clone: a bare repository when ``bare``, else a working tree with ``.git``.
        bare: which kind of clone.
        opener: opens (and configures) the clone at ``dest``.

    Raises:
        SourceError: the remote cannot be cloned, or the new clone cannot be opened.
    """
    gitdir = dest if bare else dest / ".git"
    remove_leftover_clones(dest)
    if dest.exists() or dest.is_symlink():
        problem = clone_problem(gitdir, worktree=None if bare else dest)
        if problem is None:
            remove_stale_locks(gitdir)
            try:
                return opener()
            except (git.exc.GitError, OSError, ValueError) as exc:  # e.g. a config GitPython refuses
                problem = f"cannot open it: {exc}"
        log.warning("the clone %s is damaged (%s); cloning %s again", dest, problem, url)
    return clone_and_open(url, dest, bare=bare, opener=opener)


def clone_and_open(url: str, dest: Path, *, bare: bool, opener: Callable[[], git.Repo]) -> git.Repo:
    """:func:`fresh_clone`, then ``opener``.

    Raises:
        SourceError: the remote cannot be cloned, or the new clone cannot be opened.
    """
    fresh_clone(url, dest, bare=bare)
    try:
        return opener()
    except (git.exc.GitError, OSError, ValueError) as exc:
        raise SourceError(f"git clone {url}: the new clone cannot be opened: {exc}") from None


def fresh_clone(url: str, dest: Path, *, bare: bool) -> None:
    """Clone ``url`` into a temporary sibling of ``dest`` (``bare`` or with a work tree, nothing checked
    out), then :func:`install_clone` it at ``dest``: a damaged clone there is replaced only once the new
    one is complete.

    Raises:
        SourceError: the remote cannot be cloned or the cache directory cannot be written.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SourceError(f"cache directory {dest.parent}: {exc.strerror or exc}") from None
    tmp = dest.with_name(dest.name + f".tmp{time.monotonic_ns()}")
    try:
        git.Repo.clone_from(url, tmp, bare=bare, no_checkout=True).close()
        install_clone(tmp, dest)
    except git.exc.GitCommandError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SourceError(f"git clone {url}: {_stderr(exc)}") from None
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SourceError(f"cache directory {dest.parent}: {exc.strerror or exc}") from None


def install_clone(fresh: Path, dest: Path) -> None:
    """Rename the complete new clone ``fresh`` to ``dest``; whatever was at ``dest`` (a damaged clone) is
    first renamed aside to ``<dest>.broken<n>`` and deleted afterwards.

    Raises:
        OSError: a rename failed.
    """
    if dest.exists() or dest.is_symlink():
        broken = dest.with_name(f"{dest.name}.broken{time.monotonic_ns()}")
        dest.replace(broken)
        fresh.replace(dest)
        if broken.is_dir() and not broken.is_symlink():
            shutil.rmtree(broken, ignore_errors=True)
        else:
            broken.unlink(missing_ok=True)
    else:
        fresh.replace(dest)


class _PathLock:
    """A re-entrant lock per working clone: a thread lock plus ``flock`` on a lock file, so two
    writers in one process or two processes (daemon and CLI) never interleave Git operations."""

    _registry: dict[str, _PathLock] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._file: Any = None

    @classmethod
    def for_path(cls, path: Path) -> _PathLock:
        with cls._registry_lock:
            key = str(path)
            if key not in cls._registry:
                cls._registry[key] = cls(path)
            return cls._registry[key]

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    handle = open(self.path, "a+")  # noqa: SIM115 - kept open while held
                except OSError as exc:
                    raise SourceError(f"cache directory {self.path.parent}: {exc.strerror or exc}") from None
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                self._file = handle
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
                    self._file.close()
                    self._file = None


class GitWriter:
    """A private working clone (under ``cache_dir``) of the environment repository, for commits the
    daemon and the CLI make.

    Call :meth:`sync` before changing files in :attr:`workdir`; then :meth:`commit` and :meth:`push`.
    Hold :meth:`locked` around such a sequence when other threads or processes use the same cache.

    Args:
        url: clone URL or local path of the environment repository (a bare remote or a clone).
        branch: the branch environments follow (``main``).
        cache_dir: where the working clone lives (``<cache_dir>/gitops/<hash of url>``).
        author_name: author and committer name of the commits made here.
        author_email: author and committer email.
        backoff: first wait in seconds between push attempts (doubles, with jitter, up to 10 s).
    """

    def __init__(
        self,
        url: str,
        branch: str,
        cache_dir: Path,
        *,
        author_name: str = "reconciler",
        author_email: str = "reconciler@localhost",
        backoff: float = 0.2,
    ) -> None:
        p = Path(url).expanduser()
        self.url = str(p.resolve()) if p.exists() else url
        self.branch = branch
        self.cache_dir = cache_dir
        self.author_name = author_name
        self.author_email = author_email
        self.backoff = backoff
        name = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self._workdir = cache_dir / "gitops" / name
        self._lock = _PathLock.for_path(cache_dir / "gitops" / f"{name}.lock")
        self._repo: git.Repo | None = None
        # Bumped by everything that may change the clone (commits, resets, pushes, notes, a caller given
        # the working tree); a sync is reused (sync(not_before=...)) only while it stays the same.
        self._generation = 0
        self._synced: tuple[float, int, str] | None = None  # (monotonic start, generation, head)

    # ------------------------------------------------------------------ basics

    @property
    def workdir(self) -> Path:
        """The working tree of the private clone (exists after the first :meth:`sync`). A caller may edit
        it, so the next :meth:`sync` is a real one."""
        self._changed()
        return self._workdir

    def _changed(self) -> None:
        """The clone may differ from what the last sync left (see :meth:`sync`'s ``not_before``)."""
        self._generation += 1

    @contextlib.contextmanager
    def locked(self) -> Iterator[GitWriter]:
        """Hold the clone's lock (re-entrant; also across processes) for a sync-edit-commit-push sequence."""
        with self._lock.hold():
            yield self

    @property
    def repo(self) -> git.Repo:
        """The working clone (cloned on first use).

        Raises:
            SourceError: when the repository cannot be cloned.
        """
        if self._repo is None:
            with self._lock.hold():
                if self._repo is None:
                    self._repo = self._open_or_clone()
        return self._repo

    def _open_or_clone(self) -> git.Repo:
        """Open the clone, or clone when there is none or it is damaged (hold the lock)."""
        return open_or_clone(self.url, self._workdir, bare=False, opener=self._open)

    def _clone(self) -> git.Repo:
        """Clone again, replacing the clone there only once the new one is complete (hold the lock)."""
        return clone_and_open(self.url, self._workdir, bare=False, opener=self._open)

    def _open(self) -> git.Repo:
        repo = open_clone(self._workdir / ".git")
        try:
            self._configure(repo)
        except BaseException:
            repo.close()
            raise
        return repo

    def _reclone(self, problem: str) -> None:
        """Replace the damaged clone with a fresh one (hold the lock).

        Raises:
            SourceError: the remote cannot be cloned (the damaged clone stays until the next attempt).
        """
        self._changed()
        log.warning(
            "the working clone %s is damaged (%s); cloning %s again", self._workdir, problem, self.url
        )
        if self._repo is not None:
            self._repo.close()
            self._repo = None
        self._repo = self._clone()

    def _configure(self, repo: git.Repo) -> None:
        with repo.config_writer() as cw:
            cw.set_value("user", "name", self.author_name)
            cw.set_value("user", "email", self.author_email)
            cw.set_value("commit", "gpgsign", "false")
            cw.set_value("core", "hooksPath", "/dev/null")

    def _wait(self) -> Any:
        """Exponential backoff from ``backoff`` seconds (doubling, at most 10 s) plus up to ``backoff`` of
        random jitter."""
        return wait_exponential(multiplier=self.backoff, max=10.0) + wait_random(0, self.backoff)

    def _git(self, *args: str, **kwargs: Any) -> str:
        try:
            return str(self.repo.git.execute(["git", *args], **kwargs))
        except git.exc.GitCommandError as exc:
            raise SourceError(f"git {' '.join(args)}: {_stderr(exc)}") from None

    def _git_status(self, *args: str, **kwargs: Any) -> tuple[int, str, str]:
        status, out, err = self.repo.git.execute(
            ["git", *args], with_extended_output=True, with_exceptions=False, **kwargs
        )
        return int(status), str(out), str(err)

    def _abort_in_progress(self) -> None:
        """Abort a rebase, ``am``, cherry-pick, revert or merge a killed process left stopped halfway; state
        Git cannot abort (half-written by the kill) is deleted, with a warning. The caller resets next."""
        gitdir = self._workdir / ".git"
        if (gitdir / "rebase-apply" / "applying").exists():
            self._git_status("am", "--abort")
        if (gitdir / "rebase-merge").exists() or (gitdir / "rebase-apply").exists():
            self._git_status("rebase", "--abort")
        if (gitdir / "CHERRY_PICK_HEAD").exists():
            self._git_status("cherry-pick", "--abort")
        if (gitdir / "REVERT_HEAD").exists() or (gitdir / "sequencer").exists():
            self._git_status("revert", "--abort")
        if (gitdir / "MERGE_HEAD").exists():
            self._git_status("merge", "--abort")
        left = [gitdir / name for name in _OPERATION_STATE if (gitdir / name).exists()]
        if any(p.name not in ("MERGE_MODE", "MERGE_MSG", "AUTO_MERGE") for p in left):
            log.warning("Git could not abort the stopped operation in %s; removing %s", self._workdir, left)
            for path in left:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

    def _clear_locks(self) -> None:
        """Open the clone and remove stale lock files from it (hold the lock)."""
        _ = self.repo
        remove_stale_locks(self._workdir / ".git")

    # ------------------------------------------------------------------ reading

    def sync(self, *, not_before: float | None = None) -> str:
        """Fetch the remote (branches and the notes refs), hard-reset the clone to ``origin/<branch>``
        and remove untracked files; returns the head commit id.

        With ``not_before`` (a :func:`time.monotonic` time), the last sync is reused, with no Git call,
        when it started at or after that time and nothing has changed the clone since (no commit, reset,
        push or failed note through this writer, no caller given :attr:`workdir`, HEAD where the sync
        left it; a note pushed, or the notes fetched, only bring the notes ref up to the remote's):
        it saw everything on the remote at ``not_before``. Many health gates settling at once then share
        one fetch.

        What a killed process left behind is repaired first: stale lock files are removed and a stopped
        rebase/revert/cherry-pick/merge is aborted; unpushed commits are dropped by the reset. When the sync
        fails and the clone is damaged locally (:func:`clone_problem`), it is cloned again and the sync
        retried once; when the clone is sound (the remote is unreachable) the clone is kept.

        Raises:
            SourceError: the remote cannot be reached or the branch does not exist.
        """
        with self._lock.hold():
            last = self._synced
            # reused only as this object left it: another process sharing the clone would have moved HEAD
            if (
                not_before is not None
                and last is not None
                and last[0] >= not_before
                and last[1] == self._generation
                and self._head_quietly() == last[2]
            ):
                return last[2]
            started = time.monotonic()
            self._synced = None
            _ = self.repo
            try:
                head = self._sync_once()
            except SourceError as exc:
                problem = clone_problem(self._workdir / ".git", worktree=self._workdir, thorough=True)
                if problem is None:
                    raise
                self._reclone(f"{problem}; the sync failed with: {exc}")
                head = self._sync_once()
            self._changed()
            self._synced = (started, self._generation, head)
            return head

    def _head_quietly(self) -> str:
        """HEAD's commit id read from the clone's files (no Git process), "" when it cannot be read."""
        try:
            return str(self.repo.head.commit.hexsha)
        except (ValueError, OSError, git.exc.GitError):
            return ""

    def _sync_once(self) -> str:
        with self._lock.hold():
            self._clear_locks()
            self._abort_in_progress()
            self._fetch()
            if self._git_status("rev-parse", "--verify", "-q", f"refs/remotes/origin/{self.branch}")[0]:
                raise SourceError(f"{self.url}: branch {self.branch!r} does not exist")
            self._git("checkout", "-q", "-f", "-B", self.branch, f"refs/remotes/origin/{self.branch}")
            self._git("reset", "-q", "--hard", f"refs/remotes/origin/{self.branch}")
            self._git("clean", "-q", "-fdx")
            return self.head()

    def _fetch(self) -> None:
        self._git(
            "fetch",
            "-q",
            "--prune",
            "--no-tags",
            "origin",
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/notes/*:refs/notes/*",
            kill_after_timeout=NETWORK_TIMEOUT,
        )

    def head(self) -> str:
        """The commit id checked out in the clone."""
        return self._git("rev-parse", "HEAD")

    def read_file(self, rev: str, path: str) -> str | None:
        """The text of ``path`` at commit ``rev`` (``None`` when it does not exist there)."""
        status, out, _ = self._git_status("show", f"{rev}:{path}")
        return out if status == 0 else None

    def list_files(self, rev: str, path: str) -> list[str]:
        """Repository paths of the files under directory ``path`` at commit ``rev``."""
        status, out, _ = self._git_status("ls-tree", "-r", "--name-only", rev, "--", path)
        return [line for line in out.splitlines() if line] if status == 0 else []

    def changed_files(self, sha: str, parent: str | None = None) -> list[str]:
        """Paths changed by commit ``sha`` against ``parent`` (default: its first parent; for a root
        commit every file)."""
        base = parent or f"{sha}^"
        status, out, _ = self._git_status("diff", "--name-only", base, sha, "--")
        if status != 0:
            status, out, _ = self._git_status("show", "--name-only", "--format=", sha)
        return [line for line in out.splitlines() if line]

    def tree(self, rev: str) -> str:
        """The tree id of commit ``rev`` (equal trees: identical files)."""
        return self._git("rev-parse", f"{rev}^{{tree}}")

    def remote_branches(self, prefix: str = "") -> dict[str, str]:
        """Remote branches as last fetched, name → commit id, whose names start with ``prefix``."""
        out = self._git("for-each-ref", "--format=%(refname)%00%(objectname)", "refs/remotes/origin/")
        result: dict[str, str] = {}
        for line in out.splitlines():
            ref, _, sha = line.partition("\x00")
            name = ref.removeprefix("refs/remotes/origin/")
            if name != "HEAD" and name.startswith(prefix):
                result[name] = sha
        return result

    def export(self, rev: str, dest: Path) -> Path:
        """Extract the files of commit ``rev`` into the new directory ``dest`` (``git archive``; the
        ``tarfile`` data filter refuses absolute paths, ``..`` and links leaving ``dest``).

        Raises:
            SourceError: unknown commit or an unsafe archive.
        """
        buf = io.BytesIO()
        try:
            self.repo.archive(buf, treeish=rev, format="tar")
            buf.seek(0)
            dest.mkdir(parents=True, exist_ok=False)
            with tarfile.open(fileobj=buf) as tar:
                tar.extractall(dest, filter="data")
        except (git.exc.GitCommandError, tarfile.TarError, OSError) as exc:
            raise SourceError(f"export of {rev}: {exc}") from None
        return dest

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is reachable from ``descendant`` (a commit is its own ancestor)."""
        return self._git_status("merge-base", "--is-ancestor", ancestor, descendant)[0] == 0

    def resolve(self, rev: str) -> str:
        """The full commit id of ``rev`` (a sha prefix, a branch, ``HEAD~1`` …).

        Raises:
            SourceError: when ``rev`` names no commit.
        """
        status, out, _ = self._git_status("rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
        if status != 0:
            raise SourceError(f"{rev!r} is not a commit of {self.url}")
        return out.strip()

    def log(
        self,
        *,
        max_count: int = 200,
        paths: list[str] | None = None,
        rev: str | list[str] = "HEAD",
        first_parent: bool = False,
    ) -> list[CommitInfo]:
        """Commits reachable from ``rev`` (newest first), with their trailers parsed.

        Args:
            max_count: at most this many commits.
            paths: only commits that touch one of these repository paths.
            rev: a revision or range (``a..b``), or several; default the clone's ``HEAD``.
            first_parent: follow only the first parent of merges (the branch's own line).
        """
        args = ["log", "--topo-order", f"--max-count={max_count}", f"--format={_LOG_FORMAT}{_RECORD}"]
        if first_parent:
            args.append("--first-parent")
        args += [rev] if isinstance(rev, str) else rev
        args.append("--")
        if paths:
            args += paths
        out = self._git(*args, strip_newline_in_stdout=False)
        commits: list[CommitInfo] = []
        for record in out.split(_RECORD):
            record = record.lstrip("\n")
            if not record:
                continue
            f = record.split(_FIELD)
            if len(f) != 10:
                continue
            body = f[8].rstrip("\n")
            commits.append(
                CommitInfo(
                    sha=f[0],
                    parents=f[1].split(),
                    author_name=f[2],
                    author_email=f[3],
                    authored_at=float(f[4]),
                    committer_name=f[5],
                    committer_email=f[6],
                    committed_at=float(f[7]),
                    subject=body.splitlines()[0] if body else "",
                    body=body,
                    trailers=parse_trailer_lines(f[9]),
                )
            )
        return commits

    # ------------------------------------------------------------------ writing

    def commit(
        self,
        message: str,
        *,
        trailers: dict[str, str | list[str]] | None = None,
        branch: str | None = None,
    ) -> str | None:
        """Commit every change in :attr:`workdir` (additions, edits, deletions), never an empty commit.

        Args:
            message: subject line, optionally a blank line and a body.
            trailers: key → value or values, appended as the message's trailer paragraph.
            branch: create (or reset) this local branch at the current head first and commit on it.

        Returns:
            the new commit id, or ``None`` when nothing changed.

        Raises:
            ValueError: an empty message or a malformed trailer.
            SourceError: git refused the commit.
        """
        text = compose_message(message, trailers)
        with self._lock.hold():
            self._changed()
            self._clear_locks()
            if branch:
                self._git("checkout", "-q", "-B", branch)
            self._git("add", "-A")
            if self._git_status("diff", "--cached", "--quiet")[0] == 0:
                return None
            return self._commit_staged(text)

    def _commit_staged(self, text: str) -> str:
        msg = self._workdir / ".git" / "RECONCILER_COMMIT_MSG"
        msg.write_text(text, encoding="utf-8")
        try:
            self._git("commit", "-q", "--no-verify", "--cleanup=verbatim", "-F", str(msg))
        finally:
            msg.unlink(missing_ok=True)
        failpoint("commit")
        return self.head()

    def switch(self, branch: str) -> None:
        """Create (or reset) the local ``branch`` at the current head and check it out."""
        with self._lock.hold():
            self._changed()
            self._clear_locks()
            self._git("checkout", "-q", "-B", branch)

    def reset_hard(self, rev: str) -> None:
        """Point the checked-out branch at ``rev`` and make the working tree match it (clean)."""
        with self._lock.hold():
            self._changed()
            self._clear_locks()
            self._abort_in_progress()
            self._git("reset", "-q", "--hard", rev)
            self._git("clean", "-q", "-fdx")

    def push(self, *, branch: str | None = None, retries: int = 5, force: bool = False) -> PushResult:
        """Push ``HEAD`` to ``branch`` (default: the followed branch) on the remote.

        With ``force`` the remote branch is overwritten (for the daemon's own proposal branches such as
        ``promote/<env>/<sha>``; never used for the followed branch).

        A non-fast-forward rejection (another writer pushed first) fetches, rebases ``HEAD`` onto the
        remote branch and retries, up to ``retries`` attempts with exponential backoff and jitter. A
        push the remote refuses (a protected branch, a declining hook) goes to the branch
        ``reconciler/<branch>/<short-sha>`` instead, reported with ``fallback=True``.

        Raises:
            SourceError: attempts exhausted, a rebase conflict, or the fallback push failed too.
        """
        target = branch or self.branch
        attempts = 0
        with self._lock.hold():
            self._changed()
            self._clear_locks()
            retrying = Retrying(
                stop=stop_after_attempt(max(1, retries)),
                wait=self._wait(),
                retry=retry_if_exception_type(_NonFastForward),
                reraise=True,
            )
            try:
                for attempt in retrying:
                    with attempt:
                        attempts += 1
                        result = self._push_once(target, force)
                        result.attempts = attempts
                        failpoint("push")
                        return result
            except _NonFastForward as exc:
                raise SourceError(
                    f"push to {target}: still behind the remote after {attempts} attempts ({exc})"
                ) from None
        raise SourceError(f"push to {target}: no attempt made")  # pragma: no cover - Retrying always runs

    def _push_once(self, target: str, force: bool) -> PushResult:
        sha = self.head()
        flag, summary = self._push_ref(("+" if force else "") + "HEAD", f"refs/heads/{target}")
        if flag in (" ", "*", "=", "+", "-"):
            return PushResult(pushed_to=target, sha=sha)
        if any(race in summary for race in _REF_RACE):
            raise _NonFastForward(summary)  # another push updated the ref at the same moment
        if "remote rejected" in summary:
            fallback = f"reconciler/{target}/{sha[:7]}"
            fflag, fsummary = self._push_ref("HEAD", f"refs/heads/{fallback}")
            if fflag not in (" ", "*", "="):
                raise SourceError(
                    f"push to {target} refused ({summary}); the fallback branch {fallback} failed too "
                    f"({fsummary})"
                )
            return PushResult(pushed_to=fallback, fallback=True, sha=sha, reason=summary)
        if "rejected" in summary:
            self._rebase_onto(target)
            raise _NonFastForward(summary)
        raise SourceError(f"push to {target}: {summary}")

    def _push_ref(self, src: str, dst: str) -> tuple[str, str]:
        status, out, err = self._git_status(
            "push", "--porcelain", "origin", f"{src}:{dst}", kill_after_timeout=NETWORK_TIMEOUT
        )
        src = src.lstrip("+")
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1].endswith(f":{dst}"):
                return parts[0], parts[2]
        if status == 0:
            return " ", "ok"
        raise SourceError(f"git push origin {src}:{dst}: {err.strip() or out.strip()}")

    def _rebase_onto(self, target: str) -> None:
        self._git(
            "fetch",
            "-q",
            "origin",
            f"+refs/heads/{target}:refs/remotes/origin/{target}",
            kill_after_timeout=NETWORK_TIMEOUT,
        )
        status, out, err = self._git_status("rebase", "-q", f"refs/remotes/origin/{target}")
        if status != 0:
            self._git_status("rebase", "--abort")
            raise SourceError(
                f"rebase onto origin/{target} after a rejected push stopped on a conflict: "
                f"{err.strip() or out.strip()}"
            )

    def revert(
        self,
        sha: str,
        *,
        trailers: dict[str, str | list[str]] | None = None,
        mainline: int | None = None,
    ) -> str:
        """Make a ``git revert`` commit of ``sha`` on the current head, with ``trailers``.

        Args:
            sha: the commit to revert.
            trailers: e.g. ``{"Rollback-Of": sha, "Reason": "..."}``.
            mainline: the parent number for reverting a merge commit (``git revert -m``); default 1 for
                merges.

        Returns:
            the revert commit's id.

        Raises:
            NothingToRevert: the change is already undone.
            RevertConflict: later commits changed the same lines; nothing was committed.
            SourceError: ``sha`` is unknown.
        """
        with self._lock.hold():
            self._changed()
            self._clear_locks()
            full = self.resolve(sha)
            info = self.log(max_count=1, rev=full)[0]
            args = ["revert", "--no-commit"]
            if info.is_merge:
                args += ["-m", str(mainline or 1)]
            status, out, err = self._git_status(*args, full)
            if status != 0:
                self._git_status("revert", "--abort")
                self._git_status("reset", "-q", "--hard", "HEAD")
                if "conflict" in (out + err).lower():
                    raise RevertConflict(f"git revert {full[:7]}: conflict: {err.strip() or out.strip()}")
                raise SourceError(f"git revert {full[:7]}: {err.strip() or out.strip()}")
            if self._git_status("diff", "--cached", "--quiet")[0] == 0:
                self._git_status("revert", "--abort")
                self._git_status("reset", "-q", "--hard", "HEAD")
                raise NothingToRevert(f"reverting {full[:7]} changes nothing: its change is already undone")
            message = f'Revert "{info.subject}"\n\nThis reverts commit {full}.'
            return self._commit_staged(compose_message(message, trailers))

    # ------------------------------------------------------------------ notes

    def add_note(self, sha: str, text: str, ref: str = NOTES_REF, *, append: bool = True) -> bool:
        """Attach ``text`` to commit ``sha`` as a Git note under ``ref`` and push that notes ref.

        With ``append`` the text is added as new line(s) to an existing note, unless the note already
        contains exactly those lines (idempotent); otherwise the note is replaced. The remote notes ref
        is fetched first, and a rejected push (another writer) is fetched and retried with backoff.

        Values the SOPS render step decrypted are masked first (:func:`reconciler.model.sensitive.mask`).

        Returns:
            ``True`` when a note was written, ``False`` when it already held ``text``.

        Raises:
            SourceError: the note could not be pushed.
        """
        return self.add_notes([(sha, text)], ref, append=append)[0]

    def add_notes(
        self, items: list[tuple[str, str]], ref: str = NOTES_REF, *, append: bool = True
    ) -> list[bool]:
        """:meth:`add_note` for several ``(sha, text)`` at once, with one fetch and one push of the notes
        ref (items on the same commit are appended in their order).

        Returns:
            For each item, whether it was written (``False``: its note already held the text).

        Raises:
            SourceError: the notes could not be pushed (none of them is then on the remote).
        """
        bodies = [(sha, sensitive.mask(text).strip("\n")) for sha, text in items]
        if any(not body for _sha, body in bodies):
            raise ValueError("a note must not be empty")
        if not bodies:
            return []
        with self._lock.hold():
            self._clear_locks()
            full = [(self.resolve(sha), body) for sha, body in bodies]
            retrying = Retrying(
                stop=stop_after_attempt(6),
                wait=self._wait(),
                retry=retry_if_exception_type(_NonFastForward),
                reraise=True,
            )
            try:
                for attempt in retrying:
                    with attempt:
                        return self._add_notes_once(full, ref, append)
            except _NonFastForward as exc:
                self._changed()  # the local notes ref may hold what the remote refused
                raise SourceError(f"push {ref}: still rejected after retries ({exc})") from None
            except BaseException:
                self._changed()
                raise
        return [False] * len(items)  # pragma: no cover

    def fetch_notes(self, ref: str = NOTES_REF) -> None:
        """Fetch the remote's notes ref ``ref`` (replacing the local one; when the remote has none, the
        local one is deleted).

        Raises:
            SourceError: the remote cannot be reached.
        """
        with self._lock.hold():
            self._clear_locks()
            self._fetch_notes(ref)

    def _fetch_notes(self, ref: str) -> None:
        """Make the local notes ref ``ref`` equal the remote's; without a remote one the local one is
        deleted (notes only here were never pushed, e.g. by a killed process, and must not be later)."""
        status, _, err = self._git_status(
            "fetch", "-q", "origin", f"+{ref}:{ref}", kill_after_timeout=NETWORK_TIMEOUT
        )
        if status != 0 and "couldn't find remote ref" not in err:
            raise SourceError(f"git fetch origin {ref}: {err.strip()}")
        if status != 0:
            self._git_status("update-ref", "-d", ref)

    def _add_notes_once(self, items: list[tuple[str, str]], ref: str, append: bool) -> list[bool]:
        self._fetch_notes(ref)
        written: list[bool] = []
        path = self._workdir / ".git" / "RECONCILER_NOTE"
        try:
            for sha, body in items:
                existing = self.note(sha, ref)
                if append and existing is not None:
                    lines = existing.splitlines()
                    if all(line in lines for line in body.splitlines()):
                        written.append(False)
                        continue
                    content = existing.rstrip("\n") + "\n" + body
                else:
                    if existing is not None and existing.strip("\n") == body:
                        written.append(False)
                        continue
                    content = body
                path.write_text(content + "\n", encoding="utf-8")
                self._git("notes", f"--ref={ref}", "add", "-f", "-F", str(path), sha)
                written.append(True)
        finally:
            path.unlink(missing_ok=True)
        if not any(written):
            return written
        flag, summary = self._push_ref(ref, ref)
        if flag in (" ", "*", "=", "+", "-"):
            return written
        if ("rejected" in summary and "remote rejected" not in summary) or any(
            r in summary for r in _REF_RACE
        ):
            raise _NonFastForward(summary)
        raise SourceError(f"push {ref}: {summary}")

    def note(self, sha: str, ref: str = NOTES_REF) -> str | None:
        """The note on ``sha`` under ``ref`` as last fetched (``None`` when there is none)."""
        status, out, _ = self._git_status("notes", f"--ref={ref}", "show", sha)
        return out if status == 0 else None

    def notes(self, ref: str = NOTES_REF) -> dict[str, str]:
        """Every note under ``ref`` as last fetched (:meth:`sync`, :meth:`add_note`): commit id → text."""
        status, out, _ = self._git_status("notes", f"--ref={ref}", "list")
        if status != 0:
            return {}
        result: dict[str, str] = {}
        repo = self.repo
        for line in out.splitlines():
            parts = line.split()
            if len(parts) != 2:
                continue
            blob = git.Blob(repo, bytes.fromhex(parts[0]))
            result[parts[1]] = blob.data_stream.read().decode("utf-8", errors="replace")
        return result

    def close(self) -> None:
        """Release the clone's Git processes."""
        if self._repo is not None:
            self._repo.close()
            self._repo = None


def _stderr(exc: git.exc.GitCommandError) -> str:
    return str(exc.stderr or "").strip() or str(exc)
