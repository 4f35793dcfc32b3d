"""HTTP behaviour: status codes for unknown receivers, oversized/malformed bodies, NATS outages, probes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from _webhook_support import CASE24, SECRETS, FakePublisher, all_settings, headers_of, hub_signature
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reconciler.errors import ConfigError
from webhooks.config import ReceiverConfig, WebhookSettings
from webhooks.events import ImagePushed
from webhooks.server import build_app, message_ids

Client = TestClient[web.Request, web.Application]


def _signed(body: bytes, event: str = "push") -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "d",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": hub_signature(SECRETS["github"], body),
    }


async def test_unknown_receiver_is_404(client: Client, publisher: FakePublisher) -> None:
    resp = await client.post("/hook/nobody", data=b"{}")
    assert resp.status == 404
    assert "nobody" in (await resp.json())["error"]


async def test_get_on_hook_is_405(client: Client) -> None:
    assert (await client.get("/hook/github")).status == 405


async def test_oversized_body_is_413_by_length_and_by_stream(
    client: Client, publisher: FakePublisher
) -> None:
    big = b"{" + b" " * (64 * 1024) + b"}"
    resp = await client.post("/hook/github", data=big, headers=_signed(big))
    assert resp.status == 413

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse early
        for _ in range(40):
            yield b" " * 4096

    resp = await client.post("/hook/github", data=chunks(), headers=_signed(b""))
    assert resp.status == 413
    assert publisher.messages == []


async def test_body_exactly_at_the_cap_is_read() -> None:
    pub = FakePublisher()
    settings = WebhookSettings(
        max_body_bytes=100, receivers=[ReceiverConfig(name="g", provider="generic", secret="s")]
    )
    body = json.dumps({"image": "r.example/a/b:1", "pad": ""}).encode()
    body = body[:-2] + b" " * (100 - len(body)) + body[-2:]
    assert len(body) == 100
    async with TestClient(TestServer(build_app(settings, pub))) as c:
        resp = await c.post("/hook/g", data=body, headers={"X-Signature": hub_signature("s", body)})
        assert resp.status == 202, await resp.text()
        resp = await c.post(
            "/hook/g", data=body + b" ", headers={"X-Signature": hub_signature("s", body + b" ")}
        )
        assert resp.status == 413


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (
            b'{"ref": 5, "before": "x", "after": "y", "repository": {"full_name": "a/b"}}',
            "ref: expected a string",
        ),
        (
            b'{"ref": "refs/heads/main", "before": "nothex", "after": "' + b"a" * 40 + b'",'
            b' "repository": {"full_name": "a/b"}}',
            "before",
        ),
        (b"[" * 30000 + b"]" * 30000, "nested too deeply"),
    ],
)
async def test_malformed_is_400_with_reason(
    client: Client, publisher: FakePublisher, body: bytes, reason: str
) -> None:
    resp = await client.post("/hook/github", data=body, headers=_signed(body))
    assert resp.status == 400
    assert reason in (await resp.json())["error"]
    assert publisher.messages == []


async def test_bad_oci_name_is_400(client: Client, publisher: FakePublisher) -> None:
    body = json.dumps({"image": "Registry.Example/UPPER/case:1"}).encode()
    resp = await client.post(
        "/hook/generic", data=body, headers={"X-Signature": hub_signature(SECRETS["generic"], body)}
    )
    assert resp.status == 400
    assert "not a valid OCI repository name" in (await resp.json())["error"]


async def test_nats_down_is_503_and_retry_succeeds(client: Client, publisher: FakePublisher) -> None:
    body = (CASE24 / "payload.json").read_bytes()
    headers = headers_of(CASE24 / "headers.json")
    publisher.connected = False
    assert (await client.post("/hook/case24", data=body, headers=headers)).status == 503
    publisher.connected, publisher.fail = True, True
    resp = await client.post("/hook/case24", data=body, headers=headers)
    assert resp.status == 503 and "retry" in (await resp.json())["error"]
    assert publisher.messages == []
    publisher.fail = False
    assert (await client.post("/hook/case24", data=body, headers=headers)).status == 202
    assert ImagePushed.model_validate_json(publisher.messages[0].data).tag == "v1.4.2-RC1"


async def test_probes(client: Client, publisher: FakePublisher) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    publisher.connected = False
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200


async def test_hmac_receiver_refuses_a_path_token(client: Client, publisher: FakePublisher) -> None:
    body = b"{}"
    resp = await client.post(f"/hook/github/{SECRETS['github']}", data=body, headers=_signed(body, "ping"))
    assert resp.status == 401


async def test_missing_secret_env_fails_at_build() -> None:
    settings = WebhookSettings(
        receivers=[ReceiverConfig(name="x", provider="github", secret_env="NO_SUCH_VAR_42")]
    )
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_42"):
        build_app(settings, FakePublisher())


def test_message_ids_are_unique_within_a_delivery() -> None:
    a = ImagePushed(registry="r.io", repository="a", tag="1", source="x/y", delivery_id="same")
    b = ImagePushed(registry="r.io", repository="a", tag="2", source="x/y", delivery_id="same")
    assert message_ids("rec", [a]) == ["rec/same"]
    assert message_ids("rec", [a, b]) == ["rec/same/0", "rec/same/1"]


async def test_every_receiver_rejects_an_unauthenticated_delivery(publisher: FakePublisher) -> None:
    settings = all_settings()
    async with TestClient(TestServer(build_app(settings, publisher))) as c:
        for r in settings.receivers:
            resp = await c.post(f"/hook/{r.name}", data=b"{}", headers={"Content-Type": "application/json"})
            assert resp.status == 401, r.name
    assert publisher.messages == []
