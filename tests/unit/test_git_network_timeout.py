"""A remote that accepts the connection and then never answers: fetch and push are killed after
``NETWORK_TIMEOUT`` seconds with a SourceError, and the clone stays usable."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.source import git as gitsource
from reconciler.source import gitops
from reconciler.source.bootstrap import init_repo_with_remote
from reconciler.source.git import GitSource
from reconciler.source.gitops import GitWriter


@pytest.fixture
def silent_remote() -> Iterator[str]:
    """``git://127.0.0.1:<port>/env.git``: accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"git://127.0.0.1:{server.getsockname()[1]}/env.git"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "envs").mkdir(parents=True)
    (src / "envs" / "dev.yaml").write_text("overlay: overlays/dev\n")
    bare, _work = init_repo_with_remote(src, tmp_path / "repo")
    return bare


def test_source_fetch_from_a_silent_remote_is_killed(
    remote: Path, silent_remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitsource, "NETWORK_TIMEOUT", 2.0)
    src = GitSource(str(remote), "main", tmp_path / "cache")
    first = src.fetch()
    src.url = silent_remote  # the same clone, now fetching from a remote that hangs
    with pytest.raises(SourceError, match="git fetch"):
        src.fetch()
    src.url = str(remote)
    assert src.fetch().sha == first.sha  # the clone is still usable


def test_writer_sync_and_push_to_a_silent_remote_are_killed(
    remote: Path, silent_remote: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitops, "NETWORK_TIMEOUT", 2.0)
    writer = GitWriter(str(remote), "main", tmp_path / "cache")
    head = writer.sync()
    writer._git("remote", "set-url", "origin", silent_remote)
    with pytest.raises(SourceError, match="fetch"):
        writer.sync()
    (writer.workdir / "envs" / "dev.yaml").write_text("overlay: overlays/dev\nnamespace: x\n")
    assert writer.commit("a change") is not None
    with pytest.raises(SourceError, match="push"):
        writer.push()
    writer._git("remote", "set-url", "origin", str(remote))
    assert writer.sync() == head  # the unpushed commit is gone, the clone works
    writer.close()
