"""Watch a local repository for new commits with watchdog (debounced, by ref value).

The daemon reads the repository it watches: every fetch opens ``HEAD``, ``config`` and the branch's ref.
inotify reports those reads as ``opened`` and ``closed_no_write`` events, and a watcher that woke on any
event started a pass that fetched again, which woke it again: a busy loop with nothing changing. So the
watcher reacts only to events that write (created, modified, moved, deleted, closed after writing), and
even then calls back only when the watched ref's value changed. Writes that leave the branch where it was
(``refs/notes/*``, ``FETCH_HEAD``, ``git gc`` packing loose refs, another branch) start nothing.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

#: Event types that change a file. ``opened`` and ``closed_no_write`` (reads) are left out.
WRITE_EVENTS = frozenset(
    {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_DELETED, EVENT_TYPE_CLOSED}
)


class _Handler(FileSystemEventHandler):
    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in WRITE_EVENTS:  # a read of the repository (our own fetch) is no change
            return
        path = str(getattr(event, "dest_path", "") or event.src_path)  # a ref is written as x.lock → x
        if "/objects/" in path or path.endswith(".lock"):
            return
        self._fire()


def resolve_ref(git_dir: Path, ref: str) -> str | None:
    """The commit id ``ref`` (``refs/heads/main``, ``HEAD``) resolves to in the repository whose Git
    directory is ``git_dir``, or ``None`` when it does not exist (yet). Runs ``git rev-parse``, which
    reads loose and packed refs alike; raises nothing (a repository in the middle of an update reads as
    ``None``)."""
    try:
        proc = subprocess.run(
            ["git", "--git-dir", str(git_dir), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


class RepoWatcher:
    """Calls ``callback`` when ``ref`` of the repository at ``path`` takes a new value (a new commit, a
    push, a reset), at most once per ``debounce`` seconds of quiet. Works for working copies (watches
    ``.git``) and bare repositories. Reads of the repository and writes that leave ``ref`` where it was
    call nothing (see the module docstring).

    Args:
        path: a local repository.
        callback: called from a timer thread.
        debounce: seconds of quiet before the ref is read and compared.
        ref: the ref whose value matters (``refs/heads/<branch>``; ``HEAD`` follows the checked-out
            branch).
    """

    def __init__(
        self, path: Path, callback: Callable[[], None], debounce: float = 0.3, *, ref: str = "HEAD"
    ) -> None:
        git_dir = path / ".git"
        self.git_dir = git_dir if git_dir.is_dir() else path
        self.ref = ref
        self._callback = callback
        self._debounce = debounce
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._observer = Observer()
        self._last: str | None = None
        self.fired = 0  # callbacks made (the ref changed)
        self.woken = 0  # debounced wake-ups that read the ref (changed or not)

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:  # an event still in flight when stop() ran: no callback after stop
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._debounce, self._check)
            self._timer.daemon = True
            self._timer.start()

    def _check(self) -> None:
        """Read the ref and call back when its value differs from the last one seen."""
        value = resolve_ref(self.git_dir, self.ref)
        with self._lock:
            self.woken += 1
            if self._stopped or value is None or value == self._last:
                return
            self._last = value
            self.fired += 1
        self._callback()

    def start(self) -> None:
        """Remember the ref's current value and start watching (a background thread)."""
        self._last = resolve_ref(self.git_dir, self.ref)
        handler = _Handler(self._fire)
        # refs only: HEAD/packed-refs in the Git directory, loose refs below refs/ (not the object store)
        self._observer.schedule(handler, str(self.git_dir), recursive=False)
        if (self.git_dir / "refs").is_dir():
            self._observer.schedule(handler, str(self.git_dir / "refs"), recursive=True)
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        """Stop watching: a pending callback is cancelled and no new one is scheduled (one already running
        may still finish)."""
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
        self._observer.stop()
        self._observer.join(timeout=5)
