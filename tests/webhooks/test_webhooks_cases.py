"""Acceptance cases 24, 25 and the CloudEvents deliveries of 31, sent verbatim through the HTTP server."""

from __future__ import annotations

from typing import Any

from _webhook_support import CASE24, CASE25, CASE31, FakePublisher, headers_of, read_json
from aiohttp import web
from aiohttp.test_utils import TestClient

from webhooks.events import ImagePushed

Client = TestClient[web.Request, web.Application]


async def _post(client: Any, path: str, body_file: str, headers: dict[str, str]) -> tuple[int, Any]:
    from pathlib import Path

    body = Path(body_file).read_bytes()
    resp = await client.post(path, data=body, headers=headers)
    return resp.status, await resp.json()


def _only_event(publisher: FakePublisher) -> ImagePushed:
    assert len(publisher.messages) == 1, publisher.messages
    return ImagePushed.model_validate_json(publisher.messages[0].data)


# --- case 24: GHCR package event whose package_version.body is an object --------------------------------


async def test_case24_valid_delivery_publishes_the_tag(client: Client, publisher: FakePublisher) -> None:
    expected = read_json(CASE24 / "expected.json")["deliveries"][0]
    headers = headers_of(CASE24 / "headers.json")
    status, body = await _post(client, "/hook/case24", str(CASE24 / "payload.json"), headers)
    assert status == 202, body
    event = _only_event(publisher)
    parsed = expected["parsed_event"]
    assert event.registry == parsed["registry"]
    assert event.repository == parsed["repository"]
    assert event.image == parsed["image"]
    assert event.tag == parsed["tag"]  # case kept: v1.4.2-RC1
    assert event.digest == parsed["digest"]
    assert event.media_type == "application/vnd.oci.image.index.v1+json"
    assert event.source == "github/case24"
    assert event.delivery_id == headers["X-GitHub-Delivery"]
    msg = publisher.messages[0]
    assert msg.subject == "registry.image.pushed.ghcr_io_acme-ai_planner"
    assert msg.msg_id == f"case24/{headers['X-GitHub-Delivery']}"


async def test_case24_tampered_payload_is_401_and_not_published(
    client: Client, publisher: FakePublisher
) -> None:
    status, body = await _post(
        client, "/hook/case24", str(CASE24 / "payload-tampered.json"), headers_of(CASE24 / "headers.json")
    )
    assert status in read_json(CASE24 / "expected.json")["deliveries"][1]["http_status"]
    assert status == 401
    assert "signature" in body["error"]
    assert publisher.messages == []


async def test_case24_untagged_is_accepted_but_ignored(client: Client, publisher: FakePublisher) -> None:
    status, body = await _post(
        client,
        "/hook/case24",
        str(CASE24 / "payload-untagged.json"),
        headers_of(CASE24 / "headers-untagged.json"),
    )
    assert 200 <= status < 300
    assert body["status"] == "ignored"
    assert any("container_metadata.tag.name is empty" in r for r in body["ignored"])
    assert publisher.messages == []


async def test_case24_signature_with_another_secret_is_401(client: Client, publisher: FakePublisher) -> None:
    from _webhook_support import hub_signature

    headers = headers_of(CASE24 / "headers.json")
    headers["X-Hub-Signature-256"] = hub_signature("not-the-secret", (CASE24 / "payload.json").read_bytes())
    status, _ = await _post(client, "/hook/case24", str(CASE24 / "payload.json"), headers)
    assert status == 401
    del headers["X-Hub-Signature-256"]
    status, body = await _post(client, "/hook/case24", str(CASE24 / "payload.json"), headers)
    assert status == 401 and "missing signature" in body["error"]
    assert publisher.messages == []


# --- case 25: Harbor push with host:port --------------------------------------------------------------


async def test_case25_harbor_push_keeps_the_port_in_the_registry(
    client: Client, publisher: FakePublisher
) -> None:
    parsed = read_json(CASE25 / "expected.json")["deliveries"][0]["parsed_event"]
    status, body = await _post(
        client, "/hook/case25", str(CASE25 / "payload.json"), headers_of(CASE25 / "headers.json")
    )
    assert status == 202, body
    event = _only_event(publisher)
    assert event.registry == parsed["registry_host"]
    assert event.repository == parsed["repository"]
    assert event.image == parsed["image"]
    assert event.tag == parsed["tag"]
    assert event.digest == parsed["digest"]
    assert event.pushed_at.timestamp() == 1749546000
    # Harbor's default format carries no delivery id: a content hash stands in, stable across redeliveries.
    assert event.delivery_id.startswith("sha256:")
    assert (
        publisher.messages[0].subject == "registry.image.pushed.harbor_registry_test_8443_ml-agents_planner"
    )


async def test_case25_digest_only_push_is_ignored(client: Client, publisher: FakePublisher) -> None:
    status, body = await _post(
        client, "/hook/case25", str(CASE25 / "payload-digest-only.json"), headers_of(CASE25 / "headers.json")
    )
    assert 200 <= status < 300
    assert body["status"] == "ignored"
    assert publisher.messages == []


async def test_case25_bad_auth_is_401(client: Client, publisher: FakePublisher) -> None:
    status, _ = await _post(
        client, "/hook/case25", str(CASE25 / "payload.json"), headers_of(CASE25 / "headers-bad-auth.json")
    )
    assert status == 401
    headers = headers_of(CASE25 / "headers.json")
    del headers["Authorization"]
    status, _ = await _post(client, "/hook/case25", str(CASE25 / "payload.json"), headers)
    assert status == 401
    assert publisher.messages == []


async def test_case25_redelivery_has_the_same_message_id(client: Client, publisher: FakePublisher) -> None:
    for _ in range(2):
        status, _ = await _post(
            client, "/hook/case25", str(CASE25 / "payload.json"), headers_of(CASE25 / "headers.json")
        )
        assert status == 202
    assert len(publisher.messages) == 2
    assert publisher.messages[0].msg_id == publisher.messages[1].msg_id


# --- case 31: CloudEvents structured and binary mode ---------------------------------------------------


async def test_case31_structured_and_binary_events(client: Client, publisher: FakePublisher) -> None:
    ce_json = {"Content-Type": "application/cloudevents+json"}
    status, body = await _post(
        client, "/hook/case31/case31-token", str(CASE31 / "event-0.1.6-structured.json"), ce_json
    )
    assert status == 202, body
    status, body = await _post(
        client,
        "/hook/case31/case31-token",
        str(CASE31 / "event-0.1.6-binary.body.json"),
        headers_of(CASE31 / "event-0.1.6-binary.headers.json"),
    )
    assert status == 202, body
    status, body = await _post(
        client, "/hook/case31/case31-token", str(CASE31 / "event-0.1.7-structured.json"), ce_json
    )
    assert status == 202, body
    events = [ImagePushed.model_validate_json(m.data) for m in publisher.messages]
    assert [e.image for e in events] == ["registry.example.test/agents/planner"] * 3
    assert [e.tag for e in events] == ["0.1.6", "0.1.6", "0.1.7"]
    assert [e.delivery_id for e in events] == ["evt-7d2f9c1a-0001", "evt-7d2f9c1a-0002", "evt-7d2f9c1a-0003"]
    assert events[0].digest == "sha256:6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d"
    assert events[1].pushed_at.isoformat() == "2025-06-20T11:30:00+00:00"
    # A new event id is a new message: de-duplication must not swallow the re-announcement.
    assert len({m.msg_id for m in publisher.messages}) == 3


async def test_case31_without_or_with_wrong_path_token_is_401(
    client: Client, publisher: FakePublisher
) -> None:
    ce_json = {"Content-Type": "application/cloudevents+json"}
    for path in ("/hook/case31", "/hook/case31/wrong-token"):
        status, _ = await _post(client, path, str(CASE31 / "event-0.1.6-structured.json"), ce_json)
        assert status == 401
    assert publisher.messages == []
