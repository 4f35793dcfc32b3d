"""GitWriter on real bare remotes: commits with trailers, no empty commits, push races, protected
branches, true reverts and notes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from _promote_support import Remote, git, make_remote

from reconciler.errors import SourceError
from reconciler.source.gitops import GitWriter, NothingToRevert, RevertConflict, compose_message


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path / "repo", {"a.txt": "one\n", "b.txt": "bee\n"})


def _writer(remote: Remote, tmp_path: Path, name: str = "cache") -> GitWriter:
    return GitWriter(str(remote.bare), "main", tmp_path / name, backoff=0.01)


def test_commit_with_trailers_and_never_empty(remote: Remote, tmp_path: Path) -> None:
    w = _writer(remote, tmp_path)
    head = w.sync()
    assert head == remote.head()
    assert w.commit("nothing changed") is None  # no empty commit
    (w.workdir / "a.txt").write_text("two\n")
    sha = w.commit(
        "change a\n\nbody text",
        trailers={"Promotion-To": "staging", "Image": ["x=ghcr.io/x:1@sha256:" + "1" * 64, "y=y:2"]},
    )
    assert sha is not None
    assert w.commit("again nothing") is None
    info = w.log(max_count=1)[0]
    assert info.sha == sha and info.parents == [head]
    assert info.subject == "change a"
    assert info.trailers == {
        "Promotion-To": ["staging"],
        "Image": ["x=ghcr.io/x:1@sha256:" + "1" * 64, "y=y:2"],
    }
    assert info.first("promotion-to") == "staging"
    # git itself reads the same trailers
    parsed = git(w.workdir, "log", "-1", "--format=%(trailers:key=Image,valueonly)")
    assert parsed.splitlines() == ["x=ghcr.io/x:1@sha256:" + "1" * 64, "y=y:2"]
    r = w.push()
    assert (r.pushed_to, r.fallback, r.sha, r.attempts) == ("main", False, sha, 1)
    assert remote.head() == sha


def test_bad_trailers_are_refused() -> None:
    with pytest.raises(ValueError, match="must be one line"):
        compose_message("x", {"Reason": "a\nb"})
    with pytest.raises(ValueError, match="letters, digits"):
        compose_message("x", {"Bad Key": "v"})
    with pytest.raises(ValueError, match="empty"):
        compose_message("  ", None)


def test_sync_discards_local_state(remote: Remote, tmp_path: Path) -> None:
    w = _writer(remote, tmp_path)
    w.sync()
    (w.workdir / "a.txt").write_text("dirty\n")
    (w.workdir / "untracked.txt").write_text("x")
    w.commit("local only")
    assert w.sync() == remote.head()
    assert (w.workdir / "a.txt").read_text() == "one\n"
    assert not (w.workdir / "untracked.txt").exists()
    assert git(w.workdir, "status", "--porcelain") == ""


def test_non_fast_forward_is_rebased_and_retried(remote: Remote, tmp_path: Path) -> None:
    w = _writer(remote, tmp_path)
    w.sync()
    (w.workdir / "a.txt").write_text("ours\n")
    ours = w.commit("ours", trailers={"Promotion-To": "dev"})
    assert ours
    remote.write("b.txt", "theirs\n")
    theirs = remote.commit("another writer")
    r = w.push()
    assert r.pushed_to == "main" and not r.fallback and r.attempts == 2
    assert r.sha != ours  # rebased onto theirs
    log = w.log(max_count=3)
    assert [c.subject for c in log[:2]] == ["ours", "another writer"]
    assert log[0].parents == [theirs] and log[0].first("Promotion-To") == "dev"
    assert remote.head() == r.sha
    assert remote.file_at("main", "b.txt") == "theirs" and remote.file_at("main", "a.txt") == "ours"


def test_conflicting_race_fails_cleanly(remote: Remote, tmp_path: Path) -> None:
    w = _writer(remote, tmp_path)
    w.sync()
    (w.workdir / "a.txt").write_text("ours\n")
    w.commit("ours")
    remote.write("a.txt", "theirs\n")
    theirs = remote.commit("theirs on the same line")
    with pytest.raises(SourceError, match="conflict"):
        w.push()
    assert remote.head() == theirs
    assert w.sync() == theirs


def test_protected_branch_falls_back_to_a_branch(remote: Remote, tmp_path: Path) -> None:
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  if [ "$ref" = refs/heads/main ]; then echo "main is protected" >&2; exit 1; fi\n'
        "done\nexit 0\n"
    )
    hook.chmod(0o755)
    before = remote.head()
    w = _writer(remote, tmp_path)
    w.sync()
    (w.workdir / "a.txt").write_text("protected\n")
    sha = w.commit("try main")
    assert sha
    r = w.push()
    assert r.fallback and r.pushed_to == f"reconciler/main/{sha[:7]}" and r.sha == sha
    assert "remote rejected" in r.reason
    assert remote.head() == before
    assert git(remote.bare, "rev-parse", f"refs/heads/reconciler/main/{sha[:7]}") == sha


def test_revert_is_a_true_git_revert(remote: Remote, tmp_path: Path) -> None:
    c0 = remote.head()
    remote.write("a.txt", "changed\n")
    c1 = remote.commit("change a")
    w = _writer(remote, tmp_path)
    w.sync()
    c2 = w.revert(c1, trailers={"Rollback-Of": c1, "Reason": "bad"})
    info = w.log(max_count=1)[0]
    assert info.sha == c2 and info.parents == [c1]
    assert info.subject == 'Revert "change a"'
    assert f"This reverts commit {c1}." in info.body
    assert info.reverts == c1 and info.first("Reason") == "bad"
    assert w.tree(c2) == w.tree(c0)
    with pytest.raises(NothingToRevert):
        w.revert(c1)
    assert w.head() == c2 and git(w.workdir, "status", "--porcelain") == ""


def test_revert_conflict_leaves_nothing(remote: Remote, tmp_path: Path) -> None:
    remote.write("a.txt", "p1\n")
    p1 = remote.commit("p1")
    remote.write("a.txt", "hotfix\n")
    h = remote.commit("h")
    w = _writer(remote, tmp_path)
    w.sync()
    with pytest.raises(RevertConflict):
        w.revert(p1)
    assert w.head() == h
    assert git(w.workdir, "status", "--porcelain") == ""
    assert not (w.workdir / ".git" / "REVERT_HEAD").exists()


def test_revert_of_a_merge_uses_the_mainline(remote: Remote, tmp_path: Path) -> None:
    c0 = remote.head()
    git(remote.work, "checkout", "-q", "-b", "feature")
    remote.write("b.txt", "feature\n")
    git(remote.work, "add", "-A")
    git(remote.work, "commit", "-q", "-m", "feature")
    git(remote.work, "push", "-q", "origin", "feature")
    m = remote.merge("feature")
    w = _writer(remote, tmp_path)
    w.sync()
    r = w.revert(m)
    assert w.tree(r) == w.tree(c0)


def test_notes_are_pushed_appended_and_idempotent(remote: Remote, tmp_path: Path) -> None:
    sha = remote.head()
    a = _writer(remote, tmp_path, "a")
    b = _writer(remote, tmp_path, "b")
    a.sync()
    b.sync()
    assert a.add_note(sha, '{"environment": "dev"}') is True
    assert a.add_note(sha, '{"environment": "dev"}') is False  # same line: nothing written
    # b has a stale notes ref: it fetches first, so both lines survive
    assert b.add_note(sha, '{"environment": "staging"}') is True
    assert git(remote.bare, "notes", "--ref=reconciler", "show", sha).splitlines() == [
        '{"environment": "dev"}',
        '{"environment": "staging"}',
    ]
    a.sync()
    assert a.notes() == {sha: '{"environment": "dev"}\n{"environment": "staging"}\n'}


def test_concurrent_note_writers_lose_nothing(remote: Remote, tmp_path: Path) -> None:
    sha = remote.head()
    writers = [_writer(remote, tmp_path, f"w{i}") for i in range(3)]
    for w in writers:
        w.sync()
    errors: list[BaseException] = []

    def write(i: int, w: GitWriter) -> None:
        try:
            for j in range(3):
                w.add_note(sha, f"writer {i} line {j}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i, w)) for i, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    lines = git(remote.bare, "notes", "--ref=reconciler", "show", sha).splitlines()
    assert sorted(lines) == sorted(f"writer {i} line {j}" for i in range(3) for j in range(3))


def test_log_paths_ranges_and_files(remote: Remote, tmp_path: Path) -> None:
    c0 = remote.head()
    remote.write("dir/x.txt", "x\n")
    c1 = remote.commit("add x")
    remote.write("b.txt", "b2\n")
    c2 = remote.commit("change b")
    w = _writer(remote, tmp_path)
    w.sync()
    assert [c.sha for c in w.log(paths=["dir"])] == [c1]
    assert [c.sha for c in w.log(rev=f"{c0}..{c2}")] == [c2, c1]
    assert w.changed_files(c2) == ["b.txt"]
    assert w.read_file(c0, "dir/x.txt") is None and w.read_file(c1, "dir/x.txt") == "x"
    assert w.is_ancestor(c0, c2) and not w.is_ancestor(c2, c0)
    assert w.resolve(c1[:8]) == c1
    with pytest.raises(SourceError):
        w.resolve("no-such-rev")
    out = w.export(c1, tmp_path / "export")
    assert (out / "dir" / "x.txt").read_text() == "x\n" and not (out / ".git").exists()


def test_a_sync_is_reused_only_when_it_saw_the_remote_at_that_time_and_nothing_changed_since(
    remote: Remote, tmp_path: Path
) -> None:
    import time

    w = _writer(remote, tmp_path)
    before = time.monotonic()
    first = w.sync()
    calls: list[str] = []
    real = w._sync_once

    def counted() -> str:
        calls.append("sync")
        return real()

    w._sync_once = counted  # type: ignore[method-assign]
    assert w.sync(not_before=before) == first and calls == []  # started after `before`: reused
    remote.write("a.txt", "two\n")
    pushed = remote.commit("someone else's change")
    after = time.monotonic()
    assert w.sync(not_before=after) == pushed and calls == ["sync"]  # started before it: a real sync
    assert w.sync(not_before=after) == pushed and calls == ["sync"]
    w.add_note(pushed, "a pushed note leaves the sync good")
    assert w.sync(not_before=after) == pushed and calls == ["sync"]
    (w.workdir / "a.txt").write_text("edited\n")  # a caller given the working tree: synced again
    assert w.sync(not_before=after) == pushed and calls == ["sync", "sync"]
    assert (w._workdir / "a.txt").read_text() == "two\n"
    assert w.sync(not_before=after) == pushed and calls == ["sync", "sync"]
    # another process sharing the clone moves HEAD (w._workdir: the property would count as a change)
    git(w._workdir, "commit", "-q", "--allow-empty", "-m", "behind the writer's back")
    assert w.sync(not_before=after) == pushed and calls == ["sync", "sync", "sync"]
    assert w.sync() == pushed and len(calls) == 4  # without not_before: always


def test_notes_in_one_batch_are_one_push_and_idempotent(remote: Remote, tmp_path: Path) -> None:
    first = remote.head()
    remote.write("a.txt", "two\n")
    second = remote.commit("second")
    w = _writer(remote, tmp_path)
    w.sync()
    pushes: list[str] = []
    real = w._push_ref

    def counted(src: str, dst: str) -> tuple[str, str]:
        pushes.append(dst)
        return real(src, dst)

    w._push_ref = counted  # type: ignore[method-assign]
    written = w.add_notes([(first, "dev"), (second, "dev"), (first, "staging"), (first, "dev")])
    assert written == [True, True, True, False] and pushes == ["refs/notes/reconciler"]
    assert git(remote.bare, "notes", "--ref=reconciler", "show", first).splitlines() == ["dev", "staging"]
    assert w.add_notes([(first, "dev"), (second, "dev")]) == [False, False] and len(pushes) == 1
    with pytest.raises(ValueError):
        w.add_notes([(first, "\n")])
