"""What a SIGKILL can leave in the reconciler's private Git clones, made by hand in real repositories, and
the next operation recovering from it: stale lock files, a stopped rebase / am / cherry-pick / revert /
merge, a garbled HEAD, a missing object, a half-made clone, half-extracted snapshots, unpushed commits
and notes. The remote must end up with exactly the one new commit asked for; an unreachable remote must
raise SourceError and keep the clone."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import git
import pytest
from reconciler_testing import REPO_ROOT, EnvRepo

from reconciler.errors import SourceError
from reconciler.source.bootstrap import init_repo_with_remote
from reconciler.source.git import GitSource
from reconciler.source.gitops import NOTES_REF, GitWriter

APP = "overlays/app.yaml"
OTHER = "overlays/other.yaml"
STATE_MARKERS = ("rebase-merge", "rebase-apply", "sequencer", "CHERRY_PICK_HEAD", "REVERT_HEAD", "MERGE_HEAD")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def repo(tmp_path: Path) -> EnvRepo:
    """A bare remote with ``overlays/app.yaml`` and ``overlays/other.yaml``, and a clone to push from."""
    src = tmp_path / "src"
    (src / "overlays").mkdir(parents=True)
    (src / "overlays" / "app.yaml").write_text("image: app:1\n")
    (src / "overlays" / "other.yaml").write_text("replicas: 1\n")
    remote, work = init_repo_with_remote(src, tmp_path / "repo")
    return EnvRepo(remote, work)


def run_git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run ``git args`` in ``cwd`` (stdout, stripped); with ``check`` a failure raises."""
    status, out, err = git.Git(str(cwd)).execute(
        ["git", *args], with_extended_output=True, with_exceptions=False
    )
    if check and status != 0:
        raise AssertionError(f"git {' '.join(args)} in {cwd}: {err}")
    return str(out).strip()


def has_object(gitdir: Path, sha: str) -> bool:
    status, _, _ = git.Git(str(gitdir)).execute(
        ["git", "cat-file", "-e", f"{sha}^{{commit}}"], with_extended_output=True, with_exceptions=False
    )
    return int(status) == 0


def remote_head(repo: EnvRepo) -> str:
    return run_git(repo.remote, "rev-parse", "refs/heads/main")


def writer(repo: EnvRepo, cache: Path) -> GitWriter:
    """A new GitWriter on ``cache``: what the next process after a kill creates."""
    return GitWriter(str(repo.remote), "main", cache, backoff=0.01)


def edit_commit_push(w: GitWriter, path: str, text: str) -> str:
    """The write path every user of GitWriter follows: sync, edit, commit, push."""
    with w.locked():
        w.sync()
        (w.workdir / path).write_text(text)
        sha = w.commit(f"set {path}", trailers={"Reason": "test"})
        assert sha is not None
        result = w.push()
    assert result.pushed_to == "main" and not result.fallback
    return sha


def assert_exactly_one_new_commit(repo: EnvRepo, base: str, path: str, text: str) -> str:
    """The remote's main is ``base`` plus exactly one commit, which changes only ``path`` to ``text``."""
    new = run_git(repo.remote, "rev-list", f"{base}..refs/heads/main").split()
    assert len(new) == 1, f"expected one new commit over {base[:7]}, found {new}"
    assert run_git(repo.remote, "rev-parse", f"{new[0]}^") == base
    assert run_git(repo.remote, "diff", "--name-only", base, new[0]).split() == [path]
    assert run_git(repo.remote, "show", f"{new[0]}:{path}") == text.strip()
    return new[0]


def push_from_work(repo: EnvRepo, path: str, text: str) -> str:
    """Another writer pushes ``path`` = ``text`` to the remote."""
    repo.write(path, text)
    return repo.commit(f"upstream: {path}")


def loose_object(gitdir: Path, sha: str) -> Path:
    path = gitdir / "objects" / sha[:2] / sha[2:]
    assert path.is_file(), f"{sha} is not a loose object in {gitdir}"
    return path


def assert_clean(w: GitWriter, repo: EnvRepo) -> None:
    """The working clone is on main at the remote's head, with no stopped operation and no changes."""
    gitdir = w.workdir / ".git"
    assert [m for m in STATE_MARKERS if (gitdir / m).exists()] == []
    assert run_git(w.workdir, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert run_git(w.workdir, "rev-parse", "HEAD") == remote_head(repo)
    assert run_git(w.workdir, "status", "--porcelain") == ""


def warned(caplog: pytest.LogCaptureFixture, *words: str) -> bool:
    return any(
        all(w in r.getMessage() for w in words) for r in caplog.records if r.levelno >= logging.WARNING
    )


# --------------------------------------------------------------------------- GitWriter: lock files

WRITER_LOCKS = [
    "index.lock",
    "HEAD.lock",
    "refs/heads/main.lock",
    "refs/remotes/origin/main.lock",
    "packed-refs.lock",
    "config.lock",
    "shallow.lock",
    "refs/notes/reconciler.lock",
]


@pytest.mark.parametrize("lock", WRITER_LOCKS)
def test_writer_removes_stale_lock_files_and_pushes_one_commit(
    repo: EnvRepo, tmp_path: Path, lock: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    writer(repo, cache).sync()
    base = remote_head(repo)
    stale = cache / "gitops"
    path = next(p for p in stale.iterdir() if p.is_dir()) / ".git" / lock
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("left by a killed git\n")
    caplog.set_level(logging.WARNING, logger="reconciler.git")

    w = writer(repo, cache)
    sha = edit_commit_push(w, APP, "image: app:2\n")

    assert not path.exists()
    assert warned(caplog, str(path))
    assert assert_exactly_one_new_commit(repo, base, APP, "image: app:2\n") == sha


def test_writer_lock_left_while_the_clone_is_open(repo: EnvRepo, tmp_path: Path) -> None:
    """A lock file appearing under an already-open writer (a git child killed alone) is removed too."""
    w = writer(repo, tmp_path / "cache")
    w.sync()
    base = remote_head(repo)
    (w.workdir / ".git" / "index.lock").write_text("")
    (w.workdir / ".git" / "refs" / "heads" / "main.lock").write_text("")
    edit_commit_push(w, OTHER, "replicas: 3\n")
    assert_exactly_one_new_commit(repo, base, OTHER, "replicas: 3\n")


# --------------------------------------------------------------------------- GitWriter: stopped operations


def _diverge(repo: EnvRepo, w: GitWriter) -> tuple[str, str]:
    """Make the clone and the remote change the same line: returns (local commit, remote commit)."""
    w.sync()
    theirs = push_from_work(repo, APP, "image: app:theirs\n")
    (w.workdir / APP).write_text("image: app:mine\n")
    run_git(w.workdir, "commit", "-q", "-am", "mine (never pushed)")
    run_git(w.workdir, "fetch", "-q", "origin")
    return run_git(w.workdir, "rev-parse", "HEAD"), theirs


def _stop_rebase(work: Path, theirs: str) -> None:
    run_git(work, "rebase", "origin/main", check=False)


def _stop_rebase_apply(work: Path, theirs: str) -> None:
    run_git(work, "rebase", "--apply", "origin/main", check=False)


def _stop_am(work: Path, theirs: str) -> None:
    patch = run_git(work, "format-patch", "-1", "--stdout", theirs)
    (work.parent / "theirs.patch").write_text(patch + "\n")
    run_git(work, "am", "-3", str(work.parent / "theirs.patch"), check=False)


def _stop_cherry_pick(work: Path, theirs: str) -> None:
    run_git(work, "cherry-pick", theirs, check=False)


def _stop_revert(work: Path, theirs: str) -> None:
    run_git(work, "revert", "--no-edit", theirs, check=False)


def _stop_merge(work: Path, theirs: str) -> None:
    run_git(work, "merge", "--no-edit", "origin/main", check=False)


def _stop_rebase_half_written(work: Path, theirs: str) -> None:
    """A rebase whose state directory the kill left half-written: ``git rebase --abort`` itself fails."""
    run_git(work, "rebase", "origin/main", check=False)
    for name in ("head-name", "orig-head", "onto"):
        (work / ".git" / "rebase-merge" / name).unlink()


STOPPED = {
    "rebase": (_stop_rebase, "rebase-merge"),
    "rebase-apply": (_stop_rebase_apply, "rebase-apply"),
    "am": (_stop_am, "rebase-apply"),
    "cherry-pick": (_stop_cherry_pick, "CHERRY_PICK_HEAD"),
    "revert": (_stop_revert, "REVERT_HEAD"),
    "merge": (_stop_merge, "MERGE_HEAD"),
    "rebase-half-written": (_stop_rebase_half_written, "rebase-merge"),
}


@pytest.mark.parametrize("how", sorted(STOPPED))
def test_writer_recovers_from_a_stopped_operation(repo: EnvRepo, tmp_path: Path, how: str) -> None:
    cache = tmp_path / "cache"
    w = writer(repo, cache)
    mine, theirs = _diverge(repo, w)
    stop, marker = STOPPED[how]
    stop(w.workdir, theirs)
    assert (w.workdir / ".git" / marker).exists(), f"{how} did not stop on the conflict"
    (w.workdir / ".git" / "index.lock").write_text("")  # killed while git held the index, too
    base = remote_head(repo)

    w2 = writer(repo, cache)
    assert w2.sync() == base
    assert_clean(w2, repo)
    sha = edit_commit_push(w2, OTHER, "replicas: 2\n")

    assert assert_exactly_one_new_commit(repo, base, OTHER, "replicas: 2\n") == sha
    assert run_git(repo.remote, "show", f"main:{APP}") == "image: app:theirs"
    assert not has_object(repo.remote, mine)  # the clone's unpushed commit never reached the remote


def test_writer_rollback_path_reset_hard_aborts_a_stopped_revert(repo: EnvRepo, tmp_path: Path) -> None:
    """``reset_hard`` (the rollback path after a failed revert) clears a stopped revert and locks."""
    w = writer(repo, tmp_path / "cache")
    _mine, theirs = _diverge(repo, w)
    start = w.sync()  # now at theirs; a local commit on top makes reverting theirs conflict
    (w.workdir / APP).write_text("image: app:mine\n")
    run_git(w.workdir, "commit", "-q", "-am", "mine (never pushed)")
    _stop_revert(w.workdir, theirs)
    assert (w.workdir / ".git" / "REVERT_HEAD").exists()
    (w.workdir / ".git" / "index.lock").write_text("")
    w.reset_hard(start)
    assert_clean(w, repo)


# --------------------------------------------------------------------------- GitWriter: damaged clones


@pytest.mark.parametrize("head", [b"", b"\x00\x17garbage", b"4f2a9c", b"ref: refs/he"], ids=repr)
def test_writer_recovers_from_a_garbled_head(repo: EnvRepo, tmp_path: Path, head: bytes) -> None:
    cache = tmp_path / "cache"
    w = writer(repo, cache)
    w.sync()
    base = remote_head(repo)
    (w.workdir / ".git" / "HEAD").write_bytes(head)

    sha = edit_commit_push(writer(repo, cache), APP, "image: app:3\n")
    assert assert_exactly_one_new_commit(repo, base, APP, "image: app:3\n") == sha


@pytest.mark.parametrize("what", ["commit", "tree"])
def test_writer_recovers_from_a_missing_object(
    repo: EnvRepo, tmp_path: Path, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    w = writer(repo, cache)
    base = w.sync()
    sha = base if what == "commit" else run_git(w.workdir, "rev-parse", "HEAD^{tree}")
    loose_object(w.workdir / ".git", sha).unlink()
    assert loose_object(Path(repo.remote), sha).is_file()  # only the clone's copy is gone
    caplog.set_level(logging.WARNING, logger="reconciler.git")

    new = edit_commit_push(writer(repo, cache), APP, "image: app:4\n")

    if what == "tree":  # a missing tip commit is fetched again; a missing tree needs a new clone
        assert warned(caplog, "damaged", "cloning")
    assert assert_exactly_one_new_commit(repo, base, APP, "image: app:4\n") == new


def test_writer_recovers_from_a_corrupt_index(repo: EnvRepo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    w = writer(repo, cache)
    base = w.sync()
    index = w.workdir / ".git" / "index"
    index.write_bytes(index.read_bytes()[:20])

    edit_commit_push(writer(repo, cache), OTHER, "replicas: 5\n")
    assert_exactly_one_new_commit(repo, base, OTHER, "replicas: 5\n")


def _partial_git_dir(work: Path) -> None:
    """What a clone killed early leaves: ``.git`` with HEAD and empty object/ref stores, no config."""
    (work / ".git" / "objects").mkdir(parents=True)
    (work / ".git" / "refs" / "heads").mkdir(parents=True)
    (work / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def _only_git_config(work: Path) -> None:
    (work / ".git").mkdir(parents=True)
    (work / ".git" / "config").write_text("[core]\n\trepositoryformatversion = 0\n")


def _files_without_git(work: Path) -> None:
    (work / "overlays").mkdir(parents=True)
    (work / "overlays" / "app.yaml").write_text("image: half\n")


@pytest.mark.parametrize("make", [_partial_git_dir, _only_git_config, _files_without_git])
def test_writer_replaces_a_half_made_clone(repo: EnvRepo, tmp_path: Path, make: object) -> None:
    cache = tmp_path / "cache"
    w = writer(repo, cache)
    assert callable(make)
    make(w.workdir)
    leftover = w.workdir.with_name(w.workdir.name + ".tmp12345")
    (leftover / ".git").mkdir(parents=True)  # a clone into the temporary directory, killed
    base = remote_head(repo)

    sha = edit_commit_push(w, APP, "image: app:5\n")

    assert assert_exactly_one_new_commit(repo, base, APP, "image: app:5\n") == sha
    assert not leftover.exists()
    assert sorted(p.name for p in (cache / "gitops").iterdir()) == sorted(
        [w.workdir.name, w.workdir.name + ".lock"]
    )


# --------------------------------------------------------------------------- GitWriter: unreachable remote


def _remote_renamed(repo: EnvRepo, w: GitWriter) -> Path:
    gone = repo.remote.with_name("moved.git")
    repo.remote.rename(gone)
    return gone


def _connection_refused(repo: EnvRepo, w: GitWriter) -> Path:
    run_git(w.workdir, "remote", "set-url", "origin", "http://127.0.0.1:9/env.git")
    return repo.remote


@pytest.mark.parametrize("cut", [_remote_renamed, _connection_refused])
def test_writer_unreachable_remote_raises_and_keeps_the_clone(
    repo: EnvRepo, tmp_path: Path, cut: object
) -> None:
    cache = tmp_path / "cache"
    w = writer(repo, cache)
    head = w.sync()
    (w.workdir / ".git" / "index.lock").write_text("")
    marker = w.workdir / ".git" / "objects" / "info" / "kept-marker"
    marker.write_text("this clone must not be replaced\n")
    again = writer(repo, cache)  # the next process (its URL is the configured path)
    assert callable(cut)
    moved = cut(repo, w)

    with pytest.raises(SourceError):
        again.sync()

    assert marker.is_file()
    assert run_git(w.workdir, "rev-parse", "HEAD") == head
    if moved != repo.remote:
        moved.rename(repo.remote)
    else:
        run_git(w.workdir, "remote", "set-url", "origin", str(repo.remote))
    assert again.sync() == head
    assert marker.is_file()


# --------------------------------------------------------------------------- GitWriter: unpushed work


def test_unpushed_commit_from_before_a_kill_is_never_pushed(repo: EnvRepo, tmp_path: Path) -> None:
    """A process really killed (failpoint ``commit``: SIGKILL) between its commit and its push; the
    next operation pushes only its own commit."""
    cache = tmp_path / "cache"
    base = writer(repo, cache).sync()
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from reconciler.source.gitops import GitWriter
        w = GitWriter({str(repo.remote)!r}, "main", Path({str(cache)!r}))
        with w.locked():
            w.sync()
            (w.workdir / {APP!r}).write_text("image: app:killed\\n")
            w.commit("never pushed")
            w.push()
        """
    )
    env = {**os.environ, "RECONCILER_FAILPOINTS": "commit=1", "PYTHONPATH": str(REPO_ROOT)}
    env.pop("RECONCILER_FAILPOINTS_FILE", None)
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, start_new_session=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "failpoint commit hit 1" in proc.stderr
    assert remote_head(repo) == base
    w = writer(repo, cache)
    assert run_git(w.workdir, "show", f"HEAD:{APP}") == "image: app:killed"  # the unpushed commit is there

    sha = edit_commit_push(w, OTHER, "replicas: 7\n")

    assert assert_exactly_one_new_commit(repo, base, OTHER, "replicas: 7\n") == sha
    assert run_git(repo.remote, "show", f"main:{APP}") == "image: app:1"


def test_unpushed_note_from_before_a_kill_is_never_pushed(repo: EnvRepo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    w = writer(repo, cache)
    head = w.sync()
    run_git(w.workdir, "notes", f"--ref={NOTES_REF}", "add", "-m", "stale: never pushed", head)

    assert writer(repo, cache).add_note(head, "fresh")

    assert run_git(repo.remote, "notes", f"--ref={NOTES_REF}", "show", head) == "fresh"


# --------------------------------------------------------------------------- GitSource


def source(repo: EnvRepo, cache: Path) -> GitSource:
    """A new GitSource on ``cache``: what the next process after a kill creates."""
    return GitSource(str(repo.remote), "main", cache)


def assert_snapshot(src: GitSource, sha: str, files: dict[str, str]) -> None:
    rev = src.fetch()
    assert rev.sha == sha
    snap = src.snapshot(rev)
    assert (snap.root / ".complete").is_file()
    got = {str(p.relative_to(snap.root)): p.read_text() for p in snap.root.rglob("*") if p.is_file()}
    got.pop(".complete")
    assert got == files
    assert not [p for p in src.snapshot_dir.iterdir() if p.name.endswith(".tmp")]


SOURCE_LOCKS = [
    "HEAD.lock",
    "refs/heads/main.lock",
    "packed-refs.lock",
    "config.lock",
    "shallow.lock",
    "objects/info/commit-graph.lock",
]


@pytest.mark.parametrize("lock", SOURCE_LOCKS)
def test_source_fetch_removes_stale_lock_files(
    repo: EnvRepo, tmp_path: Path, lock: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    src = source(repo, cache)
    src.fetch()
    path = src.clone_dir / lock
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    new = push_from_work(repo, APP, "image: app:6\n")
    caplog.set_level(logging.WARNING, logger="reconciler.git")

    assert_snapshot(source(repo, cache), new, {APP: "image: app:6\n", OTHER: "replicas: 1\n"})

    assert not path.exists()
    assert warned(caplog, str(path))


def test_source_lock_left_while_the_clone_is_open(repo: EnvRepo, tmp_path: Path) -> None:
    src = source(repo, tmp_path / "cache")
    src.fetch()
    (src.clone_dir / "refs" / "heads" / "main.lock").write_text("")
    new = push_from_work(repo, OTHER, "replicas: 8\n")
    assert src.fetch().sha == new


@pytest.mark.parametrize("head", [b"", b"garbage\n"], ids=repr)
def test_source_recovers_from_a_garbled_head(repo: EnvRepo, tmp_path: Path, head: bytes) -> None:
    cache = tmp_path / "cache"
    src = source(repo, cache)
    src.fetch()
    (src.clone_dir / "HEAD").write_bytes(head)
    new = push_from_work(repo, APP, "image: app:7\n")
    assert_snapshot(source(repo, cache), new, {APP: "image: app:7\n", OTHER: "replicas: 1\n"})


@pytest.mark.parametrize("what", ["blob", "tree", "commit"])
def test_source_recovers_from_a_missing_object(repo: EnvRepo, tmp_path: Path, what: str) -> None:
    cache = tmp_path / "cache"
    src = source(repo, cache)
    rev = src.fetch()
    rev_spec = {"blob": f"{rev.sha}:{APP}", "tree": f"{rev.sha}^{{tree}}", "commit": rev.sha}[what]
    sha = run_git(src.clone_dir, "rev-parse", rev_spec)
    loose_object(src.clone_dir, sha).unlink()
    assert loose_object(Path(repo.remote), sha).is_file()

    assert_snapshot(source(repo, cache), rev.sha, {APP: "image: app:1\n", OTHER: "replicas: 1\n"})


def _source_only_head(clone: Path) -> None:
    clone.mkdir(parents=True)
    (clone / "HEAD").write_text("ref: refs/heads/main\n")


def _source_empty_stores(clone: Path) -> None:
    _source_only_head(clone)
    (clone / "objects").mkdir()
    (clone / "refs").mkdir()


def _source_no_head(clone: Path) -> None:
    (clone / "objects" / "pack").mkdir(parents=True)
    (clone / "objects" / "pack" / "tmp_pack_x").write_bytes(b"PACK")


@pytest.mark.parametrize("make", [_source_only_head, _source_empty_stores, _source_no_head])
def test_source_replaces_a_half_made_clone(repo: EnvRepo, tmp_path: Path, make: object) -> None:
    cache = tmp_path / "cache"
    src = source(repo, cache)
    assert callable(make)
    make(src.clone_dir)
    leftover = src.clone_dir.with_name(src.clone_dir.name + ".tmp999")
    (leftover / "objects").mkdir(parents=True)
    head = remote_head(repo)

    assert_snapshot(src, head, {APP: "image: app:1\n", OTHER: "replicas: 1\n"})
    assert not leftover.exists()


def test_source_unreachable_remote_raises_and_keeps_the_clone(repo: EnvRepo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    src = source(repo, cache)
    rev = src.fetch()
    (src.clone_dir / "packed-refs.lock").write_text("")
    marker = src.clone_dir / "objects" / "info" / "kept-marker"
    marker.write_text("this clone must not be replaced\n")
    again = source(repo, cache)  # the next process (its URL is the configured path)
    moved = repo.remote.with_name("moved.git")
    repo.remote.rename(moved)

    with pytest.raises(SourceError):
        again.fetch()

    assert marker.is_file()
    assert run_git(src.clone_dir, "rev-parse", "refs/heads/main") == rev.sha
    moved.rename(repo.remote)
    assert again.fetch() == rev
    assert marker.is_file()


def test_source_snapshot_ignores_half_extracted_leftovers(repo: EnvRepo, tmp_path: Path) -> None:
    """A kill during extraction leaves ``<sha>.tmp``; one during snapshot GC leaves ``<sha>.gc.tmp``; a
    snapshot directory without its ``.complete`` marker is never used."""
    cache = tmp_path / "cache"
    src = source(repo, cache)
    rev = src.fetch()
    src.snapshot_dir.mkdir(parents=True, exist_ok=True)
    half = src.snapshot_dir / f"{rev.sha}.tmp"
    (half / "overlays").mkdir(parents=True)
    (half / "overlays" / "app.yaml").write_text("image: ha")
    unmarked = src.snapshot_dir / rev.sha
    (unmarked / "overlays").mkdir(parents=True)
    (unmarked / "overlays" / "app.yaml").write_text("image: ha")
    gone = src.snapshot_dir / ("0" * 40 + ".gc.tmp")
    (gone / "overlays").mkdir(parents=True)

    assert_snapshot(source(repo, cache), rev.sha, {APP: "image: app:1\n", OTHER: "replicas: 1\n"})
    assert not gone.exists()
