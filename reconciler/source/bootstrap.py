"""Make a working environment repository from a directory: a bare "remote" plus a clone, with Git I/O
through GitPython. Used by ``reconciler up`` (the example repository) and by tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import git

AUTHOR = git.Actor("reconciler", "reconciler@localhost")


def init_repo_with_remote(
    src: Path,
    dest: Path,
    *,
    branch: str = "main",
    include: tuple[str, ...] = ("envs", "overlays", "policies", ".sops.yaml"),
) -> tuple[Path, Path]:
    """Copy ``include`` folders and files of ``src`` into a new clone under ``dest``, commit, and push to a
    bare remote ``dest/remote.git``. Returns ``(remote, work)`` paths.

    Raises:
        FileExistsError: when ``dest/remote.git`` already exists.
    """
    remote = dest / "remote.git"
    work = dest / "work"
    if remote.exists():
        raise FileExistsError(f"{remote} already exists")
    dest.mkdir(parents=True, exist_ok=True)
    git.Repo.init(remote, bare=True, initial_branch=branch).close()
    repo = git.Repo.init(work, initial_branch=branch)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", AUTHOR.name)
        cw.set_value("user", "email", AUTHOR.email)
    for name in include:
        if (src / name).is_dir():
            shutil.copytree(src / name, work / name)
        elif (src / name).is_file():
            shutil.copy2(src / name, work / name)
    repo.git.add(A=True)
    repo.index.commit("bootstrap: example environment repository", author=AUTHOR, committer=AUTHOR)
    repo.create_remote("origin", str(remote))
    repo.git.push("origin", f"{branch}:{branch}")
    repo.git.branch("--set-upstream-to", f"origin/{branch}")
    repo.close()
    return remote, work


def commit_and_push(work: Path, message: str, *, branch: str = "main") -> str:
    """Commit every change in the clone ``work`` and push it; returns the new commit id."""
    repo = git.Repo(work)
    try:
        repo.git.add(A=True)
        commit = repo.index.commit(message, author=AUTHOR, committer=AUTHOR)
        repo.git.push("origin", f"{branch}:{branch}")
        return str(commit.hexsha)
    finally:
        repo.close()
