"""Registry and Git-host webhook receivers: verify → normalise → publish to NATS JetStream.

No Git and no cluster access here; the daemon consumes :class:`ImagePushed` / :class:`GitPushed`.
"""

from webhooks.events import GitPushed, ImagePushed

__all__ = ["GitPushed", "ImagePushed"]
