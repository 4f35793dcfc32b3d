"""The repository watcher wakes the daemon only when the branch takes a new value: never on reads of the
repository (the daemon's own fetches), notes, other branches or ``git gc`` — real repositories, real
inotify."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from reconciler.source.watch import RepoWatcher, resolve_ref

QUIET = 1.2  # seconds to wait for a callback that must not come (debounce is 0.1 s here)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path]:
    """A bare remote with one commit on main, and a clone of it."""
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "--initial-branch=main", str(remote), cwd=tmp_path)
    work = tmp_path / "work"
    git("clone", "-q", str(remote), str(work), cwd=tmp_path)
    git("config", "user.email", "t@localhost", cwd=work)
    git("config", "user.name", "t", cwd=work)
    git("checkout", "-q", "-b", "main", cwd=work)
    git("commit", "-q", "--allow-empty", "-m", "one", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return remote, work


class Calls:
    def __init__(self) -> None:
        self.n = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.n += 1
        self.event.set()


def test_reads_notes_other_branches_and_gc_wake_nothing(repos: tuple[Path, Path], tmp_path: Path) -> None:
    remote, work = repos
    calls = Calls()
    watcher = RepoWatcher(remote, calls, debounce=0.1, ref="refs/heads/main")
    watcher.start()
    try:
        reader = tmp_path / "reader"
        git("clone", "-q", str(remote), str(reader), cwd=tmp_path)  # what the daemon's cache clone does
        for _ in range(3):
            git("fetch", "-q", "origin", cwd=reader)
            git("ls-remote", str(remote), cwd=tmp_path)
            git("--git-dir", str(remote), "log", "--oneline", cwd=tmp_path)
        git("notes", "--ref=reconciler", "add", "-m", "healthy", "HEAD", cwd=work)  # outcome records
        git("push", "-q", "origin", "refs/notes/reconciler", cwd=work)
        git("push", "-q", "origin", "HEAD:refs/heads/promote/prod/abc", cwd=work)  # another branch
        git("--git-dir", str(remote), "gc", "-q", cwd=tmp_path)  # packs the loose refs: same values
        time.sleep(QUIET)
        assert calls.n == 0
        assert watcher.woken >= 1, (
            "the writes above must have woken the watcher (else this test says nothing)"
        )
    finally:
        watcher.stop()


def test_a_new_commit_on_the_branch_calls_back_once(repos: tuple[Path, Path]) -> None:
    remote, work = repos
    calls = Calls()
    watcher = RepoWatcher(remote, calls, debounce=0.1, ref="refs/heads/main")
    watcher.start()
    try:
        git("commit", "-q", "--allow-empty", "-m", "two", cwd=work)
        git("push", "-q", "origin", "main", cwd=work)
        assert calls.event.wait(5), "no callback for a new commit"
        time.sleep(QUIET)
        assert calls.n == 1
        assert watcher.fired == 1
        head = git("rev-parse", "HEAD", cwd=work).strip()
        assert resolve_ref(remote, "refs/heads/main") == head
        git("reset", "-q", "--hard", "HEAD~1", cwd=work)  # a force-push back: a new value again
        git("push", "-q", "--force", "origin", "main", cwd=work)
        time.sleep(QUIET)
        assert calls.n == 2
    finally:
        watcher.stop()


def test_a_working_copy_is_watched_through_its_git_directory(repos: tuple[Path, Path]) -> None:
    _, work = repos
    calls = Calls()
    watcher = RepoWatcher(work, calls, debounce=0.1, ref="refs/heads/main")
    watcher.start()
    try:
        git("status", cwd=work)  # reads the index and HEAD
        git("log", "-1", cwd=work)
        time.sleep(QUIET)
        assert calls.n == 0
        git("commit", "-q", "--allow-empty", "-m", "local", cwd=work)
        assert calls.event.wait(5)
    finally:
        watcher.stop()


def test_resolve_ref_of_a_missing_ref_is_none(repos: tuple[Path, Path]) -> None:
    remote, _ = repos
    assert resolve_ref(remote, "refs/heads/nope") is None
    assert resolve_ref(remote.parent / "not-a-repo", "HEAD") is None
