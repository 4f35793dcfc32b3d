"""Structured logs: JSON lines with environment/revision/object on every line, readable text on a terminal,
and no secret value anywhere — in keys, messages, nested manifests or tracebacks."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from reconciler.model import ObjectRef
from reconciler.observe.logging import (
    REDACTED,
    configure_logging,
    get_logger,
    is_secret_key,
    log_context,
    redact,
    redact_text,
)

SECRETS = [
    "hunter2-very-secret",
    "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "sk-ant-api03-abcdefghijklmnopqrstuvwx",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl",
    "AKIAABCDEFGHIJKLMNOP",
    "xoxb-1234567890-abcdefghij",
    "glpat-abcdefghijklmnopqrst",
    "dXNlcjpwYXNzd29yZA==",
]


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=buf)
    yield buf
    structlog.reset_defaults()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_reconciler_observe_handler", False):
            root.removeHandler(h)


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_every_json_line_has_the_context_keys_bound_or_null(json_lines: io.StringIO) -> None:
    log = get_logger("t")
    ref = ObjectRef(group="apps", kind="Deployment", namespace="agents", name="web")
    with log_context(environment="dev", revision="main@sha1:" + "a" * 40):
        log.info("pass.started")
        with log_context(object=ref):
            log.info("object.configured", action="configured")
        logging.getLogger("reconciler.daemon").warning("stdlib line for %s", "dev")
    log.info("outside")
    lines = _lines(json_lines)
    assert [line["event"] for line in lines] == [
        "pass.started",
        "object.configured",
        "stdlib line for dev",
        "outside",
    ]
    for line in lines:
        assert {"timestamp", "level", "logger", "environment", "revision", "object"} <= set(line)
    assert lines[0]["environment"] == "dev" and lines[0]["object"] is None
    assert lines[1]["object"] == "Deployment/agents/web"
    assert lines[2]["logger"] == "reconciler.daemon" and lines[2]["revision"] == "main@sha1:" + "a" * 40
    assert lines[3]["environment"] is None and lines[3]["revision"] is None
    assert list(lines[0])[:4] == ["timestamp", "level", "logger", "event"]


def test_context_follows_worker_threads(json_lines: io.StringIO) -> None:
    import asyncio

    def in_thread() -> None:
        logging.getLogger("reconciler.pass").info("inside the pass thread")

    async def main() -> None:
        with log_context(environment="staging"):
            await asyncio.to_thread(in_thread)

    asyncio.run(main())
    (line,) = [line for line in _lines(json_lines) if line["logger"] == "reconciler.pass"]
    assert line["environment"] == "staging"


def test_no_secret_reaches_a_json_line(json_lines: io.StringIO) -> None:
    log = get_logger("t")
    log.info(
        "delivery",
        password=SECRETS[0],
        headers={"Authorization": f"Bearer {SECRETS[3]}", "X-Hub-Signature-256": "sha256=abc"},
        url=f"https://bot:{SECRETS[1]}@github.com/acme/envs.git",
        manifest={
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "llm"},
            "stringData": {"key": SECRETS[2]},
        },
        env=[{"name": "OPENAI_API_KEY", "value": SECRETS[2]}],
    )
    log.warning(f"aws key {SECRETS[4]} slack {SECRETS[5]} gitlab {SECRETS[6]} basic: Basic {SECRETS[7]}")
    logging.getLogger("lib").error("token=%s and api_key: %s", SECRETS[0], SECRETS[1])
    try:
        raise RuntimeError(f"clone failed for https://x:{SECRETS[0]}@host/repo")
    except RuntimeError:
        log.exception("fetch.failed")
    text = json_lines.getvalue()
    for secret in SECRETS:
        assert secret not in text, secret
    lines = _lines(json_lines)
    assert lines[0]["password"] == REDACTED
    assert lines[0]["manifest"]["stringData"] == {"key": REDACTED}  # type: ignore[index]
    assert lines[0]["manifest"]["metadata"] == {"name": "llm"}  # type: ignore[index]
    assert lines[0]["url"] == f"https://bot:{REDACTED}@github.com/acme/envs.git"
    assert "RuntimeError" in str(lines[-1]["exception"])  # the traceback is kept, its secret is not


def test_harmless_values_are_kept() -> None:
    data = {
        "object": "Secret/agents/llm-key",  # naming a Secret is fine
        "paths": ["spec.template.spec.containers[name=server].image"],
        "image": "ghcr.io/acme/app:1.2.3@sha256:" + "f" * 64,
        "revision": "main@sha1:" + "0" * 40,
        "secretRef": "",  # empty: nothing to hide
        "tokens_used": 10,
    }
    assert redact(data)["object"] == "Secret/agents/llm-key"
    assert redact(data)["paths"] == data["paths"]
    assert redact(data)["image"] == data["image"]
    assert redact(data)["revision"] == data["revision"]
    assert redact(data)["secretRef"] == ""
    assert redact_text("drift on spec.replicas by kubectl-edit") == "drift on spec.replicas by kubectl-edit"
    assert redact({"kind": "ConfigMap", "data": {"a": "b"}}) == {"kind": "ConfigMap", "data": {"a": "b"}}


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("api_key", True),
        ("apiKey", True),
        ("Authorization", True),
        ("client-secret", True),
        ("webhookToken", True),
        ("private_key", True),
        ("environment", False),
        ("revision", False),
        ("object", False),
        ("paths", False),
        ("tokens_used", False),
        ("access_token", True),
        ("GITHUB_TOKEN", True),
        ("secretKey", True),
        ("secretEnv", False),  # the name of the variable that holds the secret
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_inputs_are_not_modified() -> None:
    manifest = {"kind": "Secret", "data": {"k": "djE="}}
    redact(manifest)
    assert manifest == {"kind": "Secret", "data": {"k": "djE="}}


def test_console_lines_are_readable_not_json() -> None:
    buf = io.StringIO()
    configure_logging(json=False, stream=buf)
    try:
        with log_context(environment="dev", revision="main@sha1:abc"):
            get_logger("t").info("pass.finished", api_key=SECRETS[2], changes={"created": 2})
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for h in list(root.handlers):
            if getattr(h, "_reconciler_observe_handler", False):
                root.removeHandler(h)
    line = buf.getvalue().strip()
    assert not line.startswith("{")
    assert "pass.finished" in line and "environment=dev" in line and "revision=main@sha1:abc" in line
    assert SECRETS[2] not in line and f"api_key={REDACTED}" in line
    assert "object=" not in line  # absent context keys are left out of readable lines
    assert "\x1b[" not in line  # a StringIO is not a terminal: no colour codes


def test_auto_mode_picks_json_off_a_terminal_and_rejects_bad_levels() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf)
    try:
        get_logger("t").info("x")
        assert json.loads(buf.getvalue())["event"] == "x"
        with pytest.raises(ValueError, match="unknown log level"):
            configure_logging(level="LOUD", stream=buf)
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for h in list(root.handlers):
            if getattr(h, "_reconciler_observe_handler", False):
                root.removeHandler(h)


def test_configuring_twice_keeps_one_handler() -> None:
    root = logging.getLogger()
    configure_logging(json=True, stream=io.StringIO())
    configure_logging(json=True, stream=io.StringIO())
    try:
        assert sum(1 for h in root.handlers if getattr(h, "_reconciler_observe_handler", False)) == 1
    finally:
        structlog.reset_defaults()
        for h in list(root.handlers):
            if getattr(h, "_reconciler_observe_handler", False):
                root.removeHandler(h)


def test_the_daemons_announcements_are_json_lines_when_the_logs_are(
    json_lines: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """``reconciler run --log-format json``: the lines said to the person running it ("> reconciling …",
    "error: …") are log records too, so the stream holds JSON only; a lease line names its environment."""
    from reconciler.cli import _say
    from reconciler.runtime.shards import SINGLETON, _about

    _say("[dim]>[/] replica r1: sharing the environments through NATS leases")
    _say("[red]error:[/] --http 127.0.0.1:1: [Errno 98] address in use")
    _say("[yellow]warning:[/] while stopping: slow")
    shards = logging.getLogger("reconciler.shards")
    shards.info("acquired the lease of %s", "dev", extra=_about("dev"))
    shards.info("acquired the lease of %s", SINGLETON, extra=_about(SINGLETON))
    lines = [r for r in _lines(json_lines) if str(r["logger"]).startswith("reconciler.")]  # not git's debug
    assert [(r["level"], r["logger"], r["event"]) for r in lines[:3]] == [
        ("info", "reconciler.cli", "replica r1: sharing the environments through NATS leases"),
        ("error", "reconciler.cli", "--http 127.0.0.1:1: [Errno 98] address in use"),
        ("warning", "reconciler.cli", "while stopping: slow"),
    ]
    assert [r["environment"] for r in lines[3:]] == ["dev", None]
    assert capsys.readouterr().err == ""  # nothing written around the logs


def test_the_daemons_announcements_stay_text_without_json_logs(capsys: pytest.CaptureFixture[str]) -> None:
    from reconciler.cli import _say

    configure_logging(json=False, stream=io.StringIO())
    try:
        _say("[dim]>[/] reconciling dev from /tmp/repo (main); Ctrl-C to stop")
    finally:
        root = logging.getLogger()
        for h in list(root.handlers):
            if getattr(h, "_reconciler_observe_handler", False):
                root.removeHandler(h)
        structlog.reset_defaults()
    assert "> reconciling dev from /tmp/repo (main); Ctrl-C to stop" in capsys.readouterr().err
