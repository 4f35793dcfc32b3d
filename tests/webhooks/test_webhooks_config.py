"""Settings loading, reference parsing, model grammar, and the process entry point."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from _webhook_support import SECRETS, hub_signature

from reconciler.errors import ConfigError
from webhooks.config import AuthMode, Provider, WebhookSettings, load_settings
from webhooks.events import GitPushed, ImagePushed
from webhooks.refs import parse_image_reference
from webhooks.server import main, serve_async

YAML = """\
host: 127.0.0.1
port: 9393
natsUrl: nats://127.0.0.1:4333
maxBodyBytes: 2048
receivers:
  - name: ghcr
    provider: github
    secretEnv: TEST_GHCR_SECRET
  - name: ce
    provider: cloudevents
    secret: tok
    event_mapping: {type: t.pushed, image: data.repository, tag: data.tag}
  - name: signed-ce
    provider: cloudevents
    secret: s
    auth: {mode: hmac, header: X-Sig}
"""


def test_load_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hooks.yaml"
    path.write_text(YAML)
    s = load_settings(path)
    assert (s.port, s.nats_url, s.max_body_bytes) == (9393, "nats://127.0.0.1:4333", 2048)
    ghcr = s.receiver("ghcr")
    assert ghcr is not None and ghcr.provider is Provider.GITHUB
    monkeypatch.setenv("TEST_GHCR_SECRET", "from-env")
    assert ghcr.secret_bytes() == b"from-env"
    ce = s.receiver("ce")
    assert ce is not None and ce.mappings[0].image == "data.repository"
    signed = s.receiver("signed-ce")
    assert signed is not None and signed.auth is not None and signed.auth.mode is AuthMode.HMAC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("receivers:\n  - name: a\n    provider: nosuch\n    secret: x\n", "receivers.0.provider (line 3)"),
        ("receivers:\n  - name: a\n    provider: github\n", "exactly one of secret or secretEnv"),
        (
            "receivers:\n  - {name: a, provider: github, secret: x}\n"
            "  - {name: a, provider: quay, secret: y}\n",
            "duplicate receiver name",
        ),
        ("port: [\n", "not valid YAML"),
        ("- a\n", "top level must be a mapping"),
        (
            "receivers:\n  - name: a\n    provider: github\n    secret: x\n"
            "    mappings: [{type: t, image: i}]\n",
            "mappings apply to provider cloudevents only",
        ),
    ],
)
def test_bad_settings_name_file_field_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (
            "harbor.registry.test:8443/ml-agents/planner:0.1.1",
            ("harbor.registry.test:8443", "ml-agents/planner", "0.1.1", None),
        ),
        ("localhost:5000/app", ("localhost:5000", "app", None, None)),
        ("nginx:1.27", ("docker.io", "nginx", "1.27", None)),
        ("index.docker.io/library/nginx", ("docker.io", "library/nginx", None, None)),
        ("https://ghcr.io/acme/app@sha256:" + "e" * 64, ("ghcr.io", "acme/app", None, "sha256:" + "e" * 64)),
        ("[::1]:5000/a/b:t", ("[::1]:5000", "a/b", "t", None)),
    ],
)
def test_parse_image_reference(ref: str, expected: tuple[str, str, str | None, str | None]) -> None:
    r = parse_image_reference(ref)
    assert (r.registry, r.repository, r.tag, r.digest) == expected


@pytest.mark.parametrize("ref", ["", "host.example//x", "host.example:99999/x"])
def test_parse_image_reference_rejects(ref: str) -> None:
    with pytest.raises(ValueError):
        parse_image_reference(ref)


def test_models_reject_bad_grammar() -> None:
    base = {"registry": "r.io", "repository": "a/b", "source": "s/r", "delivery_id": "d"}
    assert ImagePushed.model_validate(base).image == "r.io/a/b"
    for field, bad in (
        ("repository", "A/b"),
        ("repository", "a//b"),
        ("tag", "-x"),
        ("tag", "a" * 129),
        ("digest", "sha256:abc"),
        ("registry", "r.io/x"),
        ("pushed_at", "2025-01-01T00:00:00"),
    ):
        with pytest.raises(ValueError):
            ImagePushed.model_validate({**base, field: bad})
    push = {
        "repository": "a/b",
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": "A" * 40,
        "source": "s/r",
        "delivery_id": "d",
    }
    g = GitPushed.model_validate(push)
    assert g.created and not g.deleted and g.after == "a" * 40
    for field, bad in (("ref", "main"), ("ref", "refs/heads/a..b"), ("before", "abc")):
        with pytest.raises(ValueError):
            GitPushed.model_validate({**push, field: bad})


def test_main_reports_a_settings_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("receivers:\n  - name: a\n    provider: github\n    secretEnv: UNSET_VAR_FOR_TEST_1\n")
    assert main(["--config", str(path)]) == 2
    assert "UNSET_VAR_FOR_TEST_1" in capsys.readouterr().err


async def test_serve_async_listens_and_answers_without_nats() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = WebhookSettings.model_validate(
        {
            "port": port,
            "natsUrl": "nats://127.0.0.1:1",
            "receivers": [{"name": "github", "provider": "github", "secret": SECRETS["github"]}],
        }
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve_async(settings, stop))
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                assert r.status == 503
            body = (
                b'{"ref": "refs/heads/main", "before": "' + b"1" * 40 + b'", "after": "' + b"2" * 40 + b'",'
            )
            body += b' "repository": {"full_name": "acme/envs"}}'
            headers = {
                "X-GitHub-Event": "push",
                "X-Hub-Signature-256": hub_signature(SECRETS["github"], body),
            }
            async with http.post(f"http://127.0.0.1:{port}/hook/github", data=body, headers=headers) as r:
                assert r.status == 503  # valid and authenticated, but NATS is unreachable: the sender retries
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
