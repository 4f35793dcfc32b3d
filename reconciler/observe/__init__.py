"""Observability: Prometheus metrics, structured logs, Kubernetes Events, and the glue to the daemon."""

from reconciler.observe.events import DriftEvent, EventRecorder, event_manifest, pass_events
from reconciler.observe.logging import configure_logging, get_logger, log_context, redact
from reconciler.observe.metrics import Metrics, default_metrics, metrics_handler, observe_git, observe_webhook
from reconciler.observe.observer import Observer

__all__ = [
    "DriftEvent",
    "EventRecorder",
    "Metrics",
    "Observer",
    "configure_logging",
    "default_metrics",
    "event_manifest",
    "get_logger",
    "log_context",
    "metrics_handler",
    "observe_git",
    "observe_webhook",
    "pass_events",
    "redact",
]
