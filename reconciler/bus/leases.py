"""Leases in a NATS JetStream key-value bucket: put-if-absent, compare-and-swap and a one-sweep read.

A key-value bucket is a stream whose subjects are ``$KV.<bucket>.<key>``; every write gets a revision
(the stream sequence), ``create`` succeeds only when the key holds no value and ``update`` only when the
key's latest revision is the one given (``Nats-Expected-Last-Subject-Sequence``), as the NATS key-value
store documents them. The table knows nothing of what a lease means; ``reconciler/runtime/shards.py``
decides who holds what.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from nats.errors import ConnectionClosedError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import BaseModel, Field

from reconciler.bus.client import Bus, BusError

#: The bucket of the sharded daemon's leases and replica heartbeats.
LEASE_BUCKET = "reconciler-leases"
#: Seconds after its last write that JetStream drops a key (the bucket's ``max_age``): only the records of
#: replicas that died long ago age out, as live ones rewrite theirs every few seconds.
LEASE_BUCKET_MAX_AGE = 600.0


class LeaseValue(BaseModel):
    """What one lease or heartbeat key holds (JSON)."""

    holder: str = Field(description="the replica holding the lease, or the replica a heartbeat is from")
    name: str = Field(default="", description="the environment (or job) the lease is for; '' for a heartbeat")
    at: float = Field(default=0.0, description="UNIX time of the write, seconds (for people; never compared)")
    ready: bool = Field(
        default=True, description="heartbeats: the replica has loaded its environments and takes leases"
    )


@dataclass(frozen=True)
class LeaseRecord:
    """One key's latest write: ``value`` is ``None`` for a deleted key (a released lease)."""

    key: str
    revision: int
    value: LeaseValue | None


_UNREACHABLE = (NatsTimeout, ConnectionClosedError, NoServersError, OSError, asyncio.TimeoutError)


class LeaseTable:
    """The lease bucket on a connected :class:`~reconciler.bus.Bus`.

    Args:
        bus: a connected bus.
        bucket: the bucket's name.
        replicas: how many NATS servers keep a copy of the bucket when it is created (1 for a single
            server; 3 for a three-node cluster, which then survives the loss of one node).
    """

    def __init__(self, bus: Bus, bucket: str = LEASE_BUCKET, replicas: int = 1) -> None:
        self.bus = bus
        self.bucket = bucket
        self.replicas = replicas
        self._kv: KeyValue | None = None

    async def open(self) -> None:
        """Bind to the bucket, creating it (history 1, file storage) when missing.

        Raises:
            BusError: NATS unreachable or JetStream refusing.
        """
        try:
            try:
                self._kv = await self.bus.js.key_value(self.bucket)
            except BucketNotFoundError:
                self._kv = await self.bus.js.create_key_value(
                    KeyValueConfig(
                        bucket=self.bucket,
                        history=1,
                        ttl=LEASE_BUCKET_MAX_AGE,
                        storage=StorageType.FILE,
                        replicas=self.replicas,
                        description="reconciler: per-environment leases and replica heartbeats",
                    )
                )
        except BusError:
            raise
        except Exception as exc:
            raise BusError(f"lease bucket {self.bucket}: {exc or type(exc).__name__}") from None

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise BusError(f"lease bucket {self.bucket} not opened")
        return self._kv

    async def create(self, key: str, value: LeaseValue) -> int | None:
        """Write ``key`` only when it holds no value (never written, deleted, or aged out); returns the
        new revision, or ``None`` when it holds one.

        Raises:
            BusError: NATS unreachable or JetStream refusing for another reason.
        """
        try:
            return int(await self.kv.create(key, value.model_dump_json().encode()))
        except KeyWrongLastSequenceError:
            return None
        except Exception as exc:
            raise _bus_error("create", key, exc) from None

    async def update(self, key: str, value: LeaseValue, last: int) -> int | None:
        """Write ``key`` only when its latest revision is ``last`` (compare-and-swap); returns the new
        revision, or ``None`` when another write came first.

        Raises:
            BusError: NATS unreachable or JetStream refusing for another reason.
        """
        try:
            return int(await self.kv.update(key, value.model_dump_json().encode(), last=last))
        except KeyWrongLastSequenceError:
            return None
        except Exception as exc:
            raise _bus_error("update", key, exc) from None

    async def put(self, key: str, value: LeaseValue) -> int:
        """Write ``key`` whatever it holds; returns the new revision.

        Raises:
            BusError: NATS unreachable or JetStream refusing.
        """
        try:
            return int(await self.kv.put(key, value.model_dump_json().encode()))
        except Exception as exc:
            raise _bus_error("put", key, exc) from None

    async def delete(self, key: str, last: int | None = None) -> bool:
        """Delete ``key`` (a delete marker), only when its latest revision is ``last`` when given; returns
        whether it was deleted.

        Raises:
            BusError: NATS unreachable or JetStream refusing for another reason.
        """
        try:
            await self.kv.delete(key, last=last)
        except KeyWrongLastSequenceError:
            return False
        except Exception as exc:
            if getattr(exc, "err_code", None) in (10071, 10164):  # wrong last sequence
                return False
            raise _bus_error("delete", key, exc) from None
        return True

    async def read(self, prefix: str, timeout: float = 5.0) -> dict[str, LeaseRecord]:
        """Every key under ``prefix`` (``<prefix>.>``) with its latest write, read in one sweep (an ordered
        consumer delivering the last message of each key). Deleted keys are included with value ``None``;
        a value that is not a :class:`LeaseValue` counts as deleted.

        Raises:
            BusError: NATS unreachable or the sweep not finished within ``timeout`` seconds.
        """
        out: dict[str, LeaseRecord] = {}
        try:
            watcher = await self.kv.watch(f"{prefix}.>")
        except Exception as exc:
            raise _bus_error("read", prefix, exc) from None
        try:
            while True:
                entry = await watcher.updates(timeout=timeout)  # type: ignore[no-untyped-call]
                if entry is None:
                    break
                value: LeaseValue | None = None
                if entry.operation not in (KV_DEL, KV_PURGE) and entry.value:
                    with contextlib.suppress(ValueError):
                        value = LeaseValue.model_validate_json(entry.value)
                out[entry.key] = LeaseRecord(key=entry.key, revision=int(entry.revision or 0), value=value)
                if not entry.delta:  # the last one pending
                    break
        except Exception as exc:
            raise _bus_error("read", prefix, exc) from None
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
        return out


def _bus_error(op: str, key: str, exc: BaseException) -> BusError:
    why = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, _UNREACHABLE):
        why = f"NATS unreachable ({why})"
    return BusError(f"lease {op} {key}: {why}")
