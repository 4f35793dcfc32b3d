"""Git snapshots refuse commits whose trees would write outside the snapshot: ``..`` and ``.`` entries,
``.git`` directories, symlinks that point outside (absolute, relative, chained), names and paths too long
for the file system. The commits are crafted with Git plumbing (``git mktree``), as a hostile pusher would.
Each refusal is a SourceError naming the entry; nothing is written outside the cache, no partial snapshot
is left, and the next valid commit snapshots normally."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from _hostile_corpus import params

from reconciler.errors import SourceError
from reconciler.source import GitSource

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "hostile",
    "GIT_AUTHOR_EMAIL": "hostile@localhost",
    "GIT_COMMITTER_NAME": "hostile",
    "GIT_COMMITTER_EMAIL": "hostile@localhost",
}


def _git(cwd: Path, *args: str, data: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, env=GIT_ENV, check=True)
    return proc.stdout.decode().strip()


def _blob(bare: Path, data: bytes) -> str:
    return _git(bare, "hash-object", "-w", "--stdin", data=data)


@dataclass(frozen=True)
class Entry:
    """A tree entry: a file (``data``), a symlink (``link``) or a subtree (``tree``)."""

    name: str
    data: bytes | None = None
    link: str | None = None
    tree: tuple[Entry, ...] | None = None


def _tree(bare: Path, entries: tuple[Entry, ...]) -> str:
    lines = []
    for e in entries:
        if e.tree is not None:
            lines.append(f"040000 tree {_tree(bare, e.tree)}\t{e.name}")
        elif e.link is not None:
            lines.append(f"120000 blob {_blob(bare, e.link.encode())}\t{e.name}")
        else:
            lines.append(f"100644 blob {_blob(bare, e.data or b'')}\t{e.name}")
    return _git(bare, "mktree", data=("\n".join(lines) + "\n").encode())


def _commit(bare: Path, entries: tuple[Entry, ...], parent: str | None = None) -> str:
    tree = _tree(bare, entries)
    args = ["commit-tree", tree, "-m", "hostile tree"] + (["-p", parent] if parent else [])
    sha = _git(bare, *args)
    _git(bare, "update-ref", "refs/heads/main", sha)
    return sha


ENVS = Entry("envs", tree=(Entry("dev.yaml", b"overlay: overlays/dev\n"),))


def _nest(depth: int, leaf: Entry) -> Entry:
    e = leaf
    for _ in range(depth):
        e = Entry("d" * 100, tree=(e,))
    return e


@dataclass(frozen=True)
class TreeCase:
    id: str
    entries: tuple[Entry, ...]
    names: tuple[str, ...]  # the message must name one of these (the entry at fault)


W = Entry("evil", b"pwned\n")
CASES = [
    TreeCase("git/dotdot-file", (ENVS, Entry("..", b"pwned\n")), ("'..'",)),
    TreeCase("git/dotdot-dir", (ENVS, Entry("..", tree=(W,))), ("../evil",)),
    TreeCase("git/dotdot-nested", (ENVS, Entry("..", tree=(Entry("..", tree=(W,)),))), ("../../evil",)),
    TreeCase(
        "git/dotdot-under-dir",
        (ENVS, Entry("a", tree=(Entry("..", tree=(Entry("..", tree=(W,)),)),))),
        ("a/../../evil",),
    ),
    TreeCase("git/dot-dir", (ENVS, Entry(".", tree=(W,))), ("./evil",)),
    TreeCase(
        "git/dotgit-config",
        (ENVS, Entry(".git", tree=(Entry("config", b"[core]\n\tfsmonitor = touch pwned\n"),))),
        (".git/config",),
    ),
    TreeCase(
        "git/dotgit-hooks",
        (ENVS, Entry(".git", tree=(Entry("hooks", tree=(Entry("post-checkout", b"#!/bin/sh\n"),)),))),
        (".git/hooks",),
    ),
    TreeCase("git/dotgit-file", (ENVS, Entry(".git", b"gitdir: /tmp\n")), (".git",)),
    TreeCase(
        "git/dotgit-nested",
        (ENVS, Entry("sub", tree=(Entry(".git", tree=(Entry("config", b"x"),)),))),
        ("sub/.git",),
    ),
    TreeCase("git/symlink-absolute", (ENVS, Entry("link", link="/etc/passwd")), ("link",)),
    TreeCase("git/symlink-absolute-dir", (ENVS, Entry("overlays", link="/etc")), ("overlays",)),
    TreeCase("git/symlink-root", (ENVS, Entry("root", link="/")), ("root",)),
    TreeCase("git/symlink-relative-out", (ENVS, Entry("link", link="../../../../etc/passwd")), ("link",)),
    TreeCase("git/symlink-parent", (ENVS, Entry("up", link="..")), ("up",)),
    TreeCase(
        "git/symlink-in-subdir-out",
        (ENVS, Entry("overlays", tree=(Entry("dev", tree=(Entry("x.yaml", link="../../../secret"),)),))),
        ("overlays/dev/x.yaml",),
    ),
    TreeCase("git/symlink-chain-out", (ENVS, Entry("a", link="b"), Entry("b", link="..")), ("'a'", "'b'")),
    TreeCase(
        "git/symlink-through-dir-link",
        (ENVS, Entry("d", link="sub/.."), Entry("e", link="d/../.."), Entry("sub", tree=(W,))),
        ("'e'", "'d'"),
    ),
    TreeCase("git/name-too-long", (ENVS, Entry("n" * 300, b"x")), ("n" * 255,)),
    TreeCase("git/path-too-long", (ENVS, _nest(45, W)), ("d" * 100,)),
]


def _source(tmp: Path, entries: tuple[Entry, ...]) -> tuple[GitSource, Path, str]:
    bare = tmp / "remote.git"
    _git(tmp, "init", "-q", "--bare", "-b", "main", str(bare))
    good = _commit(bare, (ENVS,))
    _commit(bare, entries, parent=good)
    return GitSource(str(bare), "main", tmp / "cache"), bare, good


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", params(CASES))
def test_snapshot_refuses(case: TreeCase, tmp_path: Path) -> None:
    source, bare, _good = _source(tmp_path, case.entries)
    rev = source.fetch()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SourceError) as info:
        source.snapshot(rev)
    message = str(info.value)
    assert rev.sha in message
    assert any(n in message for n in case.names), message
    # nothing written beside the cache, no partial snapshot left
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "pwned").exists()
    assert not list(source.snapshot_dir.glob(f"{rev.sha}*/**/evil"))
    assert not (source.snapshot_dir / rev.sha / ".complete").exists()
    # the repository keeps working: a valid commit on top snapshots normally
    _commit(bare, (ENVS, Entry("ok.txt", b"ok\n")), parent=rev.sha)
    snap = source.snapshot(source.fetch())
    assert (snap.root / "envs" / "dev.yaml").read_text() == "overlay: overlays/dev\n"
    assert (snap.root / "ok.txt").read_text() == "ok\n"


def test_symlink_inside_repository_is_kept(tmp_path: Path) -> None:
    """Control: a symlink that stays inside the snapshot is extracted (so the refusals above are about
    leaving the snapshot, not about symlinks)."""
    entries = (
        ENVS,
        Entry("alias.yaml", link="envs/dev.yaml"),
        Entry("sub", tree=(Entry("up", link="../envs"),)),
    )
    source, _bare, _good = _source(tmp_path, entries)
    snap = source.snapshot(source.fetch())
    assert (snap.root / "alias.yaml").read_text() == "overlay: overlays/dev\n"
    assert (snap.root / "sub" / "up" / "dev.yaml").exists()


def test_snapshot_refuses_huge_blob(tmp_path: Path) -> None:
    """A blob over the source's size limit is refused before it is extracted (or held in memory)."""
    from reconciler.source import git as gitmod

    entries = (ENVS, Entry("big.yaml", b"#" * (gitmod.MAX_BLOB_BYTES + 1)))
    source, _bare, _good = _source(tmp_path, entries)
    rev = source.fetch()
    with pytest.raises(SourceError) as info:
        source.snapshot(rev)
    assert "big.yaml" in str(info.value)
