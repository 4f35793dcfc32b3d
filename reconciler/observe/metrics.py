"""Prometheus metrics of the daemon and the webhook receivers (prometheus-client).

Every :class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry`, so two daemons in one
process (as in the tests) never share or collide on series. Names follow the Prometheus naming guide
(https://prometheus.io/docs/practices/naming/): a ``reconciler_`` prefix, base units (seconds), ``_total``
for counters.

Series (labels in brackets):

* ``reconciler_reconcile_duration_seconds`` histogram and ``reconciler_reconcile_total`` counter
  [environment, result] — result is ``success``, ``blocked`` (a guard stopped the pass before any write)
  or ``failure``.
* ``reconciler_last_applied_revision_info`` [environment, revision, branch, sha] (an info metric) and
  ``reconciler_last_applied_timestamp_seconds`` [environment].
* ``reconciler_objects`` gauge [environment, health] — objects by verdict after the last pass.
* ``reconciler_health_verdict`` gauge [environment, verdict] — 1 for the environment's verdict after the
  last pass (Healthy, Progressing, Degraded, Unverified, Failed), 0 for the others (a state set).
* ``reconciler_object_changes_total`` [environment, action] — created, configured, deleted, failed.
* ``reconciler_drift_detected_total`` [environment, mode] and ``reconciler_drift_corrected_total``
  [environment].
* ``reconciler_prunes_total`` [environment] — objects deleted because they left Git.
* ``reconciler_webhook_deliveries_total`` [provider, result].
* ``reconciler_nats_consumer_pending_messages`` and ``reconciler_nats_consumer_ack_pending_messages``
  [stream, consumer] — JetStream consumer lag, sampled at scrape time.
* ``reconciler_git_operation_duration_seconds`` histogram [operation, result] — fetch and push.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import choose_encoder

from reconciler.model import Action, HealthState, PassResult, verdict

#: Buckets for a reconcile pass, seconds: passes take from tens of milliseconds (no-op) to minutes (CRDs).
PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: Buckets for one Git fetch or push, seconds.
GIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Webhook delivery outcomes, in the words the webhook server answers with.
WEBHOOK_RESULTS = (
    "accepted",
    "ignored",
    "unauthorized",
    "malformed",
    "too_large",
    "unknown_receiver",
    "unavailable",
)

_COUNTED_ACTIONS = (Action.CREATED, Action.CONFIGURED, Action.DELETED, Action.FAILED)


class Metrics:
    """The daemon's metrics in a registry of their own.

    Args:
        registry: where to register; ``None`` creates a fresh :class:`CollectorRegistry`.

    The ``observe_*`` methods are thread-safe (prometheus-client's values are) and cheap: call them from
    the event loop or from worker threads.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconcile_duration = Histogram(
            "reconciler_reconcile_duration_seconds",
            "Duration of reconcile passes, seconds.",
            ["environment", "result"],
            buckets=PASS_BUCKETS,
            registry=r,
        )
        self.reconcile_total = Counter(
            "reconciler_reconcile",
            "Reconcile passes finished.",
            ["environment", "result"],
            registry=r,
        )
        self.last_revision = Info(
            "reconciler_last_applied_revision",
            "The revision the last successful pass applied.",
            ["environment"],
            registry=r,
        )
        self.last_applied = Gauge(
            "reconciler_last_applied_timestamp_seconds",
            "UNIX time the last successful pass started, seconds.",
            ["environment"],
            registry=r,
        )
        self.objects = Gauge(
            "reconciler_objects",
            "Managed objects by health state after the last pass.",
            ["environment", "health"],
            registry=r,
        )
        self.verdict = Gauge(
            "reconciler_health_verdict",
            "1 for the environment's health verdict after the last pass, 0 for the other verdicts.",
            ["environment", "verdict"],
            registry=r,
        )
        self.changes = Counter(
            "reconciler_object_changes",
            "Objects a pass created, configured, deleted or failed to apply.",
            ["environment", "action"],
            registry=r,
        )
        self.drift_detected = Counter(
            "reconciler_drift_detected",
            "Drift seen by the live-object watches.",
            ["environment", "mode"],
            registry=r,
        )
        self.drift_corrected = Counter(
            "reconciler_drift_corrected",
            "Drift corrected by re-applying the desired state.",
            ["environment"],
            registry=r,
        )
        self.prunes = Counter(
            "reconciler_prunes",
            "Objects deleted because they left Git.",
            ["environment"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "reconciler_webhook_deliveries",
            "Webhook deliveries by provider and result.",
            ["provider", "result"],
            registry=r,
        )
        self.notifications = Counter(
            "reconciler_notifications",
            "Notifications by environment, target and result: sent, failed (given up after retries or "
            "refused), dropped (the target's queue was full).",
            ["environment", "target", "result"],
            registry=r,
        )
        self.consumer_pending = Gauge(
            "reconciler_nats_consumer_pending_messages",
            "Messages in the stream not yet delivered to the durable consumer.",
            ["stream", "consumer"],
            registry=r,
        )
        self.consumer_ack_pending = Gauge(
            "reconciler_nats_consumer_ack_pending_messages",
            "Messages delivered to the durable consumer and not yet acknowledged.",
            ["stream", "consumer"],
            registry=r,
        )
        self.git_duration = Histogram(
            "reconciler_git_operation_duration_seconds",
            "Duration of Git fetch and push operations, seconds.",
            ["operation", "result"],
            buckets=GIT_BUCKETS,
            registry=r,
        )
        self._lock = threading.Lock()

    # -- the daemon's hooks -----------------------------------------------------------------------

    def observe_pass(self, result: PassResult, *, dry_run: bool = False) -> None:
        """Record one finished pass: duration, outcome, revision, health and changes.

        Args:
            result: the pass result (``duration`` in seconds, ``started_at`` UNIX seconds).
            dry_run: a plan-only pass (``reconciler diff``): counted nowhere, since nothing was applied.
        """
        if dry_run:
            return
        env = result.environment
        outcome = "success" if result.ok else "blocked" if result.blocked else "failure"
        self.reconcile_duration.labels(env, outcome).observe(max(result.duration, 0.0))
        self.reconcile_total.labels(env, outcome).inc()
        for action in _COUNTED_ACTIONS:
            n = result.changes.count(action)
            if n:
                self.changes.labels(env, action.value).inc(n)
        deleted = result.changes.count(Action.DELETED)
        if deleted:
            self.prunes.labels(env).inc(deleted)
        if result.ok and result.revision:
            branch, _, sha = result.revision.partition("@sha1:")
            self.last_revision.labels(env).info({"revision": result.revision, "branch": branch, "sha": sha})
            self.last_applied.labels(env).set(result.started_at)
        if result.health or result.ok:
            counts = {state: 0 for state in HealthState}
            for h in result.health.values():
                counts[h.state] += 1
            current = verdict(result.health).state
            with self._lock:
                for state, n in counts.items():
                    self.objects.labels(env, state.value).set(n)
                    self.verdict.labels(env, state.value).set(1 if state is current else 0)

    def observe_drift(self, event: Mapping[str, Any]) -> None:
        """Record one drift event as the daemon emits it.

        Args:
            event: ``{"environment": str, "mode": "correct"|"warn", "corrected": bool, ...}``; an event
                with ``corrected`` true counts as detected and corrected.
        """
        env = str(event.get("environment", ""))
        mode = str(event.get("mode", "correct"))
        self.drift_detected.labels(env, mode).inc()
        if event.get("corrected"):
            self.drift_corrected.labels(env).inc()

    def observe_git(self, operation: str, seconds: float, *, ok: bool = True) -> None:
        """Record one Git operation.

        Args:
            operation: ``fetch`` or ``push`` (any short word is accepted).
            seconds: how long it took.
            ok: whether it succeeded.
        """
        self.git_duration.labels(operation, "success" if ok else "failure").observe(max(seconds, 0.0))

    def observe_webhook(self, provider: str, result: str) -> None:
        """Record one webhook delivery.

        Args:
            provider: the receiver's provider (``github``, ``ghcr``, ``harbor`` …; ``unknown`` when the
                receiver does not exist).
            result: one of :data:`WEBHOOK_RESULTS`.

        Raises:
            ValueError: for a result outside :data:`WEBHOOK_RESULTS` (keeps the label set bounded).
        """
        if result not in WEBHOOK_RESULTS:
            raise ValueError(f"webhook result {result!r} is not one of {', '.join(WEBHOOK_RESULTS)}")
        self.webhook_deliveries.labels(provider or "unknown", result).inc()

    def set_consumer_lag(self, stream: str, consumer: str, pending: int, ack_pending: int) -> None:
        """Record a JetStream consumer's lag (``num_pending`` and ``num_ack_pending`` of its info)."""
        self.consumer_pending.labels(stream, consumer).set(pending)
        self.consumer_ack_pending.labels(stream, consumer).set(ack_pending)

    def forget_environment(self, env: str) -> None:
        """Drop the gauges of an environment that is no longer reconciled (counters stay)."""
        with self._lock:
            for state in HealthState:
                for gauge in (self.objects, self.verdict):
                    with contextlib.suppress(KeyError):
                        gauge.remove(env, state.value)
        for metric in (self.last_revision, self.last_applied):
            with contextlib.suppress(KeyError):
                metric.remove(env)

    # -- exposition -------------------------------------------------------------------------------

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The registry's exposition and its content type, negotiated from an HTTP ``Accept`` header as
        prometheus-client's own server does: OpenMetrics when asked for, else the text format 0.0.4.

        Args:
            accept: the scraper's ``Accept`` header ("" for the text format 0.0.4).
        """
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


_default: Metrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> Metrics:
    """The process-wide :class:`Metrics` (created on first use; still not prometheus-client's global
    registry). The webhook server and the daemon each use this one in their own process."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Metrics()
        return _default


def observe_webhook(provider: str, result: str) -> None:
    """:meth:`Metrics.observe_webhook` on :func:`default_metrics` (the call the webhook server makes)."""
    default_metrics().observe_webhook(provider, result)


def observe_git(operation: str, seconds: float, *, ok: bool = True) -> None:
    """:meth:`Metrics.observe_git` on :func:`default_metrics` (for Git pushes made outside the daemon's
    hooks, e.g. by promotions)."""
    default_metrics().observe_git(operation, seconds, ok=ok)


def metrics_handler(metrics: Metrics | None = None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler serving ``metrics`` (default :func:`default_metrics`) with content negotiation,
    for servers other than the daemon's (the webhook receivers: ``app.router.add_get("/metrics", …)``)."""

    async def handler(request: web.Request) -> web.Response:
        m = metrics or default_metrics()
        body, content_type = m.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handler
