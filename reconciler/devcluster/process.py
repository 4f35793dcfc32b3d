"""Supervised child processes: each in its own process group, with its output in a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from reconciler.errors import ReconcilerError


class ComponentError(ReconcilerError):
    """A component of the local cluster failed to start; names the component and its log file."""

    def __init__(self, component: str, log: Path | None, message: str) -> None:
        tail = ""
        if log is not None and log.exists():
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tail = "\n  | " + "\n  | ".join(lines) if lines else ""
        where = f" (log: {log})" if log else ""
        super().__init__(f"{component}: {message}{where}{tail}")
        self.component = component
        self.log = log


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def listener_of(port: int) -> str:
    """Who listens on TCP ``port`` (any local address): ``"pid 123 (nginx)"``, or ``""`` when it cannot be
    told (nothing listens, or the process belongs to another user)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return ""
    wanted = {f"socket:[{i}]" for i in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                        comm = Path(f"/proc/{entry}/comm").read_text().strip()
                        return f"pid {entry} ({comm})"
    return ""


def start(component: str, cmd: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start ``cmd`` in a new session (its own process group), output appended to ``log``.

    Returns the pid (which is also the process group id).

    Raises:
        ComponentError: when the executable is missing or exits within 0.3 s.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    if not Path(cmd[0]).exists():
        raise ComponentError(component, None, f"executable {cmd[0]} does not exist")
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, MARKER: str(cwd), **(env or {})},
            start_new_session=True,
        )
    time.sleep(0.3)
    if proc.poll() is not None:
        raise ComponentError(component, log, f"exited at start with code {proc.returncode}")
    return proc.pid


def alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def started_for(pid: int, state_dir: str) -> bool:
    """Whether ``pid`` is alive and was started for the cluster in ``state_dir`` (it carries the
    ``RECONCILER_DEVCLUSTER_STATE`` marker that :func:`start` gives each component). A recorded pid that
    another process reuses after a reboot is not ours: it is never signalled, and counts as stopped."""
    if not alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = b"\0" + f.read() + b"\0"
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return b"\0" + f"{MARKER}={state_dir}".encode() + b"\0" in environ


def stop_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group ``pid``, then SIGKILL it after ``timeout`` seconds; reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid) and not group_members(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not alive(pid) and not group_members(pid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is ``pgid``."""
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            out.append(int(entry))
    return out


MARKER = "RECONCILER_DEVCLUSTER_STATE"


def processes_of(state_dir: str) -> list[int]:
    """Live pids started for the cluster in ``state_dir``, found by the ``RECONCILER_DEVCLUSTER_STATE``
    environment marker that :func:`start` gives each component (inherited by its children)."""
    out: list[int] = []
    needle = f"{MARKER}={state_dir}".encode() + b"\0"
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read() + b"\0"
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if needle in environ and alive(int(entry)):
            out.append(int(entry))
    return out


def marked_processes() -> dict[int, str]:
    """Every live process started for some local cluster: pid → its state directory (from the
    ``RECONCILER_DEVCLUSTER_STATE`` marker)."""
    out: dict[int, str] = {}
    prefix = MARKER.encode() + b"="
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for var in environ.split(b"\0"):
            if var.startswith(prefix) and alive(int(entry)):
                out[int(entry)] = var[len(prefix) :].decode(errors="replace")
                break
    return out
