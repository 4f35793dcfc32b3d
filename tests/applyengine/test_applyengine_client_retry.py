"""KubeClient.request retries with backoff, against a scripted stand-in API server on 127.0.0.1.

The stand-in answers each request with the next scripted status (and Retry-After / Status body), so the
tests see exactly how many attempts the client makes and how long it waits.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler.cluster.client import KubeClient
from reconciler.cluster.retry import RetryPolicy
from reconciler.errors import ConflictError, ServerError, ThrottledError

FAST = RetryPolicy(attempts=4, initial=0.01, multiplier=2.0, maximum=0.05, jitter=0.0, deadline=5.0)


class Script:
    """Scripted answers: (status, headers, body) in order; afterwards 200 {}."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        self.seen: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def next(self, method: str, path: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self.lock:
            self.seen.append((method, path, time.monotonic()))
            return self.answers.pop(0) if self.answers else (200, {}, {"kind": "ConfigMap"})


def _status(code: int, reason: str, **details: Any) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code,
            "message": f"{reason} from the stand-in", "details": details}  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Script, Path]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, headers, body = script.next(self.command, self.path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{httpd.server_port}"}}],
                "users": [{"name": "u", "user": {"token": "test-token"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    try:
        yield script, kubeconfig
    finally:
        httpd.shutdown()
        httpd.server_close()


PATH = "/api/v1/namespaces/ns/configmaps/a"


def test_throttled_get_is_retried_honouring_retry_after(server: tuple[Script, Path]) -> None:
    script, kubeconfig = server
    script.answers = [
        (429, {"Retry-After": "1"}, _status(429, "TooManyRequests")),
        (429, {}, _status(429, "TooManyRequests", retryAfterSeconds=0)),
    ]
    client = KubeClient(kubeconfig, retry=FAST)
    try:
        assert client.request("GET", PATH, verb="get", obj="ConfigMap/ns/a") == {"kind": "ConfigMap"}
    finally:
        client.close()
    assert [m for m, _p, _t in script.seen] == ["GET", "GET", "GET"]
    assert client.calls["get"] == 3 and client.calls["retry"] == 2
    waits = [b - a for (_m, _p, a), (_n, _q, b) in zip(script.seen, script.seen[1:], strict=False)]
    assert waits[0] >= 1.0  # the server's Retry-After: 1 s, more than our 10 ms backoff
    assert waits[1] < 1.0


def test_server_errors_retry_for_apply_but_not_for_post(server: tuple[Script, Path]) -> None:
    script, kubeconfig = server
    client = KubeClient(kubeconfig, retry=FAST)
    try:
        script.answers = [(504, {}, _status(504, "Timeout")), (503, {}, _status(503, "ServiceUnavailable"))]
        out = client.request(
            "PATCH",
            PATH,
            body="{}",
            content_type="application/apply-patch+yaml",
            verb="apply",
            obj="ConfigMap/ns/a",
        )
        assert out == {"kind": "ConfigMap"} and client.calls["apply"] == 3

        script.answers = [(500, {}, _status(500, "InternalError"))]
        with pytest.raises(ServerError) as info:
            client.request("POST", "/api/v1/namespaces/ns/serviceaccounts/x/token", body={}, verb="create")
        assert client.calls["create"] == 1  # not repeated: it may have been processed
        assert info.value.status == 500

        script.answers = [(503, {"Retry-After": "0"}, _status(503, "ServiceUnavailable"))]
        client.request("POST", "/api/v1/namespaces/ns/serviceaccounts/x/token", body={}, verb="create")
        assert client.calls["create"] == 3  # refused with Retry-After: not processed, so repeated

        # a plain 500 may be deterministic: not repeated, not even for an apply
        script.answers = [(500, {}, _status(500, "InternalError"))]
        with pytest.raises(ServerError):
            client.request("PATCH", PATH, body="{}", verb="apply", obj="ConfigMap/ns/a")
        assert client.calls["apply"] == 4
    finally:
        client.close()


def test_retries_are_bounded_and_the_typed_error_comes_back(server: tuple[Script, Path]) -> None:
    script, kubeconfig = server
    script.answers = [(429, {}, _status(429, "TooManyRequests")) for _ in range(10)]
    client = KubeClient(kubeconfig, retry=FAST)
    try:
        with pytest.raises(ThrottledError) as info:
            client.request("GET", PATH, verb="get", obj="ConfigMap/ns/a")
    finally:
        client.close()
    assert info.value.obj == "ConfigMap/ns/a"
    assert client.calls["get"] == FAST.attempts
    assert getattr(info.value, "retry_after", None) is None


def test_errors_retrying_cannot_fix_are_not_retried(server: tuple[Script, Path]) -> None:
    script, kubeconfig = server
    script.answers = [(409, {}, _status(409, "Conflict"))]
    client = KubeClient(kubeconfig, retry=FAST)
    try:
        with pytest.raises(ConflictError):
            client.request("PATCH", PATH, body="{}", verb="apply", obj="ConfigMap/ns/a")
    finally:
        client.close()
    assert client.calls["apply"] == 1 and client.calls["retry"] == 0


def test_retry_can_be_disabled(server: tuple[Script, Path]) -> None:
    script, kubeconfig = server
    script.answers = [(429, {}, _status(429, "TooManyRequests"))]
    client = KubeClient(kubeconfig, retry=None)
    try:
        with pytest.raises(ThrottledError):
            client.request("GET", PATH, verb="get")
    finally:
        client.close()
    assert client.calls["get"] == 1
