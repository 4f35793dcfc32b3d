"""Retries with capped exponential backoff for Kubernetes API calls where retrying can help.

Which errors are retried (:func:`should_retry`), following client-go's rules (``rest.Request``: a 429 or
5xx answer with ``Retry-After`` is retried for every method, a broken connection only for idempotent ones):

* :class:`~reconciler.errors.ThrottledError` (HTTP 429, "Too Many Requests"): the API server did not
  process the request, so it is retried for every method.
* :class:`~reconciler.errors.ServerError` with a ``Retry-After`` (5xx; the server refused the request and
  says when to come back): retried for every method.
* :class:`~reconciler.errors.ServerError` without one: retried only for idempotent calls (GET, server-side
  apply PATCH, PUT, DELETE), and only when it looks transient: status 0 (the server could not be reached
  or the connection broke) or 502/503/504 (a gateway or an overloaded server). A POST may have been
  processed before the connection broke, so it is not repeated. A plain 500 is not retried either: the API
  server answers 500 for deterministic failures too (e.g. "failed to create typed patch object").
* Everything else (conflict, invalid, forbidden, not found, bugs) is raised at once: retrying cannot help.

Waits: exponential backoff ``initial * multiplier ** (attempt - 1)``, capped at ``maximum`` seconds, plus
up to ``jitter`` (a fraction) of random spread (the "exponential backoff with jitter" scheme of the AWS
Architecture Blog, "Exponential Backoff And Jitter", 2015). When the server says how long to wait
(``Retry-After`` header, RFC 9110 §10.2.3, seconds or an HTTP date; or ``details.retryAfterSeconds`` of a
Kubernetes ``Status``), the wait is at least that long, capped at ``max_retry_after`` seconds. The whole
call gives up after ``attempts`` attempts or when the next wait would end past ``deadline`` seconds after
the first attempt, and the last error is raised unchanged (never a wrapper), so callers keep matching on
the typed error.

Built on tenacity (https://tenacity.readthedocs.io): :func:`call_with_retry` wraps one call,
:func:`retrying` is the decorator form.
"""

from __future__ import annotations

import email.utils
import functools
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import tenacity

from reconciler.errors import KubeError, ServerError, ThrottledError

__all__ = [
    "DEFAULT_POLICY",
    "IDEMPOTENT_METHODS",
    "TRANSIENT_STATUSES",
    "RetryPolicy",
    "call_with_retry",
    "parse_retry_after",
    "retry_after_from_response",
    "retry_after_of",
    "retrying",
    "set_retry_after",
    "should_retry",
]

P = ParamSpec("P")
T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({0, 502, 503, 504})
"""ServerError statuses worth repeating an idempotent call for (0: no answer at all)."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
"""HTTP methods whose repetition has the same effect as one call. PATCH is here because this project only
sends server-side apply patches (``application/apply-patch+yaml``), which are declarative."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        attempts: total attempts including the first (>= 1).
        initial: the first backoff, in seconds.
        multiplier: growth factor of the backoff per attempt.
        maximum: cap of one backoff, in seconds (a server's ``Retry-After`` may exceed it, up to
            ``max_retry_after``).
        jitter: random extra wait as a fraction of the backoff (0 disables it), in [0, 1].
        deadline: seconds after the first attempt after which no new attempt is started.
        max_retry_after: cap, in seconds, of a server-requested wait.
    """

    attempts: int = 5
    initial: float = 0.2
    multiplier: float = 2.0
    maximum: float = 5.0
    jitter: float = 0.2
    deadline: float = 30.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        for name in ("initial", "maximum", "deadline", "max_retry_after"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"RetryPolicy.{name} must be a finite number >= 0, got {value!r}")
        if self.multiplier < 1:
            raise ValueError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter must be in [0, 1], got {self.jitter}")

    def backoff(self, attempt: int) -> float:
        """The backoff before attempt ``attempt + 1`` (``attempt`` >= 1), in seconds, without jitter."""
        return float(min(self.maximum, self.initial * self.multiplier ** max(0, attempt - 1)))


DEFAULT_POLICY = RetryPolicy()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value (RFC 9110 §10.2.3).

    Args:
        value: delay-seconds (``"3"``) or an HTTP date (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: the current Unix time in seconds, for HTTP dates (default: ``time.time()``).

    Returns:
        Seconds (>= 0), or ``None`` when the value is missing or not understood.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_after_of(exc: BaseException) -> float | None:
    """The server-requested wait of an error, in seconds, or ``None``.

    Reads a ``retry_after`` attribute (seconds) when the client set one on the error (from the
    ``Retry-After`` header or a Status' ``details.retryAfterSeconds``).
    """
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def should_retry(exc: BaseException, *, idempotent: bool = True) -> bool:
    """True when repeating the call that raised ``exc`` can help (see the module docstring).

    Args:
        exc: the error the call raised.
        idempotent: whether the call may be repeated safely (see :data:`IDEMPOTENT_METHODS`).
    """
    if isinstance(exc, ThrottledError):
        return True
    if isinstance(exc, ServerError):
        if retry_after_of(exc) is not None:  # refused with "come back later": not processed
            return True
        return idempotent and exc.status in TRANSIENT_STATUSES
    return False


class _Wait(tenacity.wait.wait_base):
    """Exponential backoff with jitter, at least the server's Retry-After (capped)."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng
        self._memo: dict[int, float] = {}  # attempt -> wait, so stop and wait see the same value

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        attempt = retry_state.attempt_number
        if attempt not in self._memo:
            self._memo[attempt] = self._compute(retry_state)
        return self._memo[attempt]

    def _compute(self, retry_state: tenacity.RetryCallState) -> float:
        base = self.policy.backoff(retry_state.attempt_number)
        wait = base + (base * self.policy.jitter * self.rng.random() if self.policy.jitter else 0.0)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        server = retry_after_of(exc) if exc is not None else None
        if server is not None:
            wait = max(wait, min(server, self.policy.max_retry_after))
        return wait


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    idempotent: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """Call ``fn()`` and retry it with backoff while it raises a retryable error.

    Args:
        fn: the call; it is invoked at most ``policy.attempts`` times.
        policy: attempts, backoff and deadline (seconds).
        idempotent: whether repeating ``fn`` is safe for server errors (429 is always retried).
        sleep: how to wait, given seconds (tests pass a recorder).
        clock: monotonic time in seconds, for the deadline.
        rng: the random source of the jitter (default: a fresh ``random.Random()``).
        on_retry: called before each wait with the error, the attempt number that failed (1-based) and
            the wait in seconds (for logs and metrics).

    Returns:
        ``fn``'s result.

    Raises:
        Exception: the last error ``fn`` raised, unchanged, when it is not retryable, when the attempts
            are used up, or when the next wait would end after ``policy.deadline``.
    """
    start = clock()
    waiter = _Wait(policy, rng or random.Random())

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.attempts:
            return True
        upcoming = waiter(state)
        return clock() - start + upcoming > policy.deadline

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is None or state.outcome is None or state.next_action is None:
            return
        exc = state.outcome.exception()
        if exc is not None:
            on_retry(exc, state.attempt_number, float(state.next_action.sleep))

    retryer = tenacity.Retrying(
        sleep=sleep,
        stop=stop,
        wait=waiter,
        retry=tenacity.retry_if_exception(lambda e: should_retry(e, idempotent=idempotent)),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retryer(fn)


def retrying(
    policy: RetryPolicy = DEFAULT_POLICY,
    *,
    idempotent: bool | Callable[..., bool] = True,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator form of :func:`call_with_retry`.

    Args:
        policy: attempts, backoff and deadline.
        idempotent: a bool, or a function of the decorated call's arguments that says whether this
            call is idempotent (e.g. ``lambda self, method, *a, **k: method in IDEMPOTENT_METHODS``).
        sleep: how to wait, given seconds.
        on_retry: see :func:`call_with_retry`.

    Returns:
        A decorator; the wrapped function raises what :func:`call_with_retry` raises.
    """

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            safe = idempotent(*args, **kwargs) if callable(idempotent) else idempotent
            return call_with_retry(
                lambda: fn(*args, **kwargs),
                policy=policy,
                idempotent=safe,
                sleep=sleep,
                on_retry=on_retry,
            )

        return wrapper

    return decorate


def retry_after_from_response(headers: Mapping[str, str] | None, status_body: Any) -> float | None:
    """The server-requested wait of a failed response, in seconds, or ``None``.

    Args:
        headers: the response headers (case-insensitive mapping as urllib3 returns it), or ``None``.
        status_body: the decoded Kubernetes ``Status`` body (a dict) or anything else.

    The ``Retry-After`` header wins; otherwise ``details.retryAfterSeconds`` of the Status (the
    Kubernetes API conventions, "Response Status Kind").
    """
    if headers is not None:
        header = parse_retry_after(headers.get("Retry-After"))
        if header is not None:
            return header
    if isinstance(status_body, dict):
        details = status_body.get("details")
        if isinstance(details, dict):
            seconds = details.get("retryAfterSeconds")
            if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0:
                return float(seconds)
    return None


def set_retry_after(exc: KubeError, seconds: float | None) -> KubeError:
    """Record the server-requested wait (seconds) on ``exc`` for :func:`retry_after_of`; returns ``exc``."""
    if seconds is not None:
        exc.__dict__["retry_after"] = float(seconds)
    return exc
