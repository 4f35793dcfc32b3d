"""A Git source: a cached clone of the environment repository, fetched on demand.

Each resolved revision is materialised as an immutable snapshot directory extracted from the commit's
tree with ``git archive`` (never from a working copy, so uncommitted edits are never applied). Snapshot
extraction uses :mod:`tarfile`'s ``data`` filter, which refuses absolute paths, ``..`` and links that
leave the snapshot. A snapshot is extracted into ``<sha>.tmp`` and renamed to ``<sha>`` only when complete.

The clone may be shared by several processes (the daemon and CLI commands use the same default cache
directory), so every Git operation that writes to it holds a ``flock`` on ``<clone>.lock`` (the same
:class:`~reconciler.source.gitops._PathLock` the working clones use). While it is held, any Git lock file
in the clone was left by a killed process and is removed; a clone damaged locally is cloned again once,
while a remote that cannot be reached only raises :class:`SourceError`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import git

from reconciler.errors import SourceError
from reconciler.model import Revision
from reconciler.source.gitops import (
    NETWORK_TIMEOUT,
    _PathLock,
    clone_and_open,
    clone_problem,
    open_clone,
    open_or_clone,
    remove_stale_locks,
)

log = logging.getLogger("reconciler.git")

#: Largest file a snapshot extracts, in bytes; a commit with a larger blob fails with a SourceError.
MAX_BLOB_BYTES = 64 << 20
#: Largest total of all files of a snapshot, in bytes.
MAX_SNAPSHOT_BYTES = 512 << 20


@dataclass(frozen=True)
class Snapshot:
    """The files of one revision, extracted to ``root`` (read-only by convention)."""

    revision: Revision
    root: Path

    def tree_digest(self, repo: GitSource, path: str) -> str:
        """The Git tree id of ``path`` at this revision (a content digest of that directory)."""
        return repo.tree_digest(self.revision.sha, path)


def check_tree_sizes(
    repo: git.Repo, treeish: str, *, max_blob: int, max_total: int, what: str
) -> list[tuple[str, str]]:
    """Refuse a commit's tree whose files are too large, from ``git ls-tree -r -l`` (nothing is read).

    Args:
        repo: the repository holding the commit.
        treeish: the commit (or tree) to measure.
        max_blob: the largest file allowed, in bytes.
        max_total: the largest total of all files, in bytes.
        what: how messages name the tree (e.g. ``snapshot of main@sha1:…``).

    Returns:
        the submodules of the tree (gitlinks): ``(path, commit)`` pairs.

    Raises:
        SourceError: naming the file (or the total) over a limit, or when Git cannot list the tree.
    """
    try:
        listing = repo.git.ls_tree("-r", "-l", "-z", treeish)
    except git.exc.GitCommandError as exc:
        raise SourceError(f"{what}: {exc.stderr.strip() or exc}") from None
    total = 0
    gitlinks: list[tuple[str, str]] = []
    for entry in listing.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 4 and parts[1] == "commit":
            gitlinks.append((path, parts[2]))
            continue
        if len(parts) != 4 or parts[1] != "blob" or not parts[3].isdigit():
            continue
        size = int(parts[3])
        total += size
        if size > max_blob:
            raise SourceError(f"{what}: {path} is {size} bytes, over the {max_blob}-byte limit")
    if total > max_total:
        raise SourceError(f"{what}: the files total {total} bytes, over the {max_total}-byte limit")
    return gitlinks


#: what :meth:`GitSource.resolve` accepts: a ref name or commit id, never an option (no leading '-')
_REF_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/@+-]{0,254}$")


def _cache_name(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class GitSource:
    """The environment repository, cloned into ``cache_dir``.

    Args:
        url: a clone URL or a local path (a working copy or a bare repository).
        branch: the branch to follow.
        cache_dir: where the clone and the snapshots live.
    """

    def __init__(self, url: str, branch: str, cache_dir: Path) -> None:
        p = Path(url).expanduser()
        self.url = str(p.resolve()) if p.exists() else url
        self.branch = branch
        self.cache_dir = cache_dir
        self.clone_dir = cache_dir / "git" / _cache_name(self.url)
        self.snapshot_dir = cache_dir / "snapshots" / _cache_name(self.url)
        # thread lock + flock: shared by every GitSource of this clone, in this process and in others
        self._lock = _PathLock.for_path(self.clone_dir.with_name(self.clone_dir.name + ".lock"))
        self._repo: git.Repo | None = None
        self.last_fetch_seconds = 0.0

    @property
    def repo(self) -> git.Repo:
        """The cached clone (cloned on first use).

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
        return open_or_clone(self.url, self.clone_dir, bare=True, opener=self._open)

    def _clone(self) -> git.Repo:
        """Clone again, replacing the clone there only once the new one is complete (hold the lock)."""
        return clone_and_open(self.url, self.clone_dir, bare=True, opener=self._open)

    def _open(self) -> git.Repo:
        return open_clone(self.clone_dir)

    def _recover(self, exc: SourceError) -> bool:
        """After ``exc``: clone again when the clone is damaged locally (hold the lock).

        Returns:
            ``True`` when the clone was replaced (retry the operation once), ``False`` when it is sound
            (the failure is the remote's or the request's: re-raise ``exc``; the clone is kept).

        Raises:
            SourceError: the clone is damaged and the remote cannot be cloned.
        """
        problem = clone_problem(self.clone_dir, thorough=True)
        if problem is None:
            return False
        log.warning(
            "the clone %s is damaged (%s; the operation failed with: %s); cloning %s again",
            self.clone_dir,
            problem,
            exc,
            self.url,
        )
        if self._repo is not None:
            self._repo.close()
            self._repo = None
        self._repo = self._clone()
        return True

    def fetch(self) -> Revision:
        """Fetch the branch and return the revision it points at.

        Stale lock files a killed process left in the clone are removed first. When the fetch fails and
        the clone is damaged locally, it is cloned again and the fetch retried once.

        Raises:
            SourceError: when the remote cannot be reached or the branch does not exist (the clone is
                kept).
        """
        t0 = time.monotonic()
        with self._lock.hold():
            _ = self.repo
            try:
                sha = self._fetch_once()
            except SourceError as exc:
                if not self._recover(exc):
                    raise
                sha = self._fetch_once()
        self.last_fetch_seconds = time.monotonic() - t0
        return Revision(branch=self.branch, sha=sha)

    def _fetch_once(self) -> str:
        repo = self.repo
        remove_stale_locks(self.clone_dir)
        try:
            repo.git.fetch(
                self.url,
                f"+refs/heads/{self.branch}:refs/heads/{self.branch}",
                "--prune",
                "--force",
                kill_after_timeout=NETWORK_TIMEOUT,
            )
        except git.exc.GitCommandError as exc:
            raise SourceError(f"git fetch {self.url} {self.branch}: {exc.stderr.strip() or exc}") from None
        try:
            return str(repo.git.rev_parse(f"refs/heads/{self.branch}^{{commit}}"))
        except git.exc.GitCommandError:
            raise SourceError(f"{self.url}: branch {self.branch!r} does not exist") from None

    def resolve(self, ref: str) -> Revision:
        """Fetch and resolve ``ref``: a branch of the remote, a tag, or a commit id (full or abbreviated)
        reachable from the followed branch or a tag. The result's ``branch`` is ``ref`` as given.

        Raises:
            SourceError: ``ref`` is not a valid ref name or commit id, does not exist, or the remote cannot
                be reached.
        """
        if not _REF_RE.match(ref) or ".." in ref or ref.endswith((".lock", "/")) or "//" in ref:
            raise SourceError(f"{ref!r} is not a Git ref name or commit id")
        with self._lock.hold():
            repo = self.repo
            remove_stale_locks(self.clone_dir)
            try:
                repo.git.fetch(
                    self.url,
                    f"+refs/heads/{self.branch}:refs/heads/{self.branch}",
                    "+refs/tags/*:refs/tags/*",
                    "--force",
                    kill_after_timeout=NETWORK_TIMEOUT,
                )
            except git.exc.GitCommandError as exc:
                raise SourceError(f"git fetch {self.url}: {exc.stderr.strip() or exc}") from None
            candidates = []
            try:
                repo.git.fetch(
                    self.url,
                    f"+refs/heads/{ref}:refs/heads/{ref}",
                    "--force",
                    kill_after_timeout=NETWORK_TIMEOUT,
                )
                candidates.append(f"refs/heads/{ref}^{{commit}}")
            except git.exc.GitCommandError:
                pass  # not a branch of the remote: a tag or a commit id
            candidates += [f"refs/tags/{ref}^{{commit}}", f"{ref}^{{commit}}"]
            for candidate in candidates:
                try:
                    sha = str(repo.git.rev_parse("--verify", "--quiet", candidate))
                except git.exc.GitCommandError:
                    continue
                if sha:
                    return Revision(branch=ref, sha=sha)
        raise SourceError(f"ref {ref!r} does not exist in {self.url} (not a branch, tag or known commit)")

    def snapshot(self, revision: Revision) -> Snapshot:
        """Extract the revision's tree into ``snapshots/<sha>/`` (once; reused afterwards).

        The files go to ``<sha>.tmp`` first, which is renamed to ``<sha>`` (with its ``.complete`` marker)
        only when every file is written, so a killed process never leaves a snapshot that looks complete.
        When extraction fails because the clone is damaged locally (a missing object), it is cloned again
        and the extraction retried once.

        Raises:
            SourceError: when the commit is unknown or its archive cannot be extracted safely.
        """
        dest = self.snapshot_dir / revision.sha
        if (dest / ".complete").exists():
            return Snapshot(revision, dest)
        with self._lock.hold():
            if (dest / ".complete").exists():
                return Snapshot(revision, dest)
            _ = self.repo
            try:
                self._extract(revision, dest)
            except SourceError as exc:
                if not self._recover(exc):
                    raise
                self._extract(revision, dest)
            self._gc_snapshots(keep=8)
        return Snapshot(revision, dest)

    def _extract(self, revision: Revision, dest: Path) -> None:
        self._check_sizes(revision)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            buf = io.BytesIO()
            self.repo.archive(buf, treeish=revision.sha, format="tar")
            buf.seek(0)
            with tarfile.open(fileobj=buf) as tar:
                tar.extractall(tmp, filter="data")
            (tmp / ".complete").write_text(str(revision))  # ENOSPC here is a SourceError too
        except (git.exc.GitCommandError, tarfile.TarError, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SourceError(f"snapshot of {revision}: {exc}") from None
        shutil.rmtree(dest, ignore_errors=True)
        tmp.replace(dest)

    def _check_sizes(self, revision: Revision) -> None:
        """Refuse a tree whose files are too large before anything is extracted or held in memory.

        Raises:
            SourceError: naming the file (or the total) over :data:`MAX_BLOB_BYTES` /
                :data:`MAX_SNAPSHOT_BYTES`.
        """
        check_tree_sizes(
            self.repo,
            revision.sha,
            max_blob=MAX_BLOB_BYTES,
            max_total=MAX_SNAPSHOT_BYTES,
            what=f"snapshot of {revision}",
        )

    def _gc_snapshots(self, keep: int) -> None:
        """Delete all but the ``keep`` newest snapshots, and ``*.tmp`` directories a killed process left
        (hold the lock). A snapshot is renamed to ``*.tmp`` before it is deleted, so one half-deleted by a
        kill is never taken for complete."""
        for d in self.snapshot_dir.glob("*.tmp"):
            shutil.rmtree(d, ignore_errors=True)
        dirs = sorted(
            (d for d in self.snapshot_dir.iterdir() if d.is_dir() and not d.name.endswith(".tmp")),
            key=lambda d: d.stat().st_mtime,
        )
        for d in dirs[:-keep]:
            doomed = d.with_name(d.name + ".gc.tmp")
            try:
                d.replace(doomed)
            except OSError:
                continue
            shutil.rmtree(doomed, ignore_errors=True)

    def tree_digest(self, sha: str, path: str) -> str:
        """The tree id of ``path`` in commit ``sha`` ("" when the path does not exist)."""
        try:
            return str(self.repo.git.rev_parse(f"{sha}:{path}"))
        except git.exc.GitCommandError:
            return ""

    def commit_info(self, sha: str) -> dict[str, str]:
        """Author, date and subject of a commit."""
        c = self.repo.commit(sha)
        return {
            "sha": c.hexsha,
            "author": f"{c.author.name} <{c.author.email}>",
            "date": c.committed_datetime.isoformat(),
            "subject": str(c.message).splitlines()[0] if c.message else "",
        }
