"""The project's error tree. Each error says whether retrying can help (``retryable``)."""

from __future__ import annotations

from collections.abc import Callable


def _default_kubeconfig_hint() -> str:
    return '--kubeconfig "$(reconciler cluster kubeconfig)"'


#: How an error about a missing kubeconfig tells the user to pass the local cluster's; the command line
#: replaces it with one that names the state directories of the local clusters running now.
local_kubeconfig_hint: Callable[[], str] = _default_kubeconfig_hint


class ReconcilerError(Exception):
    """Base class of every error this project raises on purpose."""

    retryable: bool = False


class ConfigError(ReconcilerError):
    """A settings or ``envs/*.yaml`` problem; the message names the file and field."""


class SourceError(ReconcilerError):
    """Git could not be read, fetched or pushed."""

    retryable = True


class KubeError(ReconcilerError):
    """A Kubernetes API call failed.

    Attributes:
        obj: the object as ``Kind/namespace/name`` (or a path when no object applies).
        status: the HTTP status code (0 when the server could not be reached).
        reason: the API ``Status.reason`` (``Conflict``, ``Invalid`` ...).
    """

    def __init__(self, obj: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{obj}: {reason or status}: {message}")
        self.obj = obj
        self.status = status
        self.reason = reason
        self.message = message


class ConflictError(KubeError):
    """409: a field-manager conflict or a resourceVersion conflict."""


class InvalidError(KubeError):
    """422/400: the object was rejected by validation (schema, CEL, immutable field)."""


class ForbiddenError(KubeError):
    """403: RBAC refused the call."""


class NotFoundError(KubeError):
    """404: the object, or its kind, does not exist."""


class ThrottledError(KubeError):
    """429: the API server asked us to slow down."""

    retryable = True


class ServerError(KubeError):
    """5xx or a connection failure."""

    retryable = True


class FencedError(KubeError):
    """A write refused before it was sent: this process no longer holds the lease of the environment it
    writes for (a sharded daemon whose lease renewal failed, or that handed the environment over)."""

    def __init__(self, obj: str, message: str) -> None:
        super().__init__(obj, 0, "Fenced", message)


def kube_error(obj: str, status: int, reason: str, message: str) -> KubeError:
    """Build the typed :class:`KubeError` subclass for an HTTP status."""
    cls: type[KubeError]
    if status == 409:
        cls = ConflictError
    elif status in (400, 422):
        cls = InvalidError
    elif status in (401, 403):
        cls = ForbiddenError
    elif status == 404:
        cls = NotFoundError
    elif status == 429:
        cls = ThrottledError
    elif status == 0 or status >= 500:
        cls = ServerError
    else:
        cls = KubeError
    return cls(obj, status, reason, message)
