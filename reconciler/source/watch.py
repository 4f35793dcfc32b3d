"""Watch a local repository for new commits with watchdog (debounced)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer


class _Handler(FileSystemEventHandler):
    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = str(getattr(event, "dest_path", "") or event.src_path)  # a ref is written as x.lock → x
        if "/objects/" in path or path.endswith(".lock"):
            return
        self._fire()


class RepoWatcher:
    """Calls ``callback`` (at most once per ``debounce`` seconds of quiet) when refs of the repository at
    ``path`` change: new commits, fetches, resets. Works for working copies (watches ``.git``) and bare
    repositories.

    Args:
        path: a local repository.
        callback: called from a timer thread.
        debounce: seconds of quiet before the callback fires.
    """

    def __init__(self, path: Path, callback: Callable[[], None], debounce: float = 0.3) -> None:
        git_dir = path / ".git"
        self.git_dir = git_dir if git_dir.is_dir() else path
        self._callback = callback
        self._debounce = debounce
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._observer = Observer()

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:  # an event still in flight when stop() ran: no callback after stop
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._debounce, self._callback)
            self._timer.daemon = True
            self._timer.start()

    def start(self) -> None:
        """Start watching (a background thread)."""
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
