"""Leader election for the daemon: only the holder of a Lease reconciles.

The elector tries to acquire the lease every ``retry`` seconds; once leader it renews at the same period
and calls ``on_lost`` when a renewal has not succeeded for ``duration`` seconds (the lease may already be
someone else's), as client-go's leaderelection does. Takeover after a crashed leader therefore takes at
most ``duration + retry`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from reconciler.cluster.lease import LeaseLock
from reconciler.errors import KubeError

log = logging.getLogger("reconciler.leader")


class LeaderElector:
    """Runs the acquire/renew loop for ``lock``.

    Args:
        lock: the Lease lock.
        retry: seconds between attempts.
    """

    def __init__(self, lock: LeaseLock, retry: float = 2.0) -> None:
        self.lock = lock
        self.retry = retry
        self.is_leader = False
        self.known = False  # whether leadership is known (for /readyz)
        self._last_renew = 0.0

    async def _attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self.lock.try_acquire_or_renew)
        except KubeError as exc:
            log.warning("lease %s: %s", self.lock.ref, exc)
            return False

    async def wait_until_leader(self) -> None:
        """Return once this candidate holds the lease."""
        while True:
            if await self._attempt():
                self.is_leader = True
                self.known = True
                self._last_renew = time.monotonic()
                return
            self.known = True
            await asyncio.sleep(self.retry)

    async def keep_renewing(self, on_lost: Callable[[], Awaitable[None]]) -> None:
        """Renew until leadership is lost (no successful renewal for the lease duration), then call
        ``on_lost`` and return."""
        while True:
            await asyncio.sleep(self.retry)
            if await self._attempt():
                self._last_renew = time.monotonic()
                continue
            if time.monotonic() - self._last_renew >= self.lock.duration - self.retry:
                self.is_leader = False
                log.error("lost leadership of %s", self.lock.ref)
                await on_lost()
                return

    async def release(self) -> None:
        """Release the lease (on a clean shutdown) so another candidate takes over at once."""
        if self.is_leader:
            with contextlib.suppress(KubeError):
                await asyncio.to_thread(self.lock.release)
            self.is_leader = False
