"""Helpers for the fault tests: stop and restart one component of a :class:`LocalCluster`, wait for it,
fill a file system, and report recovery figures.

``LocalCluster`` has no API to stop or start a single component yet; these helpers use the pids it records
in ``state.json`` and restart a component with the exact command line it was started with (read from
``/proc/<pid>/cmdline``), in the same process group layout (``process.start``), then record the new pid.
"""

from __future__ import annotations

import contextlib
import errno
import json
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from reconciler_testing import kill_group, report_figure

from reconciler.devcluster import LocalCluster, process


class EnvRepo(Protocol):
    """What the tests use of the ``env_repo`` fixture (tests/conftest.py's EnvRepo); a protocol, so this
    module does not import a ``conftest`` module by name (several test folders have one)."""

    remote: Path
    work: Path

    def write(self, rel: str, text: str) -> None:
        """Write a file in the clone."""

    def commit(self, message: str) -> str:
        """Commit everything and push; returns the commit id."""


def argv_of(pid: int) -> list[str]:
    """The command line of a running process."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [a.decode() for a in raw.rstrip(b"\0").split(b"\0")]


def stop_component(cluster: LocalCluster, name: str, *, kill: bool = True) -> list[str]:
    """Stop one component (SIGKILL to its process group when ``kill``, else SIGTERM then SIGKILL) and
    return its command line for :func:`start_component`."""
    st = cluster.load_state()
    assert st is not None, "the cluster is not running"
    pid = st.pids[name]
    argv = argv_of(pid)
    if kill:
        with contextlib.suppress(AssertionError):  # as before: what is left is the restart's problem
            kill_group(pid)
    else:
        process.stop_group(pid)
    assert not process.alive(pid), f"{name} (pid {pid}) is still alive"
    return argv


def start_component(cluster: LocalCluster, name: str, argv: list[str]) -> int:
    """Start a component again with ``argv``; record its new pid in the cluster state."""
    st = cluster.load_state()
    assert st is not None
    pid = process.start(name, argv, Path(st.logs[name]), cluster.state_dir)
    st.pids[name] = pid
    state_file = cluster.state_dir / "state.json"
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(st), indent=2))
    tmp.replace(state_file)
    return pid


def _tls(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def apiserver_ready(cluster: LocalCluster) -> bool:
    """Whether the cluster's API server answers ``/readyz`` with 200."""
    st = cluster.load_state()
    assert st is not None
    try:
        with urllib.request.urlopen(
            st.apiserver_url + "/readyz", timeout=2, context=_tls(cluster.state_dir / "pki")
        ) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def nats_ready(cluster: LocalCluster) -> bool:
    """Whether the cluster's nats-server reports JetStream healthy."""
    st = cluster.load_state()
    assert st is not None
    try:
        url = st.nats_monitor_url + "/healthz?js-enabled-only=true"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``pred`` until it returns a truthy value (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def report(name: str, seconds: float, **detail: Any) -> str:
    """Print a recovery figure (``RELIABILITY name seconds``): :func:`reconciler_testing.report_figure`."""
    return report_figure(name, seconds, **detail)


# -- disk full ----------------------------------------------------------------------------------------


def mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` (``2m``) at ``path``; returns why it could not, or ``None`` on success."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return f"mount -t tmpfs failed: {proc.stderr.strip() or proc.returncode}"
    return None


def unmount(path: Path) -> None:
    """Unmount ``path`` (lazily when busy)."""
    proc = subprocess.run(["umount", str(path)], capture_output=True, check=False)
    if proc.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` until a write fails with ENOSPC; returns the filler file."""
    filler = directory / "filler.bin"
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        while True:  # the last partial block
            try:
                f.write(b"\0" * 512)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


class Filler(threading.Thread):
    """Keeps the file system of ``directory`` full: writes until ENOSPC, then tops up every 20 ms whatever
    other writers free (a cache that deletes a clone to re-clone must not get its space back). ``stop``
    ends it and deletes what it wrote."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True, name="disk-filler")
        self.directory = directory
        self._stop_event = threading.Event()
        self.full = threading.Event()
        self.files: list[Path] = []

    def _top_up(self) -> None:
        path = self.directory / f"filler-{len(self.files)}.bin"
        self.files.append(path)
        with open(path, "wb", buffering=0) as f:
            for block in (65536, 4096, 512, 1):
                while True:
                    try:
                        f.write(b"\0" * block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._top_up()
            self.full.set()
            self._stop_event.wait(0.02)

    def stop(self) -> None:
        """Stop topping up and free the space."""
        self._stop_event.set()
        self.join(10)
        for p in self.files:
            p.unlink(missing_ok=True)
