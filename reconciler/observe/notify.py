"""Notifications: the daemon's events sent to chat and webhooks, per environment (``notifications:`` in
``envs/<env>.yaml``, :class:`reconciler.model.NotificationTarget`). The anchor is Flux's
notification-controller (a Provider per receiver, an Alert's ``eventSeverity`` filter and its
``generic-hmac`` provider).

**Where the events come from.** :meth:`reconciler.runtime.Daemon.publish_event` — the one place where the
daemon publishes its NATS events — hands every event to :meth:`Notifier.offer` before publishing it:
``reconciler.result.<env>`` (passes), ``reconciler.drift.<env>``, ``reconciler.promotion.<env>`` (health
gates, automatic and manual rollbacks, promotions) and ``reconciler.control.<env>`` (suspend, resume, sync
requests). Notifications therefore work with or without NATS.

**What is sent** (:class:`Kind`; each event carries a severity, ``info`` or ``error``, as Flux's do):

========================  ========  ====================================================================
kind                      severity  when
========================  ========  ====================================================================
``pass-failed``           error     a pass failed or a guard blocked it (once per revision and error)
``gate-failed``           error     a health gate failed (the message says when the promotion was reverted)
``rollback``              error     a rollback (automatic revert, the rollback action or command) or its
                                    failure
``drift``                 error     drift seen (corrected or only reported)
``promotion``             error     a promotion pushed into the environment or proposed as a pull request
``suspend``, ``resume``   error     the environment was suspended or resumed (who, why)
``sync``                  info      a pass applied changes (created, configured or deleted objects)
``gate-passed``           info      a health gate passed (``Unverified`` says so, never ``Healthy``)
``sync-requested``        info      someone asked for a pass (``reconciler sync``, the Sync button)
========================  ========  ====================================================================

A target's ``eventSeverity: error`` (the default) sends the error-level kinds; ``info`` sends every kind;
``events:`` narrows either to the kinds listed.

**Receivers** (``type``):

* ``slack`` — a Slack-compatible incoming webhook (also Mattermost, Rocket.Chat, Discord's ``/slack``
  endpoint): a POST of ``{"text": "<one line>"}``;
* ``webhook`` — a POST of the JSON :class:`Payload`. With a ``token`` key in its secret, the request has the
  header ``X-Reconciler-Signature: sha256=<hex>``: the HMAC-SHA256 (RFC 2104) of the raw request body with
  the token as key, lower-case hex (the scheme of GitHub's ``X-Hub-Signature-256`` and Flux's
  ``generic-hmac`` provider). A receiver recomputes it over the bytes it received and compares in constant
  time (:func:`verify_signature`). Every request also has ``X-Reconciler-Event: <kind>`` and
  ``X-Reconciler-Delivery: <id>`` (the same id on every retry of one delivery);
* ``commit-status`` — the environment's ``reconciler/<env>`` commit statuses on the applied commit
  (:mod:`reconciler.promote.statuses`, the same poster as ``commit_status``), with the token from its
  secret instead of ``RECONCILER_GIT_HOST_TOKEN``: with such a target the environment's statuses are posted
  with that token only (never twice). ``eventSeverity`` and ``events`` do not apply to it.

**Secrets.** Addresses and tokens never live in Git: ``secretRef.name`` names a Secret (in the environment's
namespace unless ``secretRef.namespace`` says otherwise) that the daemon reads, keys ``address`` (the URL)
and ``token`` (the HMAC key, or the Git host token for ``commit-status``; optional ``address`` is then the
host's API base); ``secretRef.file`` names instead a path on the daemon's machine: a directory with one file
per key (how a Secret is mounted) or a YAML/JSON file mapping the keys. Secrets are read again after
:data:`SECRET_TTL` seconds.

**Delivery never holds a pass up.** :meth:`Notifier.offer` only puts the notification in the target's
bounded queue (:data:`QUEUE_SIZE`); one task per target sends them in order. When the queue is full (a
receiver down for long), the notification is dropped, logged (at most one line per target every
:data:`DROP_LOG_INTERVAL` seconds, with the number dropped) and counted
(``reconciler_notifications_total{result="dropped"}``). A send is retried with exponential backoff
(tenacity) on connection errors, timeouts, 429 and 5xx answers, at most :data:`ATTEMPTS` times; other 4xx
answers are not retried. Outcomes are counted by ``result``: ``sent``, ``failed``, ``dropped``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from pydantic import BaseModel, Field
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from reconciler.errors import ConfigError, KubeError
from reconciler.model.environment import NotificationSecretRef, NotificationTarget
from reconciler.observe.logging import get_logger

if TYPE_CHECKING:
    from reconciler.cluster.client import KubeClient
    from reconciler.model import Environment
    from reconciler.observe.metrics import Metrics
    from reconciler.promote.statuses import CommitStatuses

log = get_logger("reconciler.notify")

#: Notifications waiting per target; past it new ones are dropped (and counted).
QUEUE_SIZE = 100
#: Attempts of one delivery (the first one included).
ATTEMPTS = 5
#: The first backoff between attempts, seconds (doubled each time, at most :data:`MAX_BACKOFF`).
BACKOFF = 1.0
MAX_BACKOFF = 30.0
#: The limit of one HTTP request, seconds.
TIMEOUT = 10.0
#: Seconds a secret read from the cluster or a file is reused.
SECRET_TTL = 60.0
#: Seconds between two ``notify.dropped`` log lines of one target (each line says how many were dropped).
DROP_LOG_INTERVAL = 60.0
SIGNATURE_HEADER = "X-Reconciler-Signature"
EVENT_HEADER = "X-Reconciler-Event"
DELIVERY_HEADER = "X-Reconciler-Delivery"


class Kind(StrEnum):
    """What a notification is about (see the module docstring)."""

    PASS_FAILED = "pass-failed"
    GATE_FAILED = "gate-failed"
    ROLLBACK = "rollback"
    DRIFT = "drift"
    PROMOTION = "promotion"
    SUSPEND = "suspend"
    RESUME = "resume"
    SYNC = "sync"
    GATE_PASSED = "gate-passed"
    SYNC_REQUESTED = "sync-requested"


#: The kinds of severity ``info``; every other kind is ``error``.
INFO_KINDS = frozenset({Kind.SYNC, Kind.GATE_PASSED, Kind.SYNC_REQUESTED})


def severity_of(kind: Kind) -> Literal["info", "error"]:
    """``info`` for routine kinds (:data:`INFO_KINDS`), else ``error``."""
    return "info" if kind in INFO_KINDS else "error"


class Payload(BaseModel):
    """The JSON body a ``webhook`` target receives (and what a ``slack`` one's text is made of)."""

    environment: str
    kind: Kind
    severity: Literal["info", "error"]
    message: str = Field(description="one line for people")
    revision: str = Field(default="", description="the commit concerned ('' when none)")
    at: float = Field(default_factory=time.time, description="UNIX time, seconds")
    subject: str = Field(description="the NATS subject of the event it comes from")
    event: dict[str, Any] = Field(default_factory=dict, description="that event, as published")


# -- events → payloads -----------------------------------------------------------------------------------


def _short(revision: str) -> str:
    sha = revision.rsplit("@sha1:", 1)[-1]
    return sha[:7] if sha else ""


def payloads_of(subject: str, data: bytes) -> list[Payload]:
    """The notifications an event published on ``subject`` makes (none for a pass that changed nothing,
    or an event that cannot be read)."""
    try:
        event = json.loads(data)
    except ValueError:
        return []
    if not isinstance(event, dict):
        return []
    family = subject.split(".")[1] if subject.count(".") >= 2 else ""
    env = str(event.get("environment") or "")
    if not env:
        return []

    def make(kind: Kind, message: str, revision: str = "") -> Payload:
        return Payload(
            environment=env,
            kind=kind,
            severity=severity_of(kind),
            message=message,
            revision=revision,
            subject=subject,
            event=event,
        )

    if family == "result":
        revision = str(event.get("revision") or "")
        if not event.get("ok"):
            what = "blocked" if event.get("blocked") else "failed"
            return [make(Kind.PASS_FAILED, f"{env}: pass {what}: {event.get('error', '')}".strip(), revision)]
        entries = (event.get("changes") or {}).get("entries") or []
        changed = [e for e in entries if e.get("action") in ("created", "configured", "deleted")]
        if not changed:
            return []
        return [
            make(Kind.SYNC, f"{env}: applied {_short(revision)}: {len(changed)} object(s) changed", revision)
        ]
    if family == "drift":
        obj = event.get("object", "?")
        paths = ", ".join(str(p) for p in event.get("paths") or [])
        state = "corrected" if event.get("corrected") else f"not corrected ({event.get('mode', '')})"
        if event.get("error"):
            state = f"not corrected: {event['error']}"
        return [make(Kind.DRIFT, f"{env}: drift of {obj} ({paths}): {state}")]
    if family == "promotion":
        kind = event.get("kind")
        revision = str(event.get("revision") or "")
        message = str(event.get("message") or "")
        if kind == "outcome":
            passed = event.get("passed")
            if passed is None or event.get("outcome") not in (
                "healthy",
                "unverified",
                "degraded",
                "failed",
                "timed-out",
            ):
                return []
            k = Kind.GATE_PASSED if passed else Kind.GATE_FAILED
            verb = "passed" if passed else "failed"
            text = (
                f"{env}: health gate {verb} for {revision[:7]} ({event.get('verdict') or event['outcome']})"
            )
            return [make(k, f"{text}: {message}" if message else text, revision)]
        if kind in ("rollback", "rollback-failed"):
            verb = "rolled back" if kind == "rollback" else "rollback FAILED"
            return [make(Kind.ROLLBACK, f"{env}: {verb}: {message}".rstrip(": "), revision)]
        if kind in ("promoted", "proposed"):
            where = f" ({event['url']})" if event.get("url") else ""
            return [make(Kind.PROMOTION, f"{env}: {kind} {revision[:7]}: {message}{where}", revision)]
        return []
    if family == "control":
        action = event.get("action")
        by = event.get("by", "?")
        why = f": {event['reason']}" if event.get("reason") else ""
        mapping = {"suspend": Kind.SUSPEND, "resume": Kind.RESUME, "sync": Kind.SYNC_REQUESTED}
        if action not in mapping:
            return []
        verb = {"suspend": "suspended", "resume": "resumed", "sync": "pass requested"}[action]
        return [make(mapping[action], f"{env}: {verb} by {by}{why}", str(event.get("revision") or ""))]
    return []


def wanted(target: NotificationTarget, kind: Kind) -> bool:
    """Whether ``target`` takes notifications of ``kind`` (its ``eventSeverity`` and ``events``)."""
    if target.type == "commit-status":
        return False
    if target.event_severity == "error" and severity_of(kind) != "error":
        return False
    return not target.events or kind.value in target.events


# -- signatures ---------------------------------------------------------------------------------------


def sign(body: bytes, token: str) -> str:
    """The ``X-Reconciler-Signature`` value of ``body``: ``sha256=`` and the lower-case hex HMAC-SHA256
    (RFC 2104) of the raw bytes with ``token`` (UTF-8) as key."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, token: str, header: str | None) -> bool:
    """Whether ``header`` (an ``X-Reconciler-Signature`` value) signs ``body`` with ``token``, compared in
    constant time (what a receiver does)."""
    return header is not None and hmac.compare_digest(sign(body, token), header.strip())


# -- secrets ------------------------------------------------------------------------------------------------


class SecretReader:
    """Reads the secrets notification targets name, and keeps each for :data:`SECRET_TTL` seconds.

    Args:
        client: reads Secrets in the cluster (``None``: only ``file`` references work).
        ttl: seconds a value is reused.
    """

    def __init__(self, client: KubeClient | None, ttl: float = SECRET_TTL) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: dict[tuple[str, str, str], tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def read(self, ref: NotificationSecretRef, namespace: str | None) -> dict[str, str]:
        """The keys of the secret ``ref`` names (blocking: call it from a worker thread).

        Raises:
            ConfigError: the Secret or file cannot be read, or holds no mapping of strings (the message
                names it, never a value).
        """
        ns = ref.namespace or namespace or "default"
        key = (ref.name or "", ns if ref.name else "", ref.file or "")
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
        values = self._read_secret(ref.name, ns) if ref.name else self._read_file(Path(ref.file or ""))
        with self._lock:
            self._cache[key] = (time.monotonic(), values)
        return values

    def _read_secret(self, name: str, namespace: str) -> dict[str, str]:
        from reconciler.model import ObjectRef

        if self.client is None:
            raise ConfigError(f"Secret {namespace}/{name}: this process has no cluster to read it from")
        try:
            obj = self.client.get(ObjectRef(kind="Secret", namespace=namespace, name=name))
        except KubeError as exc:
            raise ConfigError(f"Secret {namespace}/{name} cannot be read: {exc}") from None
        if obj is None:
            raise ConfigError(f"Secret {namespace}/{name} does not exist")
        out = {
            k: base64.b64decode(v).decode("utf-8", "replace").strip()
            for k, v in (obj.get("data") or {}).items()
        }
        out.update({k: str(v).strip() for k, v in (obj.get("stringData") or {}).items()})
        return out

    @staticmethod
    def _read_file(path: Path) -> dict[str, str]:
        try:
            if path.is_dir():  # a mounted Secret: one file per key (Kubernetes' ..data links skipped)
                return {
                    p.name: p.read_text(encoding="utf-8").strip()
                    for p in sorted(path.iterdir())
                    if p.is_file() and not p.name.startswith(".")
                }
            from ruamel.yaml import YAML

            data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"secret file {path}: {getattr(exc, 'strerror', None) or exc}") from None
        except Exception as exc:  # ruamel's parser errors
            raise ConfigError(f"secret file {path}: not YAML or JSON: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"secret file {path}: expected a mapping of keys (address, token)")
        return {str(k): str(v).strip() for k, v in data.items()}


# -- the notifier --------------------------------------------------------------------------------


class _Retryable(Exception):
    """A failed attempt worth another one (connection error, timeout, 429, 5xx)."""


class _Permanent(Exception):
    """A failed attempt that another one would not fix (other 4xx, a bad secret)."""


TargetsOf = Callable[[str], "Environment | None"]


class Notifier:
    """Sends notifications for the environments' targets.

    Args:
        environment_of: the current :class:`~reconciler.model.Environment` of a name (``None``: unknown).
        secrets: reads the targets' secrets.
        metrics: counts outcomes (``None``: :func:`reconciler.observe.metrics.default_metrics`).
        queue_size: notifications waiting per target (:data:`QUEUE_SIZE`).
        attempts: attempts per delivery (:data:`ATTEMPTS`).
        backoff: the first wait between attempts, seconds (:data:`BACKOFF`); ``max_backoff`` the longest.
        timeout: the limit of one request, seconds.
    """

    def __init__(
        self,
        environment_of: TargetsOf,
        secrets: SecretReader,
        *,
        metrics: Metrics | None = None,
        queue_size: int = QUEUE_SIZE,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        timeout: float = TIMEOUT,
    ) -> None:
        from reconciler.observe.metrics import default_metrics

        self.environment_of = environment_of
        self.secrets = secrets
        self.metrics = metrics or default_metrics()
        self.queue_size = queue_size
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._queues: dict[tuple[str, str], asyncio.Queue[Payload]] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._last_failure: dict[str, tuple[str, str]] = {}
        self._drop_logged: dict[tuple[str, str], tuple[float, int]] = {}
        self._statuses: dict[tuple[str, str], tuple[tuple[str, str], CommitStatuses]] = {}
        self._status_lock = threading.Lock()
        #: (target "env/name", result) → count, for tests and the status of deliveries
        self.counts: dict[tuple[str, str], int] = {}

    # -- intake (event loop; never blocks) -------------------------------------------------------------

    def offer(self, subject: str, data: bytes) -> int:
        """Queue the notifications the event ``subject``/``data`` makes for its environment's targets;
        returns how many were queued. Never blocks and never raises: a full queue drops (counted)."""
        try:
            payloads = payloads_of(subject, data)
        except Exception as exc:  # a malformed event must not reach the daemon
            log.warning("notify.unreadable_event", subject=subject, error=repr(exc))
            return 0
        queued = 0
        for p in payloads:
            env = self.environment_of(p.environment)
            if env is None or not env.notifications:
                continue
            if p.kind is Kind.PASS_FAILED:  # once per revision and error, not every poll
                key = (p.revision, str(p.event.get("error", "")))
                if self._last_failure.get(p.environment) == key:
                    continue
                self._last_failure[p.environment] = key
            elif p.kind is Kind.SYNC or (p.subject.startswith("reconciler.result.") and p.event.get("ok")):
                self._last_failure.pop(p.environment, None)
            for target in env.notifications:
                if wanted(target, p.kind):
                    queued += self._enqueue(p.environment, target.name, p)
        return queued

    def _enqueue(self, env: str, name: str, payload: Payload) -> int:
        key = (env, name)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue(maxsize=self.queue_size)
        try:
            queue.put_nowait(payload)
        except asyncio.QueueFull:
            self._count(env, name, "dropped")
            now = time.monotonic()
            last, since = self._drop_logged.get(key, (0.0, 0))
            if now - last >= DROP_LOG_INTERVAL:  # one line per target and interval, not one per drop
                log.warning(
                    "notify.dropped",
                    environment=env,
                    target=name,
                    kind=payload.kind.value,
                    dropped=since + 1,
                    queued=queue.qsize(),
                    why="the target's queue is full (its receiver is down or slow)",
                )
                self._drop_logged[key] = (now, 0)
            else:
                self._drop_logged[key] = (last, since + 1)
            return 0
        worker = self._workers.get(key)
        if worker is None or worker.done():
            self._workers[key] = asyncio.create_task(
                self._work(env, name, queue), name=f"notify-{env}-{name}"
            )
        return 1

    def _count(self, env: str, name: str, result: str) -> None:
        target = f"{env}/{name}"
        self.counts[(target, result)] = self.counts.get((target, result), 0) + 1
        self.metrics.notifications.labels(env, name, result).inc()

    # -- delivery ------------------------------------------------------------------------------------------

    async def _work(self, env: str, name: str, queue: asyncio.Queue[Payload]) -> None:
        while True:
            payload = await queue.get()
            try:
                await self._deliver(env, name, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not stop the target's queue
                log.error("notify.crashed", environment=env, target=name, error=repr(exc))
            finally:
                queue.task_done()

    def _target(self, env_name: str, name: str) -> tuple[NotificationTarget, str | None] | None:
        env = self.environment_of(env_name)
        if env is None:
            return None
        for t in env.notifications:
            if t.name == name:
                return t, env.namespace
        return None

    async def _deliver(self, env: str, name: str, payload: Payload) -> None:
        found = self._target(env, name)
        if found is None:  # the target left envs/<env>.yaml meanwhile
            return
        target, namespace = found
        delivery = uuid.uuid4().hex
        try:
            assert target.secret_ref is not None
            secret = await asyncio.to_thread(self.secrets.read, target.secret_ref, namespace)
            address = secret.get("address", "")
            if not address.startswith(("http://", "https://")):
                raise _Permanent(f"the secret's address is missing or not an http(s) URL ({_where(target)})")
            body, headers = _request(target, payload, secret.get("token"), delivery)
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=self.backoff, max=self.max_backoff),
                retry=retry_if_exception_type(_Retryable),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    await self._post(address, body, headers)
        except (_Retryable, _Permanent, ConfigError) as exc:
            self._count(env, name, "failed")
            log.warning(
                "notify.failed",
                environment=env,
                target=name,
                kind=payload.kind.value,
                delivery=delivery,
                error=str(exc),
            )
            return
        self._count(env, name, "sent")
        log.info("notify.sent", environment=env, target=name, kind=payload.kind.value, delivery=delivery)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                if resp.status < 300:
                    return
                text = (await resp.text(errors="replace"))[:200]
                what = f"HTTP {resp.status} from {_origin(url)}: {' '.join(text.split())}".rstrip(": ")
                if resp.status == 429 or resp.status >= 500:
                    raise _Retryable(what)
                raise _Permanent(what)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Retryable(f"{_origin(url)}: {exc or type(exc).__name__}") from None

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout`` seconds) until every queued notification was sent or given up."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues.values())), timeout)

    async def close(self) -> None:
        """Stop the workers (what is still queued is dropped) and close the HTTP session."""
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()
        if self._session is not None:
            await self._session.close()

    # -- commit statuses ----------------------------------------------------------------------------------

    def commit_statuses(self, env: Environment, repo: str) -> CommitStatuses | None:
        """The poster of ``env``'s ``reconciler/<env>`` statuses when it has a ``commit-status`` target
        (its secret's ``token``, and ``address`` as the API base when given), else ``None``. Blocking (the
        secret may be read): call it from a worker thread.

        Raises:
            ConfigError: the secret cannot be read or has no ``token``; the repository's host is unknown.
        """
        from reconciler.promote.hosts import host_config
        from reconciler.promote.statuses import CommitStatuses

        target = next((t for t in env.notifications if t.type == "commit-status"), None)
        if target is None or target.secret_ref is None:
            return None
        secret = self.secrets.read(target.secret_ref, env.namespace)
        token = secret.get("token", "")
        if not token:
            raise ConfigError(f"{_where(target)}: the secret has no 'token' key (the Git host API token)")
        fingerprint = (hashlib.sha256(token.encode()).hexdigest(), secret.get("address", ""))
        with self._status_lock:
            cached = self._statuses.get((env.name, target.name))
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
            config = host_config(repo, token=token, api_url=secret.get("address") or None)
            if config is None:
                raise ConfigError(
                    f"{_where(target)}: the Git host of {repo} is unknown (set RECONCILER_GIT_HOST and "
                    "RECONCILER_GIT_HOST_REPO)"
                )
            poster = CommitStatuses(config)
            self._statuses[(env.name, target.name)] = (fingerprint, poster)
            return poster


def _where(target: NotificationTarget) -> str:
    ref = target.secret_ref
    what = f"Secret {ref.name}" if ref is not None and ref.name else f"file {ref.file if ref else '?'}"
    return f"notification target {target.name!r} ({what})"


def _origin(url: str) -> str:
    """Scheme, host and port of ``url`` (a webhook URL's path often is its secret: never logged)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def slack_text(payload: Payload) -> str:
    """The one line a ``slack`` target posts."""
    mark = ":red_circle:" if payload.severity == "error" else ":large_green_circle:"
    return f"{mark} [{payload.kind.value}] {payload.message}"


def _request(
    target: NotificationTarget, payload: Payload, token: str | None, delivery: str
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery to ``target``."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "reconciler-notifier",
        EVENT_HEADER: payload.kind.value,
        DELIVERY_HEADER: delivery,
    }
    if target.type == "slack":
        body = json.dumps({"text": slack_text(payload)}).encode()
    else:
        body = payload.model_dump_json().encode()
        if token:
            headers[SIGNATURE_HEADER] = sign(body, token)
    return body, headers


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "Kind",
    "Notifier",
    "Payload",
    "SecretReader",
    "payloads_of",
    "sign",
    "verify_signature",
]
