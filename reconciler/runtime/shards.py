"""Sharding: N daemon replicas share the environments, each reconciled by one replica at a time.

Every replica keeps a heartbeat key and the leases it holds in one NATS JetStream key-value bucket
(:mod:`reconciler.bus.leases`, keys under ``<installation>.``):

- ``<installation>.replica.<replica>``: the heartbeat, rewritten every ``period`` seconds;
- ``<installation>.env.<environment>``: the lease of one environment, value ``{holder, name}``;
- ``<installation>.job.singleton``: the lease of the jobs that need one writer for the whole installation
  (image automation's Git commits and pull-request checks).

**Who takes what.** Each environment is assigned to a replica by rendezvous (highest random weight)
hashing over the live replicas with bounded load (:func:`assign`): the replicas' shares differ by one
at most, none above ``ceil(environments / live replicas)``. A replica acquires a free lease of an
environment assigned to it at once; a lease that stays free for ``ttl`` seconds (its replica does not
take it) is taken by any replica holding fewer than that share. A replica that holds an environment
assigned to another live replica hands it over: it starts no new pass of it, and deletes the lease once
its pass in progress has ended. Replicas joining or leaving therefore move few environments; a
replica acquires nothing in its first ``2 * period`` seconds after it has loaded its environments
(and, while it holds nothing, up to ``ttl`` seconds while other replicas still load theirs: their
heartbeats say ``ready: false``), so replicas started together divide the environments once, instead of
the fastest taking all and handing most over.

**Expiry without shared clocks.** A lease is held as long as its holder renews it (compare-and-swap on
the revision it last wrote) every ``period`` seconds. Another replica judges a lease expired when it has
seen the same revision for ``ttl`` seconds on its own monotonic clock, and takes it over with a
compare-and-swap on that revision, so of two replicas racing only one wins; this is how client-go's
leader election judges its Lease (observed time, not the holder's timestamps). Heartbeats expire the
same way. Takeover after a replica dies therefore takes at most ``ttl + 2 * period`` seconds.

**Fencing.** The holder counts from the moment it *sent* its last successful renewal: after
``fence = ttl - 2 * period`` seconds without another it stops writing for the environment (every write
of the environment's passes, drift corrections and removal goes through
:data:`reconciler.cluster.client.WRITE_FENCE`, which raises :class:`reconciler.errors.FencedError`). Any
other replica sees that revision no earlier than it was sent, so it takes over no earlier than ``ttl``
seconds after that: ``2 * period`` seconds after the old holder's last possible write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciler.bus import Bus, BusError, subject_token
from reconciler.bus.leases import LEASE_BUCKET, LeaseRecord, LeaseTable, LeaseValue
from reconciler.errors import FencedError

log = logging.getLogger("reconciler.shards")


def _about(name: str) -> dict[str, str]:
    """The log record fields of a lease's line: its ``environment`` (none for the one-writer jobs' lease)."""
    return {} if name == SINGLETON else {"environment": name}


_T = TypeVar("_T")

#: Seconds a lease (or heartbeat) unrenewed counts as held.
DEFAULT_TTL = 10.0
#: Seconds between two renewals (and between two reads of the bucket): ``ttl / 8``, so the fence window
#: (``ttl - 2 * period``, 7.5 s) outlasts a JetStream stream-leader election after a NATS node dies
#: (4-6 s measured on a loopback three-node cluster), and takeover (``ttl + 2 * period``) stays below 15 s.
DEFAULT_PERIOD = 1.25
#: The pseudo-name of the lease for the installation's one-writer jobs (a "/" no file name in envs/ has).
SINGLETON = "jobs/singleton"


def _weight(name: str, replica: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}\0{replica}".encode()).digest()[:8], "big")


def rendezvous(name: str, replicas: Iterable[str]) -> str:
    """The replica preferred for ``name``: the one with the highest ``sha256(name NUL replica)`` (highest
    random weight hashing); ``""`` when there is none."""
    ranked = sorted(replicas, key=lambda r: (-_weight(name, r), r))
    return ranked[0] if ranked else ""


def assign(names: Iterable[str], replicas: Iterable[str]) -> dict[str, str]:
    """Rendezvous hashing with bounded load: each name in sorted order goes to the first replica in its
    own ranking (highest ``sha256(name NUL replica)`` first) that has room, where every replica holds
    ``floor(names / replicas)`` and the first ``names mod replicas`` to fill up one more. Every replica
    computes the same assignment from the same names and live replicas; loads differ by at most one, and a
    replica joining or leaving moves few names.

    Returns:
        name → replica (empty when there is no replica).
    """
    pool = sorted(set(replicas))
    ordered = sorted(set(names))
    if not pool:
        return {}
    base, extra = divmod(len(ordered), len(pool))
    load = dict.fromkeys(pool, 0)
    out: dict[str, str] = {}
    for name in ordered:
        for r in sorted(pool, key=lambda r: (-_weight(name, r), r)):
            if load[r] < base or (load[r] == base and extra > 0):
                if load[r] == base:
                    extra -= 1
                out[name] = r
                load[r] += 1
                break
    return out


@dataclass
class _Held:
    key: str
    revision: int
    renewed_at: float  # monotonic time the last successful write was sent
    draining: bool = False  # being handed over: no new pass starts


@dataclass
class _Seen:
    revision: int
    since: float  # monotonic time this replica first saw that revision


class ShardMember:
    """One replica's membership: heartbeat, lease acquisition, renewal, hand-over and fencing.

    Args:
        url: the NATS URL.
        installation: the installation id (the daemon's :func:`reconciler.runtime.daemon.installation_id`):
            replicas of one installation share its environments.
        replica: this replica's unique name (pod name; host and pid by default).
        names: returns the environments to share, called every period.
        on_acquired: called (in the event loop) with an environment this replica has just taken.
        busy: whether a pass (or health gate) of an environment is still running here; a hand-over waits
            for it.
        ttl: seconds an unrenewed lease stays held (:data:`DEFAULT_TTL`).
        period: seconds between renewals (:data:`DEFAULT_PERIOD`), at most ``ttl / 3``; also the timeout of
            each call to NATS.
        replicas: copies NATS keeps of the lease bucket when it creates it.
        bucket: the bucket's name.
    """

    def __init__(
        self,
        url: str,
        installation: str,
        replica: str,
        names: Callable[[], Iterable[str]],
        *,
        on_acquired: Callable[[str], object] | None = None,
        busy: Callable[[str], bool] | None = None,
        ttl: float = DEFAULT_TTL,
        period: float = DEFAULT_PERIOD,
        replicas: int = 1,
        bucket: str = LEASE_BUCKET,
    ) -> None:
        if period * 3 > ttl:
            raise ValueError(f"shard lease: period {period} s must be at most a third of ttl {ttl} s")
        self.url = url
        self.installation = subject_token(installation)
        self.replica = replica
        self.names = names
        self.on_acquired = on_acquired
        self.busy = busy or (lambda _name: False)
        self.ttl = ttl
        self.period = period
        self.fence_after = ttl - 2 * period
        self.bus = Bus(url, name=f"reconciler-shards-{replica}")
        self.table = LeaseTable(self.bus, bucket=bucket, replicas=replicas)
        self.held: dict[str, _Held] = {}  # by environment (or SINGLETON for the jobs' lease)
        self.owners: dict[str, str] = {}  # environment → replica holding it, as last read
        self.live: list[str] = [replica]  # live replicas, as last read
        self.plan: dict[str, str] = {}  # environment → the replica it is assigned to, as last computed
        self.error = ""  # the last failure talking to NATS ("" after a good period)
        self._seen: dict[str, _Seen] = {}
        self._free_since: dict[str, float] = {}
        self._gone: dict[str, float] = {}  # held environments no longer listed: since when
        self._stopped = asyncio.Event()
        self._opened = False
        self._joined: float | None = None  # monotonic time of the first good read of the bucket
        self._ticking = asyncio.Lock()  # held during one period's work; stop() waits for it
        self._jobs_running = False  # the one-writer jobs run here (while_singleton)

    # -- keys ---------------------------------------------------------------------------------------

    def _env_key(self, name: str) -> str:
        if name == SINGLETON:
            return f"{self.installation}.job.singleton"
        return f"{self.installation}.env.{subject_token(name)}"

    def _replica_key(self, replica: str) -> str:
        return f"{self.installation}.replica.{subject_token(replica)}"

    # -- what the daemon asks -----------------------------------------------------------------------

    def _valid(self, name: str) -> _Held | None:
        held = self.held.get(name)
        if held is None or time.monotonic() - held.renewed_at >= self.fence_after:
            return None
        return held

    def may_start(self, name: str) -> bool:
        """Whether a new pass (or drift correction) of ``name`` may start here: this replica holds its
        lease, renewed within the fence window, and is not handing it over."""
        held = self._valid(name)
        return held is not None and not held.draining

    def may_write(self, name: str) -> bool:
        """Whether writes for ``name`` may still be sent (a pass in progress while handing over may)."""
        return self._valid(name) is not None

    def holds_singleton(self) -> bool:
        """Whether this replica runs the installation's one-writer jobs now."""
        return self.may_start(SINGLETON)

    def fence(self, name: str) -> Callable[[], None]:
        """The write check for ``name`` (for :data:`reconciler.cluster.client.WRITE_FENCE`): raises
        :class:`~reconciler.errors.FencedError` once this replica may no longer write for it."""

        def check() -> None:
            if not self.may_write(name):
                raise FencedError(
                    f"environment/{name}",
                    f"replica {self.replica} no longer holds the lease of environment {name!r}"
                    f" (held by {self.owners.get(name) or 'nobody'}); write not sent",
                )

        return check

    def owner(self, name: str) -> str:
        """The replica holding ``name``'s lease as last read (``""`` when free or not known)."""
        if self.may_write(name):
            return self.replica
        return self.owners.get(name, "")

    async def while_singleton(
        self, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]], stop: asyncio.Event
    ) -> None:
        """Run ``run(halt)`` whenever this replica holds the one-writer jobs' lease, until ``stop``: when
        the lease is lost (or ``stop`` is set) ``halt`` is set and ``run`` is awaited (it finishes the
        work in hand, e.g. image automation's batch, then returns)."""
        while not stop.is_set():
            if not self.holds_singleton():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.period / 2)
                continue
            halt = asyncio.Event()
            log.info("running the one-writer jobs (image automation, pull-request checks) here")
            self._jobs_running = True  # a hand-over of their lease waits until they have stopped
            try:
                task: asyncio.Task[None] = asyncio.create_task(run(halt))
                while not stop.is_set() and self.holds_singleton() and not task.done():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.period / 3)
                ended = task.done()
                halt.set()
                with contextlib.suppress(Exception):
                    await task
            finally:
                self._jobs_running = False
            if ended and not stop.is_set():  # it stopped by itself: do not restart it in a tight loop
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.period)

    # -- the loop -----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Heartbeat, acquire, renew and hand over every ``period`` seconds until :meth:`stop`.
        NATS failures are logged (once per kind) and retried; leases not renewed meanwhile fence
        themselves."""
        while not self._stopped.is_set():
            t0 = time.monotonic()
            try:
                async with self._ticking:
                    if self._stopped.is_set():
                        break
                    if not self._opened:
                        await self.bus.connect()
                        await self.table.open()
                        self._opened = True
                    await self.tick()
                if self.error:
                    log.info("shard leases: NATS answers again")
                self.error = ""
            except Exception as exc:  # BusError, or JetStream refusing while a NATS node restarts
                text = " ".join(str(exc).split()) or type(exc).__name__
                if text != self.error:
                    log.warning("shard leases: %s", text)
                self.error = text
                if not self._opened:
                    await self.bus.close()
            self._expire_unrenewed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), max(0.05, self.period - (time.monotonic() - t0)))

    def _expire_unrenewed(self) -> None:
        """Forget leases not renewed for ``ttl`` seconds (another replica may hold them now)."""
        now = time.monotonic()
        for name, held in list(self.held.items()):
            if now - held.renewed_at >= self.ttl:
                log.error(
                    "lease of %s expired unrenewed: no longer reconciled here", name, extra=_about(name)
                )
                del self.held[name]

    async def tick(self) -> None:
        """One period: heartbeat, renew or release what is held, read the bucket, acquire what is due.

        Raises:
            BusError: NATS unreachable (what was done before the failure stays done).
        """
        listed = set(self.names())
        ready = bool(listed)  # a replica still loading its environments takes nothing
        beat = LeaseValue(holder=self.replica, at=time.time(), ready=ready)
        await self._bounded(self.table.put(self._replica_key(self.replica), beat))
        await self._renew_all(listed)
        records = await self._bounded(self.table.read(self.installation, timeout=self.period))
        now = time.monotonic()
        for key in set(self._seen) - set(records):
            del self._seen[key]
        for key, rec in records.items():
            seen = self._seen.get(key)
            if seen is None or seen.revision != rec.revision:
                # a key seen for the first time counts from now: never older than its last write
                self._seen[key] = _Seen(rec.revision, now)
        live: set[str] = {self.replica} if ready else set()
        loading: set[str] = set()
        prefix = f"{self.installation}.replica."
        for key, rec in records.items():
            if key.startswith(prefix) and rec.value is not None and not self._stale(key, now):
                (live if rec.value.ready else loading).add(rec.value.holder)
        loading -= live
        self.live = sorted(live) or [self.replica]
        owners: dict[str, str] = {}
        for rec in records.values():
            if rec.value is not None and rec.value.name and not self._stale(rec.key, now):
                owners[rec.value.name] = rec.value.holder
        self.owners = owners
        if not ready:
            return
        if self._joined is None:
            self._joined = now
        if now - self._joined < 2 * self.period or (
            loading and not self.held and now - self._joined < self.ttl
        ):
            # replicas started together see each other first (and wait, up to the ttl, for those still
            # loading their environments): no acquire-everything-then-hand-over
            return
        names = sorted(listed)
        cap = math.ceil(len(names) / len(self.live)) if names else 0
        count = sum(1 for n in self.held if n != SINGLETON)
        plan = assign(names, self.live)
        plan[SINGLETON] = rendezvous(SINGLETON, self.live)
        self.plan = plan
        for name in [SINGLETON, *names]:
            if self._stopped.is_set():
                return
            preferred = plan.get(name, "")
            held = self.held.get(name)
            if held is not None:
                if preferred != self.replica and not held.draining:
                    log.info("handing %s over to replica %s", name, preferred, extra=_about(name))
                    held.draining = True
                continue
            found = records.get(self._env_key(name))
            free = found is None or found.value is None or self._stale(found.key, now)
            if not free:
                self._free_since.pop(name, None)
                continue
            since = self._free_since.setdefault(name, now)
            overdue = now - since >= self.ttl and (name == SINGLETON or count < cap)
            if preferred != self.replica and not overdue:
                continue
            if await self._acquire(name, found, sent=time.monotonic()):
                self._free_since.pop(name, None)
                if name != SINGLETON:
                    count += 1

    async def _bounded(self, call: Coroutine[Any, Any, _T]) -> _T:
        """``call`` given at most ``period`` seconds: a NATS node failing must not hold the loop (and its
        retries of the renewals) longer than one period.

        Raises:
            BusError: the call failed or timed out.
        """
        try:
            return await asyncio.wait_for(call, self.period)
        except TimeoutError:
            raise BusError(f"NATS did not answer within {self.period:g} s") from None

    def _stale(self, key: str, now: float) -> bool:
        seen = self._seen.get(key)
        return seen is not None and now - seen.since >= self.ttl

    async def _acquire(self, name: str, rec: LeaseRecord | None, *, sent: float) -> bool:
        key = self._env_key(name)
        value = LeaseValue(holder=self.replica, name=name, at=time.time())
        if rec is None:
            revision = await self._bounded(self.table.create(key, value))
        else:  # deleted or expired: compare-and-swap on the revision judged so
            revision = await self._bounded(self.table.update(key, value, rec.revision))
        if revision is None:
            return False
        previous = rec.value.holder if rec is not None and rec.value is not None else ""
        self.held[name] = _Held(key=key, revision=revision, renewed_at=sent)
        self.owners[name] = self.replica
        log.info(
            "acquired the lease of %s%s",
            name,
            f" (taken over from replica {previous})" if previous and previous != self.replica else "",
            extra=_about(name),
        )
        if self.on_acquired is not None and name != SINGLETON:
            try:
                self.on_acquired(name)
            except Exception:  # the daemon's trigger must not break the lease loop
                log.exception("on_acquired(%s) failed", name)
        return True

    async def _renew_all(self, listed: set[str]) -> None:
        now = time.monotonic()
        for name in list(self.held):
            if name == SINGLETON or name in listed:
                self._gone.pop(name, None)
            elif now - self._gone.setdefault(name, now) >= 4 * self.ttl:
                # its file left envs/: kept a while so the removal (orphan or prune) runs fenced
                self.held[name].draining = True
        results = await asyncio.gather(
            *(self._renew(name, held) for name, held in list(self.held.items())), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BusError):
                raise r
            if isinstance(r, BaseException):
                raise BusError(f"lease renewal: {r}")

    async def _renew(self, name: str, held: _Held) -> None:
        busy = self._jobs_running if name == SINGLETON else self.busy(name)
        if held.draining and not busy:
            if await self._bounded(self.table.delete(held.key, last=held.revision)):
                log.info("released the lease of %s", name, extra=_about(name))
            self.held.pop(name, None)
            self._gone.pop(name, None)
            return
        sent = time.monotonic()
        revision = await self._bounded(
            self.table.update(
                held.key, LeaseValue(holder=self.replica, name=name, at=time.time()), held.revision
            )
        )
        if revision is None:
            log.error(
                "lost the lease of %s (another replica wrote it): no longer reconciled here",
                name,
                extra=_about(name),
            )
            self.held.pop(name, None)
            return
        held.revision, held.renewed_at = revision, sent

    async def stop(self, release: bool = True) -> None:
        """Stop the loop; with ``release``, hand every lease over at once (delete it) and remove the
        heartbeat, so other replicas take over without waiting for the ``ttl``. Call after the daemon's
        passes have stopped."""
        self._stopped.set()
        async with self._ticking:  # the period in progress ends first (it acquires nothing more)
            await self._release(release)

    async def _release(self, release: bool) -> None:
        if release and self._opened:
            deletes = [self.table.delete(h.key, last=h.revision) for h in self.held.values()]
            deletes.append(self.table.delete(self._replica_key(self.replica)))
            with contextlib.suppress(TimeoutError):  # unreleased leases expire after the ttl
                await asyncio.wait_for(asyncio.gather(*deletes, return_exceptions=True), 2.0)
        self.held.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.bus.close(), 2.0)
