"""Fixtures for the webhook tests: a fake publisher and an aiohttp test client over all receivers."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).parent))

from _webhook_support import FakePublisher, all_settings

from webhooks.server import build_app


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
async def client(publisher: FakePublisher) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = build_app(all_settings(max_body_bytes=64 * 1024), publisher)
    async with TestClient(TestServer(app)) as c:
        yield c
