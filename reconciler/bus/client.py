"""A small JetStream client over nats-py.

Publishing waits for the JetStream acknowledgement; ``msg_id`` sets ``Nats-Msg-Id`` so the stream drops
duplicates inside its duplicate window (https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication).
Durable pull consumers deliver at least once: a message is acknowledged only after the work it triggered
is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import ConnectionClosedError, NoServersError, TimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError

from reconciler.bus.subjects import STREAM_EVENTS, STREAM_REGISTRY
from reconciler.errors import ReconcilerError

DUPLICATE_WINDOW = 600.0  # seconds


class BusError(ReconcilerError):
    """NATS could not be reached or refused an operation."""

    retryable = True


@dataclass
class Message:
    """One message from a durable consumer; call :meth:`ack` once its work is durable."""

    subject: str
    data: bytes
    headers: dict[str, str]
    _raw: Any

    async def ack(self) -> None:
        """Acknowledge: JetStream will not redeliver it."""
        await self._raw.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Ask for redelivery after ``delay`` seconds."""
        await self._raw.nak(delay=delay)


class Bus:
    """A connection to NATS with JetStream.

    Args:
        url: ``nats://host:port``.
        name: the client name shown by the server.
    """

    def __init__(self, url: str, name: str = "reconciler") -> None:
        self.url = url
        self.name = name
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._nc is not None and self._nc.is_connected

    async def connect(self, timeout: float = 5.0) -> None:
        """Connect (reconnecting forever afterwards) and make sure the project's streams exist.

        Raises:
            BusError: when NATS cannot be reached within ``timeout`` seconds.
        """
        try:
            self._nc = await nats.connect(
                self.url,
                name=self.name,
                connect_timeout=timeout,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
            )
        except (NoServersError, OSError, TimeoutError) as exc:
            raise BusError(f"NATS {self.url}: {exc}") from None
        self._js = self._nc.jetstream()
        await self.ensure_streams()

    async def close(self) -> None:
        """Drain and close the connection."""
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
            self._nc = None
            self._js = None

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context; raises :class:`BusError` when not connected."""
        if self._js is None:
            raise BusError("not connected to NATS")
        return self._js

    async def ensure_streams(self) -> None:
        """Create the ``RECONCILER`` (``reconciler.>``) and ``REGISTRY`` (``registry.>``) streams."""
        for name, subjects in ((STREAM_EVENTS, ["reconciler.>"]), (STREAM_REGISTRY, ["registry.>"])):
            try:
                await self.js.stream_info(name)
            except NotFoundError:
                await self.js.add_stream(
                    StreamConfig(
                        name=name,
                        subjects=subjects,
                        duplicate_window=DUPLICATE_WINDOW,
                        max_age=7 * 24 * 3600.0,
                    )
                )

    async def publish(
        self, subject: str, data: bytes, *, msg_id: str | None = None, timeout: float = 5.0
    ) -> int:
        """Publish to JetStream and wait for its acknowledgement; returns the stream sequence.

        A duplicate ``msg_id`` inside the duplicate window is acknowledged without being stored again.

        Raises:
            BusError: when JetStream did not acknowledge within ``timeout`` seconds.
        """
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        try:
            ack = await self.js.publish(subject, data, timeout=timeout, headers=headers)
        except (TimeoutError, ConnectionClosedError, NoServersError, OSError) as exc:
            raise BusError(f"publish {subject}: {exc or type(exc).__name__}") from None
        except Exception as exc:  # nats-py raises its own APIError family for JetStream refusals
            raise BusError(f"publish {subject}: {exc}") from None
        return int(ack.seq)

    async def consume(
        self,
        stream: str,
        durable: str,
        subjects: list[str],
        *,
        batch: int = 10,
        wait: float = 1.0,
        ack_wait: float = 60.0,
    ) -> AsyncIterator[Message]:
        """Yield messages from a durable pull consumer forever (until cancelled).

        Args:
            stream: the stream name.
            durable: the consumer's durable name (its position survives restarts).
            subjects: filter subjects (one or more).
            batch: messages per fetch.
            wait: seconds one fetch waits for messages.
            ack_wait: seconds before an unacknowledged message is redelivered.
        """
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            ack_wait=ack_wait,
            max_deliver=-1,
            **({"filter_subjects": subjects} if len(subjects) > 1 else {"filter_subject": subjects[0]}),
        )
        sub = (
            await self.js.pull_subscribe_bind(durable=durable, stream=stream)
            if await self._has_consumer(stream, durable)
            else None
        )
        if sub is None:
            await self.js.add_consumer(stream, config)
            sub = await self.js.pull_subscribe_bind(durable=durable, stream=stream)
        try:
            while True:
                try:
                    msgs = await sub.fetch(batch, timeout=wait)
                except TimeoutError:
                    continue
                except (ConnectionClosedError, OSError):
                    await asyncio.sleep(0.5)
                    continue
                for m in msgs:
                    yield Message(subject=m.subject, data=m.data, headers=dict(m.headers or {}), _raw=m)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _has_consumer(self, stream: str, durable: str) -> bool:
        try:
            await self.js.consumer_info(stream, durable)
        except NotFoundError:
            return False
        return True
