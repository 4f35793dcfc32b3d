"""Shared helpers for the webhook tests (imported by conftest and the test modules)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.bus import BusError
from webhooks.config import ReceiverConfig, WebhookSettings

CASES = Path(__file__).resolve().parents[1] / "cases"
CASE24 = CASES / "24-webhook-ghcr-package-event-object-body"
CASE25 = CASES / "25-webhook-harbor-match-newname-with-port"
CASE31 = CASES / "31-git-revert-rollback-must-stick"
PAYLOADS = Path(__file__).parent / "payloads"

# Test secrets, one per receiver in the suite's settings.
SECRETS = {
    "github": "gh-secret-1",
    "gitea": "gitea-secret-1",
    "gitlab": "gitlab-token-1",
    "bitbucket": "bb-secret-1",
    "bitbucket-server": "bbs-secret-1",
    "dockerhub": "dockerhub-path-token",
    "harbor": "harbor-token-1",
    "quay": "quay-path-token",
    "acr": "acr-path-token",
    "gar": "gar-path-token",
    "distribution": "dist-token-1",
    "cloudevents": "ce-path-token",
    "generic": "generic-secret-1",
}


@dataclass
class Published:
    subject: str
    data: bytes
    msg_id: str | None


@dataclass
class FakePublisher:
    """Records publishes; ``fail`` makes publish raise BusError, ``connected`` drives /readyz."""

    connected: bool = True
    fail: bool = False
    messages: list[Published] = field(default_factory=list)

    async def publish(
        self, subject: str, data: bytes, *, msg_id: str | None = None, timeout: float = 5.0
    ) -> int:
        if self.fail:
            raise BusError("publish: nats: timeout")
        self.messages.append(Published(subject, data, msg_id))
        return len(self.messages)


def hub_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` as GitHub/Bitbucket/generic senders compute it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def case_settings() -> list[ReceiverConfig]:
    """Receivers configured from the acceptance cases' webhook-config.json files."""
    c24 = read_json(CASE24 / "webhook-config.json")
    c25 = read_json(CASE25 / "webhook-config.json")
    m = re.search(r"expected value: '([^']+)'", c25["auth"])
    assert m, "case 25 webhook-config.json no longer states the Authorization value"
    c31 = read_json(CASE31 / "webhook-config.json")
    return [
        ReceiverConfig(name="case24", provider="github", secret=c24["secret"]),
        ReceiverConfig(name="case25", provider="harbor", secret=m.group(1)),
        ReceiverConfig.model_validate(
            {
                "name": "case31",
                "provider": "cloudevents",
                "secret": "case31-token",
                "event_mapping": c31["event_mapping"],
            }
        ),
    ]


def all_settings(max_body_bytes: int = 1024 * 1024) -> WebhookSettings:
    receivers = [ReceiverConfig(name=p, provider=p, secret=s) for p, s in SECRETS.items()]
    receivers[-2] = ReceiverConfig.model_validate(
        {
            "name": "cloudevents",
            "provider": "cloudevents",
            "secret": SECRETS["cloudevents"],
            "mappings": [
                {
                    "type": "com.example.registry.artifact.pushed",
                    "image": "data.repository",
                    "tag": "data.tag",
                    "digest": "data.digest",
                }
            ],
        }
    )
    return WebhookSettings(receivers=[*receivers, *case_settings()], max_body_bytes=max_body_bytes)


def headers_of(path: Path) -> dict[str, str]:
    data = read_json(path)
    assert isinstance(data, Mapping)
    return {str(k): str(v) for k, v in data.items()}
