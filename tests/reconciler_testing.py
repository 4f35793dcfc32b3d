"""Helpers shared by the tests (importable as ``reconciler_testing``: tests/ is on sys.path)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


class EnvRepo:
    """An environment repository: a bare remote and a clone to edit, commit and push."""

    def __init__(self, remote: Path, work: Path) -> None:
        self.remote = remote
        self.work = work

    def write(self, rel: str, text: str) -> None:
        """Write a file in the clone."""
        p = self.work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def remove(self, rel: str) -> None:
        """Delete a file in the clone."""
        (self.work / rel).unlink()

    def commit(self, message: str) -> str:
        """Commit everything and push; returns the commit id."""
        from reconciler.source.bootstrap import commit_and_push

        return commit_and_push(self.work, message)


def copy_case(case: str, dest: Path) -> Path:
    """Copy a shared acceptance case folder (../shared/cases/<case>) into ``dest``."""
    src = shared_dir() / "cases" / case
    shutil.copytree(src, dest)
    return dest


def shared_dir() -> Path:
    """The folder holding ``cases/``: the acceptance cases from real bug reports, vendored in tests/cases
    (a copy of the project's shared/cases, so the suite needs nothing outside the repository)."""
    return Path(__file__).resolve().parent
