"""reconciler: an event-driven GitOps reconciler for AI-agent platforms on Kubernetes."""

__version__ = "0.1.0"
