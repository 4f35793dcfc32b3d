"""Loopback servers for the remote-base tests (importable as ``remote_servers``: tests/ is on sys.path).

* :class:`GitDaemon`: ``git daemon`` on 127.0.0.1 serving bare repositories made by :meth:`GitDaemon.repo`.
  kustomize does not accept ``git://`` URLs, so the tests name repositories with the forms kustomize does
  accept (``https://127.0.0.1:PORT/…``, ``ssh://127.0.0.1:PORT/…``, ``git@127.0.0.1:…``) and Git's
  ``url.<base>.insteadOf`` (:meth:`GitDaemon.git_env`, given to the renderer and to kustomize alike) sends
  them to the daemon.
* :class:`HttpFiles`: an HTTP server on 127.0.0.1 answering fixed routes (files, statuses, redirects).
* :func:`blackhole`: a port that accepts connections and never answers; :func:`closed_port`: one that
  refuses them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import git


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A port that refuses connections."""
    return free_port()


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A port on 127.0.0.1 whose connections are accepted (by the kernel) and never answered."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


AUTHOR = git.Actor("remote-tests", "remote-tests@example.test")


class GitDaemon:
    """``git daemon --base-path=<base> --export-all --listen=127.0.0.1 --port=<free> --reuseaddr``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> GitDaemon:
        """Start the daemon and wait until it accepts connections."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._proc = subprocess.Popen(
            [
                "git",
                "daemon",
                f"--base-path={self.base}",
                "--export-all",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                "--reuseaddr",
                "--informative-errors",
                str(self.base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("git daemon did not start")

    def stop(self) -> None:
        """Stop the daemon and the processes it forked."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            self._proc.wait(timeout=10)
            self._proc = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def git_env(self) -> dict[str, str]:
        """Environment variables making Git send ``https://``, ``http://``, ``ssh://`` URLs of this host and
        ``git@127.0.0.1:`` to the daemon (``url.git://127.0.0.1:PORT/.insteadOf``)."""
        target = f"url.git://{self.host}/.insteadOf"
        aliases = [f"https://{self.host}/", f"http://{self.host}/", f"ssh://{self.host}/", "git@127.0.0.1:"]
        env = {"GIT_CONFIG_COUNT": str(len(aliases))}
        for i, alias in enumerate(aliases):
            env[f"GIT_CONFIG_KEY_{i}"] = target
            env[f"GIT_CONFIG_VALUE_{i}"] = alias
        return env

    def repo(
        self,
        name: str,
        files: dict[str, str | bytes],
        *,
        tags: tuple[str, ...] = (),
        annotated: tuple[str, ...] = (),
        branch: str = "main",
        submodules: dict[str, tuple[str, str]] | None = None,
    ) -> str:
        """Create (or add a commit to) the bare repository ``<base>/<name>.git`` holding ``files``.

        Args:
            name: e.g. ``acme/base``.
            files: path → content; the whole tree of the new commit.
            tags: lightweight tags on the new commit; ``annotated``: annotated ones.
            branch: the branch the commit goes to.
            submodules: path → (URL, commit) gitlinks recorded in the tree and ``.gitmodules``.

        Returns:
            the new commit id.
        """
        bare = self.base / f"{name}.git"
        if not bare.exists():
            git.Repo.init(bare, bare=True, initial_branch=branch).close()
        with tempfile.TemporaryDirectory() as tmp:
            work = git.Repo.clone_from(str(bare), tmp)
            try:
                with contextlib.suppress(git.exc.GitCommandError):
                    work.git.checkout("-B", branch)
                for entry in os.listdir(tmp):
                    if entry != ".git":
                        work.git.rm("-r", "-q", "--cached", "--ignore-unmatch", entry)
                        p = Path(tmp) / entry
                        if p.is_dir():
                            shutil.rmtree(p)
                        else:
                            p.unlink()
                for rel, content in files.items():
                    p = Path(tmp) / rel
                    p.parent.mkdir(parents=True, exist_ok=True)
                    if isinstance(content, bytes):
                        p.write_bytes(content)
                    else:
                        p.write_text(content)
                work.git.add("-A")
                if submodules:
                    lines = []
                    for path, (url, sha) in submodules.items():
                        work.git.update_index("--add", "--cacheinfo", f"160000,{sha},{path}")
                        lines.append(f'[submodule "{path}"]\n\tpath = {path}\n\turl = {url}\n')
                    (Path(tmp) / ".gitmodules").write_text("".join(lines))
                    work.git.add(".gitmodules")
                commit = work.index.commit(f"commit of {name}", author=AUTHOR, committer=AUTHOR)
                for tag in tags:
                    work.git.tag("-f", tag)
                for tag in annotated:
                    work.git.tag("-f", "-a", tag, "-m", f"release {tag}")
                work.git.push("--force", "origin", f"HEAD:refs/heads/{branch}", "--tags", "--force")
                git.Repo(bare).git.symbolic_ref("HEAD", f"refs/heads/{branch}")
                return str(commit.hexsha)
            finally:
                work.close()


class HttpFiles:
    """An HTTP server on 127.0.0.1 answering ``routes``: path (with query) → ``(status, body, headers)``."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.requests: list[str] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> HttpFiles:
        """Serve in a thread."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                status, body, headers = owner.routes.get(self.path, (404, b"not found\n", {}))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def url(self, path: str) -> str:
        """``http://127.0.0.1:<port><path>``."""
        return f"http://127.0.0.1:{self.port}{path}"
