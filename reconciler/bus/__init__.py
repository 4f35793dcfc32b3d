"""All NATS I/O (nats-py, JetStream): subjects, streams, publishing and durable consumers."""

from reconciler.bus.client import Bus, BusError, Message
from reconciler.bus.subjects import (
    IMAGE_AUTOMATION_DURABLE,
    IMAGE_EVENTS,
    STREAM_EVENTS,
    STREAM_REGISTRY,
    TRIGGERS_DURABLE,
    control_subject,
    drift_subject,
    git_pull_request_subject,
    git_push_subject,
    image_pushed_subject,
    installation_durable,
    mcp_call_subject,
    promotion_subject,
    reconcile_request_subject,
    result_subject,
    subject_token,
)

__all__ = [
    "IMAGE_AUTOMATION_DURABLE",
    "IMAGE_EVENTS",
    "STREAM_EVENTS",
    "STREAM_REGISTRY",
    "TRIGGERS_DURABLE",
    "Bus",
    "BusError",
    "Message",
    "control_subject",
    "drift_subject",
    "git_pull_request_subject",
    "git_push_subject",
    "image_pushed_subject",
    "installation_durable",
    "mcp_call_subject",
    "promotion_subject",
    "reconcile_request_subject",
    "result_subject",
    "subject_token",
]
