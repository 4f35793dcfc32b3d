"""The only place with the event loop: triggers → per-environment coalescing queue → passes."""

from reconciler.runtime.daemon import Daemon

__all__ = ["Daemon"]
