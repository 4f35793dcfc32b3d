"""Unit tests of reconciler.cluster.retry with an in-memory stand-in for the API server."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from reconciler.cluster.retry import (
    IDEMPOTENT_METHODS,
    RetryPolicy,
    call_with_retry,
    parse_retry_after,
    retry_after_from_response,
    retry_after_of,
    retrying,
    set_retry_after,
    should_retry,
)
from reconciler.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    KubeError,
    NotFoundError,
    ServerError,
    ThrottledError,
    kube_error,
)

NO_JITTER = RetryPolicy(attempts=5, initial=0.1, multiplier=2.0, maximum=1.0, jitter=0.0, deadline=60.0)


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


class FakeServer:
    """Answers one scripted outcome per call: an exception to raise or a value to return."""

    def __init__(self, script: Sequence[BaseException | Any]) -> None:
        self.script = list(script)
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def _throttled(retry_after: float | None = None) -> KubeError:
    return set_retry_after(kube_error("ConfigMap/ns/a", 429, "TooManyRequests", "slow down"), retry_after)


def _run(server: FakeServer, clock: FakeClock, **kwargs: Any) -> Any:
    kwargs.setdefault("policy", NO_JITTER)
    return call_with_retry(server, sleep=clock.sleep, clock=clock, **kwargs)


def test_throttled_then_ok_backs_off_exponentially() -> None:
    server = FakeServer([_throttled(), _throttled(), _throttled(), {"ok": True}])
    clock = FakeClock()
    assert _run(server, clock) == {"ok": True}
    assert server.calls == 4
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_backoff_is_capped_and_attempts_are_bounded() -> None:
    errors = [ServerError("Deployment/ns/web", 503, "ServiceUnavailable", "x") for _ in range(10)]
    server = FakeServer(errors)
    clock = FakeClock()
    policy = RetryPolicy(attempts=7, initial=0.1, multiplier=3.0, maximum=0.5, jitter=0.0, deadline=60.0)
    with pytest.raises(ServerError) as info:
        _run(server, clock, policy=policy)
    assert info.value is errors[6]  # the last error itself, not a wrapper
    assert server.calls == 7
    assert clock.sleeps == pytest.approx([0.1, 0.3, 0.5, 0.5, 0.5, 0.5])


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(
        attempts=4, initial=0.1, maximum=1.0, jitter=0.0, deadline=600.0, max_retry_after=5.0
    )
    server = FakeServer([_throttled(2.0), _throttled(60.0), _throttled(0.0), "done"])
    clock = FakeClock()
    assert _run(server, clock, policy=policy) == "done"
    # at least the server's wait (2 s), capped at max_retry_after (5 s), never below our backoff (0.4 s)
    assert clock.sleeps == pytest.approx([2.0, 5.0, 0.4])


def test_deadline_stops_before_a_wait_that_would_pass_it() -> None:
    policy = RetryPolicy(attempts=50, initial=1.0, multiplier=2.0, maximum=100.0, jitter=0.0, deadline=10.0)
    server = FakeServer([_throttled() for _ in range(50)])
    clock = FakeClock()
    with pytest.raises(ThrottledError):
        _run(server, clock, policy=policy)
    # waits 1, 2, 4 (t=7); the next (8) would end at 15 > 10: give up after 4 attempts
    assert clock.sleeps == pytest.approx([1.0, 2.0, 4.0])
    assert server.calls == 4
    assert clock.now <= policy.deadline


@pytest.mark.parametrize(
    "error",
    [
        ConflictError("Deployment/ns/web", 409, "Conflict", "field manager conflict"),
        InvalidError("Service/ns/web", 422, "Invalid", "spec.ports[0].port: Invalid value"),
        ForbiddenError("Secret/ns/s", 403, "Forbidden", "cannot get"),
        NotFoundError("ConfigMap/ns/c", 404, "NotFound", "not found"),
        KubeError("ConfigMap/ns/c", 418, "", "teapot"),
        ValueError("a bug"),
    ],
)
def test_errors_retrying_cannot_fix_are_raised_at_once(error: BaseException) -> None:
    server = FakeServer([error, "never reached"])
    clock = FakeClock()
    with pytest.raises(type(error)) as info:
        _run(server, clock)
    assert info.value is error
    assert server.calls == 1
    assert clock.sleeps == []


def test_server_errors_of_non_idempotent_calls_are_not_repeated() -> None:
    broken = ServerError("/api/v1/namespaces/ns/serviceaccounts/x/token", 0, "Unreachable", "reset")
    server = FakeServer([broken, "second"])
    clock = FakeClock()
    with pytest.raises(ServerError):
        _run(server, clock, idempotent=False)
    assert server.calls == 1
    # ... but a 429, or a 503 with Retry-After (refused, so not processed), is
    refused = set_retry_after(ServerError("x", 503, "ServiceUnavailable", "busy"), 1.0)
    server = FakeServer([_throttled(), refused, "third"])
    assert _run(server, clock, idempotent=False) == "third"
    assert server.calls == 3


def test_should_retry_table() -> None:
    assert should_retry(_throttled())
    assert should_retry(_throttled(), idempotent=False)
    for status in (0, 502, 503, 504):
        assert should_retry(ServerError("x", status, "", ""))
        assert not should_retry(ServerError("x", status, "", ""), idempotent=False)
    # a plain 500 can be deterministic ("failed to create typed patch object"): not repeated ...
    typed_patch = ServerError("ConfigMap/ns/x", 500, "", "failed to create typed patch object")
    assert not should_retry(typed_patch)
    # ... unless the server says when to come back, for any method
    assert should_retry(set_retry_after(ServerError("x", 500, "InternalError", ""), 1.0), idempotent=False)
    assert not should_retry(ConflictError("x", 409, "Conflict", ""))
    assert not should_retry(set_retry_after(ConflictError("x", 409, "Conflict", ""), 1.0))
    assert not should_retry(RuntimeError("x"))


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(attempts=6, initial=0.5, multiplier=2.0, maximum=2.0, jitter=0.5, deadline=600.0)
    server = FakeServer([_throttled() for _ in range(5)] + ["ok"])
    clock = FakeClock()
    assert _run(server, clock, policy=policy, rng=random.Random(7)) == "ok"
    bases = [0.5, 1.0, 2.0, 2.0, 2.0]
    assert len(clock.sleeps) == 5
    for slept, base in zip(clock.sleeps, bases, strict=True):
        assert base <= slept <= base * 1.5
    assert any(slept > base for slept, base in zip(clock.sleeps, bases, strict=True))  # jitter was added


def test_on_retry_reports_error_attempt_and_wait() -> None:
    seen: list[tuple[str, int, float]] = []
    server = FakeServer([_throttled(), ServerError("x", 502, "BadGateway", ""), 1])
    clock = FakeClock()
    _run(server, clock, on_retry=lambda e, n, w: seen.append((type(e).__name__, n, w)))
    assert [(name, n) for name, n, _w in seen] == [("ThrottledError", 1), ("ServerError", 2)]
    assert [w for _name, _n, w in seen] == pytest.approx([0.1, 0.2])


class StandInClient:
    """An in-memory stand-in of KubeClient.request with the decorator applied as the lead would."""

    def __init__(self, script: Sequence[BaseException | Any], sleep: Callable[[float], None]) -> None:
        self.server = FakeServer(script)
        self.calls: dict[str, int] = {}
        self._sleep = sleep
        decorate = retrying(
            NO_JITTER,
            idempotent=lambda method, *_a, **_k: method.upper() in IDEMPOTENT_METHODS,
            sleep=sleep,
        )
        self.request: Callable[..., Any] = decorate(self._request_once)

    def _request_once(self, method: str, path: str) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        return self.server()


def test_decorator_on_a_client_method_uses_the_method_to_decide() -> None:
    clock = FakeClock()
    client = StandInClient([_throttled(), {"kind": "ConfigMap"}], clock.sleep)
    assert client.request("GET", "/api/v1/namespaces/ns/configmaps/a") == {"kind": "ConfigMap"}
    assert client.calls == {"GET": 2}

    unreachable = ServerError("/api/v1/namespaces", 0, "Unreachable", "reset")
    client = StandInClient([unreachable, {"kind": "Namespace"}], clock.sleep)
    with pytest.raises(ServerError):
        client.request("POST", "/api/v1/namespaces")
    assert client.calls == {"POST": 1}
    client = StandInClient([unreachable, {"kind": "Namespace"}], clock.sleep)
    assert client.request("PATCH", "/api/v1/namespaces/x") == {"kind": "Namespace"}
    assert client.calls == {"PATCH": 2}


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-1") is None
    # HTTP date, relative to "now" (RFC 9110 §5.6.7 IMF-fixdate)
    now = 1445412470.0  # Wed, 21 Oct 2015 07:27:50 GMT
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now=now) == 0.0


def test_retry_after_from_response_header_then_status_details() -> None:
    status = {"kind": "Status", "reason": "TooManyRequests", "details": {"retryAfterSeconds": 4}}
    assert retry_after_from_response({"Retry-After": "2"}, status) == 2.0
    assert retry_after_from_response({}, status) == 4.0
    assert retry_after_from_response(None, {"details": {"retryAfterSeconds": "x"}}) is None
    assert retry_after_from_response(None, b"not json") is None


def test_retry_after_of_reads_only_sane_values() -> None:
    assert retry_after_of(_throttled(1.5)) == 1.5
    assert retry_after_of(_throttled()) is None
    err = _throttled()
    err.__dict__["retry_after"] = float("nan")
    assert retry_after_of(err) is None
    err.__dict__["retry_after"] = True
    assert retry_after_of(err) is None


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2.0)
    with pytest.raises(ValueError, match="initial"):
        RetryPolicy(initial=-1.0)
    with pytest.raises(ValueError, match="multiplier"):
        RetryPolicy(multiplier=0.5)
