"""A small JetStream client over nats-py.

Publishing waits for the JetStream acknowledgement; ``msg_id`` sets ``Nats-Msg-Id`` so the stream drops
duplicates inside its duplicate window (https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication).
Durable pull consumers deliver at least once: a message is acknowledged only after the work it triggered
is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.errors import ConnectionClosedError, NoServersError, TimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError

from reconciler.bus.subjects import STREAM_EVENTS, STREAM_REGISTRY
from reconciler.errors import ReconcilerError

log = logging.getLogger("reconciler.bus")

#: Seconds JetStream waits for an acknowledgement before redelivering, for consumers created without one.
DEFAULT_ACK_WAIT = 30.0
#: Seconds between two warnings for the same NATS connection error.
ERROR_LOG_INTERVAL = 30.0

DUPLICATE_WINDOW = 600.0  # seconds
#: Seconds a consumer waits after JetStream refused a fetch before it tries again.
CONSUME_RETRY = 1.0


class BusError(ReconcilerError):
    """NATS could not be reached or refused an operation."""

    retryable = True


def stream_replicas() -> int:
    """``$RECONCILER_NATS_REPLICAS``: copies a clustered NATS keeps of the streams and buckets this project
    creates (default 1).

    Raises:
        BusError: not a number from 1 to 5.
    """
    raw = os.environ.get("RECONCILER_NATS_REPLICAS", "").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 5:
        raise BusError(f"RECONCILER_NATS_REPLICAS={raw!r}: expected a number of NATS servers from 1 to 5")
    return int(raw)


@dataclass(eq=False)
class Message:
    """One message from a durable consumer; call :meth:`ack` once its work is durable (compared and
    hashed by identity)."""

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

    async def in_progress(self) -> None:
        """Report work in progress: JetStream restarts the message's ``ack_wait`` (``+WPI``)."""
        await self._raw.in_progress()


class Bus:
    """A connection to NATS with JetStream.

    Args:
        url: ``nats://host:port``, or several comma-separated (the servers of a cluster: the client fails
            over between them).
        name: the client name shown by the server.
        replicas: copies of the project's streams a clustered NATS keeps, when this client creates them;
            ``None`` reads ``$RECONCILER_NATS_REPLICAS`` (default 1; 3 for a three-node JetStream cluster).

    Raises:
        BusError: ``$RECONCILER_NATS_REPLICAS`` is not a number from 1 to 5.
    """

    def __init__(self, url: str, name: str = "reconciler", replicas: int | None = None) -> None:
        self.url = url
        self.name = name
        self.replicas = replicas if replicas is not None else stream_replicas()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._ready = False
        self._last_error = ""
        self._last_error_at = 0.0

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now (and :meth:`connect` has finished)."""
        return self._ready and self._nc is not None and self._nc.is_connected

    async def connect(self, timeout: float = 5.0) -> None:
        """Connect (reconnecting forever afterwards) and make sure the project's streams exist;
        :attr:`connected` turns true only then.

        nats-py retries a first connection forever when reconnecting is unlimited, so the attempt is
        bounded here; connection errors are logged as one-line warnings, at most one per
        :data:`ERROR_LOG_INTERVAL` seconds (nats-py's default logs each with a traceback).

        Raises:
            BusError: when NATS cannot be reached within ``timeout`` seconds.
        """
        nc = Client()
        try:
            options: dict[str, Any] = {  # nats-py annotates the two times as int; they are seconds
                "connect_timeout": timeout,
                "reconnect_time_wait": 0.5,
            }
            await asyncio.wait_for(
                nc.connect(
                    [u.strip() for u in self.url.split(",") if u.strip()],
                    name=self.name,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    error_cb=self._on_error,
                    **options,
                ),
                timeout,
            )
        except (NoServersError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            why = str(exc) or f"not reachable within {timeout:g} s"
            raise BusError(f"NATS {self.url}: {why}") from None
        self._nc = nc
        self._js = self._nc.jetstream()
        await self.ensure_streams()
        self._ready = True

    async def _on_error(self, exc: Exception) -> None:
        now = time.monotonic()
        text = " ".join(str(exc).split()) or type(exc).__name__
        if text != self._last_error or now - self._last_error_at >= ERROR_LOG_INTERVAL:
            log.warning("NATS %s: %s", self.url, text)
            self._last_error, self._last_error_at = text, now

    async def close(self) -> None:
        """Drain and close the connection."""
        self._ready = False
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
        """Create the ``RECONCILER`` (``reconciler.>``) and ``REGISTRY`` (``registry.>``) streams when
        missing, with :attr:`replicas` copies (an existing stream keeps its own)."""
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
                        num_replicas=self.replicas,
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
        ack_wait: float = DEFAULT_ACK_WAIT,
        start_time: datetime | None = None,
        inactive_threshold: float | None = None,
    ) -> AsyncIterator[Message]:
        """Yield messages from a durable pull consumer forever (until cancelled).

        Outlives NATS restarts: a broken connection or a refused fetch (JetStream not ready yet, the
        consumer deleted) is logged (rate-limited) and retried every :data:`CONSUME_RETRY` seconds, and a
        consumer that no longer exists is created again.

        Args:
            stream: the stream name.
            durable: the consumer's durable name (its position survives restarts).
            subjects: filter subjects (one or more).
            batch: messages per fetch.
            wait: seconds one fetch waits for messages.
            ack_wait: seconds before an unacknowledged message is redelivered (an existing consumer's
                setting is updated).
            start_time: a consumer created now starts with the messages stored since then (UTC), not
                with new ones only.
            inactive_threshold: seconds without a subscriber after which JetStream deletes the consumer.
        """
        ensure = functools.partial(
            self.ensure_consumer,
            stream,
            durable,
            subjects,
            ack_wait=ack_wait,
            start_time=start_time,
            inactive_threshold=inactive_threshold,
        )
        await ensure()
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
                except Exception as exc:  # JetStream refusing (a server restarting, the consumer gone)
                    await self._on_error(exc)
                    await asyncio.sleep(CONSUME_RETRY)
                    with contextlib.suppress(Exception):  # a consumer lost with the server's store
                        await ensure()
                    continue
                for m in msgs:
                    yield Message(subject=m.subject, data=m.data, headers=dict(m.headers or {}), _raw=m)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def ensure_consumer(
        self,
        stream: str,
        durable: str,
        subjects: list[str],
        *,
        ack_wait: float | None = None,
        start_time: datetime | None = None,
        inactive_threshold: float | None = None,
    ) -> None:
        """Create the durable pull consumer ``durable`` on ``stream`` when it does not exist (explicit
        acknowledgement, unlimited redelivery, ``ack_wait`` or 30 seconds; new messages only, or those
        stored since ``start_time``; deleted after ``inactive_threshold`` seconds without a subscriber);
        an existing one keeps its position, and its ``ack_wait`` is updated when given and different.

        Raises:
            BusError: not connected. JetStream errors (``nats.js.errors.Error``) pass through.
        """
        existing = await self._consumer_info(stream, durable)
        only = {"filter_subjects": subjects} if len(subjects) > 1 else {"filter_subject": subjects[0]}
        if existing is None:
            await self.js.add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.NEW if start_time is None else DeliverPolicy.BY_START_TIME,
                    opt_start_time=start_time,
                    ack_wait=DEFAULT_ACK_WAIT if ack_wait is None else ack_wait,
                    max_deliver=-1,
                    inactive_threshold=inactive_threshold,
                    **only,
                ),
            )
        elif ack_wait is not None and abs((existing.config.ack_wait or 0.0) - ack_wait) > 0.001:
            try:  # JetStream (2.10+) updates a durable consumer's ack_wait in place
                await self.js.add_consumer(stream, existing.config.evolve(ack_wait=ack_wait))
            except Exception as exc:
                log.warning(
                    "consumer %s on %s: ack_wait stays %ss (%s)",
                    durable,
                    stream,
                    existing.config.ack_wait,
                    exc,
                )

    async def _consumer_info(self, stream: str, durable: str) -> Any:
        try:
            return await self.js.consumer_info(stream, durable)
        except NotFoundError:
            return None
