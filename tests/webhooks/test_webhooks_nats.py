"""Integration: a real nats-server with JetStream; deliveries land in the REGISTRY stream exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from _webhook_support import CASE24, CASE25, all_settings, headers_of
from aiohttp.test_utils import TestClient, TestServer
from reconciler_testing import NatsServer

from reconciler.bus import STREAM_REGISTRY, Bus, image_pushed_subject
from webhooks.events import ImagePushed
from webhooks.server import build_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats-js"))
    server.start()
    yield server
    server.stop()


async def _count(bus: Bus, subject: str) -> int:
    info = await bus.js.stream_info(STREAM_REGISTRY, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def test_delivery_lands_once_with_the_delivery_id(nats: NatsServer) -> None:
    bus = Bus(nats.url, name="webhooks-test")
    await bus.connect()
    try:
        async with TestClient(TestServer(build_app(all_settings(), bus))) as client:
            assert (await client.get("/readyz")).status == 200
            body = (CASE24 / "payload.json").read_bytes()
            headers = headers_of(CASE24 / "headers.json")
            for _ in range(2):  # GitHub redelivers with the same X-GitHub-Delivery
                resp = await client.post("/hook/case24", data=body, headers=headers)
                assert resp.status == 202, await resp.text()
            subject = image_pushed_subject("ghcr.io/acme-ai/planner")
            assert await _count(bus, subject) == 1
            msg = await bus.js.get_last_msg(STREAM_REGISTRY, subject)
            assert (msg.headers or {}).get("Nats-Msg-Id") == f"case24/{headers['X-GitHub-Delivery']}"
            event = ImagePushed.model_validate_json(msg.data or b"")
            assert (event.image, event.tag) == ("ghcr.io/acme-ai/planner", "v1.4.2-RC1")

            # A tampered delivery publishes nothing.
            resp = await client.post(
                "/hook/case24", data=(CASE24 / "payload-tampered.json").read_bytes(), headers=headers
            )
            assert resp.status == 401
            assert await _count(bus, subject) == 1
    finally:
        await bus.close()


async def test_nats_outage_is_503_then_the_retry_is_stored_once(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "js")
    server.start()
    bus = Bus(server.url, name="webhooks-outage-test")
    await bus.connect()
    try:
        async with TestClient(TestServer(build_app(all_settings(), bus))) as client:
            body = (CASE25 / "payload.json").read_bytes()
            headers = headers_of(CASE25 / "headers.json")
            server.stop()
            for _ in range(100):
                if not bus.connected:
                    break
                await asyncio.sleep(0.05)
            resp = await client.post("/hook/case25", data=body, headers=headers)
            assert resp.status == 503
            assert (await client.get("/readyz")).status == 503
            server.start()  # same port and store: the sender's retry now succeeds
            for _ in range(200):
                if bus.connected:
                    break
                await asyncio.sleep(0.05)
            assert (await client.get("/readyz")).status == 200
            for _ in range(2):
                resp = await client.post("/hook/case25", data=body, headers=headers)
                assert resp.status == 202, await resp.text()
            subject = image_pushed_subject("harbor.registry.test:8443/ml-agents/planner")
            assert await _count(bus, subject) == 1
    finally:
        await bus.close()
        server.stop()
