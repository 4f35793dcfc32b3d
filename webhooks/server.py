"""The webhook HTTP server: verify → normalise → publish to JetStream → answer.

Endpoints:

* ``POST /hook/<receiver>`` — providers that sign or send a token header;
  ``POST /hook/<receiver>/<token>`` — providers that sign nothing (secret path token).
* ``GET /healthz`` — the process is up. ``GET /readyz`` — NATS is connected (503 otherwise).

Answers: 202 after JetStream acknowledged every event of the delivery; 200 when the delivery was valid
but nothing in it is published (ignored event type, untagged manifest); 400 malformed (reason in the
body); 401 missing/bad authentication; 404 unknown receiver; 413 body over ``max_body_bytes`` (never read
past the cap); 415 a Content-Type that is not JSON; 503 NATS unavailable (the sender retries; message
ids make the retry idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aiohttp import web

from reconciler.bus import Bus, BusError, git_pull_request_subject, git_push_subject, image_pushed_subject
from reconciler.errors import ConfigError
from reconciler.observe.metrics import metrics_handler, observe_webhook
from webhooks.config import AuthMode, ReceiverConfig, WebhookSettings, load_settings
from webhooks.events import GitPushed, ImagePushed, PullRequestChanged
from webhooks.providers import Delivery, Event, PayloadError, auth_spec_for, parse_delivery
from webhooks.verify import AuthError, AuthSpec, verify

__all__ = ["Publisher", "build_app", "main", "message_ids", "serve", "serve_async", "subject_for"]

log = structlog.get_logger("webhooks")
_READ_CHUNK = 64 * 1024


class Publisher(Protocol):
    """What the server needs from the bus (:class:`reconciler.bus.Bus` satisfies it)."""

    @property
    def connected(self) -> bool:
        """Whether NATS is connected now."""
        ...

    async def publish(
        self, subject: str, data: bytes, *, msg_id: str | None = None, timeout: float = 5.0
    ) -> int:
        """Publish and wait for the JetStream ack; raise :class:`BusError` on failure."""
        ...


@dataclass(frozen=True)
class _Receiver:
    config: ReceiverConfig
    auth: AuthSpec
    secret: bytes


def subject_for(event: Event) -> str:
    """The NATS subject of an event: ``registry.image.pushed.<image>`` / ``reconciler.git.push.<repo>``.

    Git pushes use the repository's full name when known (stable across clone URL spellings).
    """
    if isinstance(event, ImagePushed):
        return image_pushed_subject(event.image)
    if isinstance(event, PullRequestChanged):
        return git_pull_request_subject(event.full_name or event.repository)
    return git_push_subject(event.full_name or event.repository)


def message_ids(receiver: str, events: Sequence[Event]) -> list[str]:
    """``Nats-Msg-Id`` per event: ``<receiver>/<delivery id>``; ``/<index>`` appended to all of them when
    several events of one delivery share a delivery id (Bitbucket pushes with several ref changes).

    A redelivery of the same delivery yields the same ids, so JetStream stores it once.
    """
    ids = [f"{receiver}/{e.delivery_id}" for e in events]
    if len(set(ids)) != len(ids):
        ids = [f"{mid}/{i}" for i, mid in enumerate(ids)]
    return ids


def _unsupported_media_type(request: web.Request) -> str | None:
    """The declared media type when it says the body is not JSON (→ 415), else ``None``.

    JSON is ``application/json``, ``text/json`` or any ``+json`` suffix (RFC 6839), which covers the
    CloudEvents and Docker Distribution types. A missing header and ``application/octet-stream`` (what
    some clients send by default) are left to the JSON parser. CloudEvents binary mode
    (``ce-specversion`` header) carries its data in any media type and is exempt.
    """
    declared = request.headers.get("Content-Type")
    if declared is None or "ce-specversion" in request.headers:
        return None
    media = declared.split(";", 1)[0].strip().lower()
    if media in ("", "application/json", "text/json", "application/octet-stream") or media.endswith("+json"):
        return None
    return media


def _json(code: int, /, **body: Any) -> web.Response:
    return web.json_response(body, status=code)


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
    """The body, or ``None`` as soon as it is known to exceed ``cap`` bytes (reads at most cap+1 bytes)."""
    if request.content_length is not None and request.content_length > cap:
        return None
    buf = bytearray()
    while True:
        chunk = await request.content.read(min(_READ_CHUNK, cap + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > cap:
            return None


def build_app(settings: WebhookSettings, publisher: Publisher) -> web.Application:
    """Build the aiohttp application.

    Args:
        settings: validated settings (receivers, body cap, publish timeout).
        publisher: the bus; a :class:`reconciler.bus.Bus` in production, a fake in unit tests.

    Raises:
        ConfigError: a receiver's secret cannot be resolved (``secretEnv`` unset), so the server fails at
            start instead of answering 401 to every delivery.
    """
    receivers = {r.name: _Receiver(r, auth_spec_for(r), r.secret_bytes()) for r in settings.receivers}
    cap = settings.max_body_bytes

    async def hook(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        token = request.match_info.get("token")
        rec = receivers.get(name)
        if rec is None:
            observe_webhook("unknown", "unknown_receiver")
            return _json(404, error=f"unknown receiver {name!r}")
        logger = log.bind(receiver=name, provider=rec.config.provider.value)
        try:
            if rec.auth.mode is not AuthMode.HMAC:  # token/path auth: refuse before reading the body
                verify(rec.auth, rec.secret, request.headers, b"", token)
            body = await _read_capped(request, cap)
            if body is None:
                logger.warning("webhook.too_large", cap=cap)
                observe_webhook(rec.config.provider.value, "too_large")
                return _json(413, error=f"body exceeds {cap} bytes")
            if rec.auth.mode is AuthMode.HMAC:
                verify(rec.auth, rec.secret, request.headers, body, token)
        except AuthError as exc:
            logger.warning("webhook.unauthorized", reason=str(exc))
            observe_webhook(rec.config.provider.value, "unauthorized")
            return _json(401, error=f"unauthorized: {exc}")
        media = _unsupported_media_type(request)
        if media is not None:
            logger.warning("webhook.unsupported_media_type", content_type=media)
            observe_webhook(rec.config.provider.value, "malformed")
            return _json(
                415, error=f"unsupported Content-Type {media!r}: send the payload as application/json"
            )
        delivery = Delivery(
            receiver=rec.config, headers=request.headers, body=body, received_at=datetime.now(UTC)
        )
        try:
            result = parse_delivery(delivery)
        except PayloadError as exc:
            logger.warning("webhook.malformed", reason=str(exc))
            observe_webhook(rec.config.provider.value, "malformed")
            return _json(400, error=f"malformed payload: {exc}")
        if not result.events:
            logger.info("webhook.ignored", event_type=result.event_type, reasons=result.ignored)
            observe_webhook(rec.config.provider.value, "ignored")
            return _json(200, status="ignored", event=result.event_type, ignored=result.ignored)
        if not publisher.connected:
            logger.warning("webhook.nats_unavailable")
            observe_webhook(rec.config.provider.value, "unavailable")
            return _json(503, error="NATS is not connected; retry later")
        published = []
        for event, mid in zip(result.events, message_ids(name, result.events), strict=True):
            subject = subject_for(event)
            try:
                seq = await publisher.publish(
                    subject, event.model_dump_json().encode(), msg_id=mid, timeout=settings.publish_timeout
                )
            except BusError as exc:
                logger.warning("webhook.publish_failed", subject=subject, msg_id=mid, error=str(exc))
                observe_webhook(rec.config.provider.value, "unavailable")
                return _json(503, error=f"publish failed: {exc}; retry later")
            published.append({"subject": subject, "msg_id": mid, "seq": seq, **_summary(event)})
        logger.info(
            "webhook.accepted", event_type=result.event_type, published=published, ignored=result.ignored
        )
        observe_webhook(rec.config.provider.value, "accepted")
        return _json(
            202, status="accepted", event=result.event_type, published=published, ignored=result.ignored
        )

    async def healthz(_: web.Request) -> web.Response:
        return _json(200, status="ok")

    async def readyz(_: web.Request) -> web.Response:
        if publisher.connected:
            return _json(200, status="ready")
        return _json(503, status="not ready", reason="NATS is not connected")

    app = web.Application()
    app.router.add_post("/hook/{name}", hook)
    app.router.add_post("/hook/{name}/{token}", hook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler())
    return app


def _summary(event: Event) -> dict[str, Any]:
    if isinstance(event, GitPushed):
        return {"repository": event.repository, "ref": event.ref, "after": event.after}
    if isinstance(event, PullRequestChanged):
        return {"repository": event.repository, "pull_request": event.number, "head": event.head_sha}
    return {"image": event.image, "tag": event.tag, "digest": event.digest}


async def _keep_connecting(bus: Bus, retry: float = 1.0) -> None:
    """Connect to NATS, retrying until it succeeds (nats-py reconnects on its own afterwards)."""
    while True:
        try:
            await bus.connect()
        except Exception as exc:  # BusError, or JetStream refusing stream creation
            log.warning("webhooks.nats_connect_failed", url=bus.url, error=str(exc))
            await bus.close()
            await asyncio.sleep(retry)
            continue
        log.info("webhooks.nats_connected", url=bus.url)
        return


async def serve_async(settings: WebhookSettings, stop: asyncio.Event | None = None) -> None:
    """Run the server until ``stop`` is set (or SIGINT/SIGTERM when ``stop`` is ``None``).

    The HTTP listener starts at once; deliveries get 503 until NATS is connected.

    Raises:
        ConfigError: a receiver secret cannot be resolved.
        OSError: the address cannot be bound.
    """
    bus = Bus(settings.nats_url, name="reconciler-webhooks")
    app = build_app(settings, bus)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    connector = asyncio.create_task(_keep_connecting(bus))
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info(
            "webhooks.listening",
            host=settings.host,
            port=settings.port,
            receivers=[r.name for r in settings.receivers],
        )
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        connector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connector
        await runner.cleanup()
        await bus.close()


def serve(settings: WebhookSettings) -> None:
    """Run the server in the foreground until SIGINT/SIGTERM (blocking; wraps :func:`serve_async`)."""
    asyncio.run(serve_async(settings))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m webhooks --config FILE [--host H] [--port P] [--nats-url URL]``; returns the exit code
    (0 after a clean stop, 2 on a settings error)."""
    parser = argparse.ArgumentParser(
        prog="python -m webhooks", description="Registry and Git webhook receivers"
    )
    parser.add_argument("--config", "-c", required=True, help="settings file (YAML or JSON)")
    parser.add_argument("--host", help="listen address (default from the file, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port")
    parser.add_argument("--nats-url", help="nats://host:port")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        settings = load_settings(args.config)
        overrides = {
            k: v
            for k, v in (("host", args.host), ("port", args.port), ("nats_url", args.nats_url))
            if v is not None
        }
        if overrides:
            settings = settings.model_copy(update=overrides)
        for r in settings.receivers:
            r.secret_bytes()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve(settings)
    return 0
