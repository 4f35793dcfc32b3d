"""Notifications (reconciler/observe/notify.py) against real HTTP receivers on 127.0.0.1: a Slack-compatible
incoming webhook, a generic JSON webhook checking the HMAC-SHA256 signature (and answering 500 once, so the
delivery is retried), a receiver that is down (nothing blocks; a full queue drops and counts), and the
daemon's hook: a real :class:`~reconciler.runtime.Daemon` whose passes fail (its API server unreachable)
sends them to a webhook and posts the commit status with the token of its ``commit-status`` target to a
loopback stand-in of GitHub's API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from reconciler_testing import EnvRepo, daemon_settings, free_port, until

from reconciler.errors import ConfigError
from reconciler.model import Environment, PassResult
from reconciler.model.environment import NotificationSecretRef
from reconciler.observe.metrics import Metrics
from reconciler.observe.notify import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Notifier,
    SecretReader,
    payloads_of,
    sign,
    verify_signature,
)
from reconciler.runtime import Daemon
from reconciler.runtime.control import suspend_environment

HMAC_KEY = "hmac-key-0123456789-notify"
UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: kube-token}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: u}
current-context: nowhere
"""


@dataclass
class Receiver:
    """A loopback HTTP server recording what it was sent; ``fail_first`` answers 500 to that many
    requests first."""

    base: str = ""
    fail_first: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(b) for p, _, b in self.requests if p == path]


@contextlib.asynccontextmanager
async def receiver(fail_first: int = 0, status_token: str | None = None) -> AsyncIterator[Receiver]:
    rec = Receiver(fail_first=fail_first)
    seen = {"hook": 0}

    async def slack(request: web.Request) -> web.Response:
        rec.requests.append(("/slack", dict(request.headers), await request.read()))
        return web.Response(text="ok")

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        rec.requests.append(("/hook", dict(request.headers), body))
        seen["hook"] += 1
        if seen["hook"] <= rec.fail_first:
            return web.Response(status=500, text="receiver restarting")
        if not verify_signature(body, HMAC_KEY, request.headers.get(SIGNATURE_HEADER)):
            return web.Response(status=401, text="bad signature")
        return web.Response(status=204)

    async def status(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Authorization") != f"Bearer {status_token}":
            return web.Response(status=401)
        rec.requests.append((f"/status/{request.match_info['sha']}", dict(request.headers), body))
        return web.json_response({"id": 1}, status=201)

    app = web.Application()
    app.router.add_post("/slack", slack)
    app.router.add_post("/hook", hook)
    app.router.add_post("/api/v3/repos/acme/envs/statuses/{sha}", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield rec
    finally:
        await runner.cleanup()


def _failed(env: str = "dev", revision: str = "main@sha1:" + "a" * 40, error: str = "render failed") -> bytes:
    result = PassResult(
        environment=env, revision=revision, ok=False, error=error, started_at=1.0, duration=0.1
    )
    return result.model_dump_json().encode()


def _applied(env: str = "dev") -> bytes:
    return json.dumps(
        {
            "environment": env,
            "revision": "main@sha1:" + "b" * 40,
            "ok": True,
            "changes": {"entries": [{"action": "configured", "ref": {"kind": "ConfigMap", "name": "x"}}]},
        }
    ).encode()


DRIFT = json.dumps(
    {"environment": "dev", "object": "Deployment/agents/clock", "paths": ["spec.replicas"], "corrected": True}
).encode()


def _environment(tmp_path: Path, base: str, **extra: Any) -> Environment:
    """dev with a Slack target (its address in a directory, as a mounted Secret) and a signed webhook (a
    YAML file)."""
    slack_dir = tmp_path / "slack-secret"
    slack_dir.mkdir(exist_ok=True)
    (slack_dir / "address").write_text(f"{base}/slack\n")
    hook_file = tmp_path / "hook-secret.yaml"
    hook_file.write_text(f"address: {base}/hook\ntoken: {HMAC_KEY}\n")
    return Environment.model_validate(
        {
            "name": "dev",
            "overlay": "overlays/dev",
            "notifications": [
                {"name": "chat", "type": "slack", "secretRef": {"file": str(slack_dir)}, **extra},
                {"name": "hook", "type": "webhook", "secretRef": {"file": str(hook_file)}},
            ],
        }
    )


def _notifier(env: Environment | None, **kw: Any) -> tuple[Notifier, Metrics]:
    metrics = Metrics(CollectorRegistry())
    envs = {env.name: env} if env is not None else {}
    options: dict[str, Any] = {"backoff": 0.05, "max_backoff": 0.2, "attempts": 4, "timeout": 5.0, **kw}
    return Notifier(envs.get, SecretReader(None), metrics=metrics, **options), metrics


async def test_slack_and_a_signed_webhook_with_a_retry_after_500(tmp_path: Path) -> None:
    async with receiver(fail_first=1) as rec:
        env = _environment(tmp_path, rec.base)
        notifier, metrics = _notifier(env)
        try:
            assert notifier.offer("reconciler.result.dev", _failed()) == 2
            assert notifier.offer("reconciler.result.dev", _failed()) == 0  # the same failure: once
            assert notifier.offer("reconciler.result.dev", _applied()) == 0  # info: not asked for
            assert notifier.offer("reconciler.drift.dev", DRIFT) == 2
            assert notifier.offer("reconciler.result.other", _failed("other")) == 0  # no targets
            await notifier.drain()
        finally:
            await notifier.close()

        slack = rec.bodies("/slack")
        assert [s["text"] for s in slack] == [
            ":red_circle: [pass-failed] dev: pass failed: render failed",
            ":red_circle: [drift] dev: drift of Deployment/agents/clock (spec.replicas): corrected",
        ]
        hooks = [(h, b) for p, h, b in rec.requests if p == "/hook"]
        assert len(hooks) == 3  # the first delivery was answered 500 once, then sent again
        (h1, b1), (h2, b2), (h3, b3) = hooks
        assert b1 == b2 and h1[DELIVERY_HEADER] == h2[DELIVERY_HEADER] != h3[DELIVERY_HEADER]
        for headers, body in hooks:
            assert headers[SIGNATURE_HEADER] == sign(body, HMAC_KEY)
            assert headers[SIGNATURE_HEADER].startswith("sha256=") and len(headers[SIGNATURE_HEADER]) == 71
            assert verify_signature(body, HMAC_KEY, headers[SIGNATURE_HEADER])
            assert not verify_signature(body, "another-key", headers[SIGNATURE_HEADER])
            assert not verify_signature(body + b" ", HMAC_KEY, headers[SIGNATURE_HEADER])
        first = json.loads(b1)
        assert (first["environment"], first["kind"], first["severity"]) == ("dev", "pass-failed", "error")
        assert first["revision"] == "main@sha1:" + "a" * 40 and first["event"]["error"] == "render failed"
        assert h1[EVENT_HEADER] == "pass-failed" and json.loads(b3)["kind"] == "drift"
        assert notifier.counts == {("dev/chat", "sent"): 2, ("dev/hook", "sent"): 2}
        sent = metrics.registry.get_sample_value(
            "reconciler_notifications_total", {"environment": "dev", "target": "hook", "result": "sent"}
        )
        assert sent == 2.0


async def test_info_severity_and_the_events_filter(tmp_path: Path) -> None:
    async with receiver() as rec:
        env = _environment(tmp_path, rec.base, eventSeverity="info", events=["sync", "promotion"])
        notifier, _ = _notifier(env)
        try:
            assert notifier.offer("reconciler.result.dev", _applied()) == 1  # chat only: hook is "error"
            assert notifier.offer("reconciler.drift.dev", DRIFT) == 1  # hook only: chat wants sync/promotion
            promoted = {"environment": "dev", "kind": "promoted", "revision": "c" * 40, "message": "promoted"}
            assert notifier.offer("reconciler.promotion.dev", json.dumps(promoted).encode()) == 2
            await notifier.drain()
        finally:
            await notifier.close()
        assert [s["text"].split("]")[0] for s in rec.bodies("/slack")] == [
            ":large_green_circle: [sync",
            ":red_circle: [promotion",
        ]
        assert [b["kind"] for b in rec.bodies("/hook")] == ["drift", "promotion"]


async def test_a_receiver_that_is_down_never_blocks_and_a_full_queue_drops(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = _environment(tmp_path, down)
    notifier, metrics = _notifier(env, queue_size=2, attempts=2)
    try:
        queued = [notifier.offer("reconciler.result.dev", _failed(error=f"error {i}")) for i in range(10)]
        # nothing was sent yet (no await happened): each target took at most its queue's two
        assert sum(queued) == 4
        dropped = metrics.registry.get_sample_value(
            "reconciler_notifications_total", {"environment": "dev", "target": "hook", "result": "dropped"}
        )
        assert dropped == 8.0
        await notifier.drain()
    finally:
        await notifier.close()
    assert notifier.counts[("dev/hook", "failed")] == 2 and notifier.counts[("dev/chat", "dropped")] == 8


def test_events_and_secrets_are_read_as_documented(tmp_path: Path) -> None:
    gate: dict[str, Any] = {"environment": "dev", "kind": "outcome", "outcome": "degraded", "passed": False}
    gate["revision"] = "d" * 40
    [p] = payloads_of("reconciler.promotion.dev", json.dumps(gate).encode())
    assert (p.kind.value, p.severity) == ("gate-failed", "error")
    gate.update(outcome="unverified", passed=True, verdict="Unverified")
    [p] = payloads_of("reconciler.promotion.dev", json.dumps(gate).encode())
    assert p.kind.value == "gate-passed" and "Unverified" in p.message and "Healthy" not in p.message
    ctl = {"environment": "dev", "action": "suspend", "by": "alice", "reason": "incident 42"}
    [p] = payloads_of("reconciler.control.dev", json.dumps(ctl).encode())
    assert p.message == "dev: suspended by alice: incident 42" and p.severity == "error"
    assert payloads_of("reconciler.result.dev", b"not json") == []
    rollback = {"environment": "dev", "kind": "rollback", "revert": ["e" * 40], "message": "reverted e"}
    [p] = payloads_of("reconciler.promotion.dev", json.dumps(rollback).encode())
    assert (p.kind.value, p.message) == ("rollback", "dev: rolled back: reverted e")

    reader = SecretReader(None)
    with pytest.raises(ConfigError, match=r"secret file .*missing"):
        reader.read(NotificationSecretRef(file=str(tmp_path / "missing")), "dev")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        reader.read(NotificationSecretRef(file=str(listed)), "dev")
    with pytest.raises(ConfigError, match="no cluster"):
        reader.read(NotificationSecretRef(name="slack"), "dev")
    with pytest.raises(ValueError, match="exactly one of name"):
        NotificationSecretRef(name="a", file="b")
    with pytest.raises(ValueError, match="must be an absolute path"):
        NotificationSecretRef(file="secrets/slack.yaml")
    with pytest.raises(ValueError, match="a target named 'x' exists already"):
        Environment.model_validate(
            {
                "name": "dev",
                "overlay": "o",
                "notifications": [
                    {"name": "x", "type": "slack", "secretRef": {"name": "s"}},
                    {"name": "x", "type": "webhook", "secretRef": {"name": "s"}},
                ],
            }
        )


def test_secrets_are_read_from_the_cluster(kube: Any, namespace: str) -> None:
    from reconciler.model import ObjectRef

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "reconciler-hook", "namespace": namespace},
        "stringData": {"address": "https://hooks.example.test/T0/B0/x", "token": "k" * 20},
    }
    kube.apply(
        secret, ObjectRef(kind="Secret", namespace=namespace, name="reconciler-hook"), field_manager="tests"
    )
    reader = SecretReader(kube)
    values = reader.read(NotificationSecretRef(name="reconciler-hook"), namespace)
    assert values == {"address": "https://hooks.example.test/T0/B0/x", "token": "k" * 20}
    other = NotificationSecretRef(name="reconciler-hook", namespace="default")
    with pytest.raises(ConfigError, match=r"Secret default/reconciler-hook does not exist"):
        reader.read(other, namespace)


# -- the daemon's hook -------------------------------------------------------------------------------


async def test_the_daemon_notifies_failed_passes_and_posts_statuses_with_the_targets_token(
    tmp_path: Path, env_repo: EnvRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RECONCILER_GIT_HOST_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN", "GITEA_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    async with receiver(status_token="status-token-from-the-secret") as rec:
        monkeypatch.setenv("RECONCILER_GIT_HOST", "github")
        monkeypatch.setenv("RECONCILER_GIT_HOST_REPO", "acme/envs")
        hook = tmp_path / "hook.yaml"
        hook.write_text(f"address: {rec.base}/hook\ntoken: {HMAC_KEY}\n")
        status = tmp_path / "status"
        status.mkdir()
        (status / "token").write_text("status-token-from-the-secret")
        (status / "address").write_text(f"{rec.base}/api/v3")
        env_repo.write(
            "envs/dev.yaml",
            "overlay: overlays/dev\nnamespace: agents-dev\nsync: {interval: 3600}\nnotifications:\n"
            f"- {{name: hook, type: webhook, secretRef: {{file: {hook}}}}}\n"
            f"- {{name: statuses, type: commit-status, secretRef: {{file: {status}}}}}\n",
        )
        env_repo.write("overlays/dev/kustomization.yaml", "resources:\n- cm.yaml\n")
        env_repo.write(
            "overlays/dev/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n"
        )
        sha = env_repo.commit("dev with notifications")
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
        settings = daemon_settings(env_repo.remote, kubeconfig, tmp_path / "cache", commit_status=True)
        daemon = Daemon(settings)
        await daemon.start()
        try:
            result = await asyncio.wait_for(daemon.trigger("dev", "test"), 120)
            assert not result.ok
            await until(lambda: rec.bodies("/hook"), 60, "the pass-failed notification")
            await until(lambda: any(p.startswith("/status/") for p, _, _ in rec.requests), 60, "the status")
            # an action's event reaches the notifier through the same place
            await suspend_environment(
                daemon.control, "dev", by="alice", reason="incident 7", publish=daemon.publish_event
            )
            await until(lambda: len(rec.bodies("/hook")) >= 2, 60, "the suspend notification")
        finally:
            await daemon.stop()
    body, suspended = rec.bodies("/hook")[:2]
    assert (suspended["kind"], suspended["message"]) == ("suspend", "dev: suspended by alice: incident 7")
    assert (body["environment"], body["kind"], body["revision"]) == ("dev", "pass-failed", f"main@sha1:{sha}")
    [(path, _, raw)] = [r for r in rec.requests if r[0].startswith("/status/")]
    posted = json.loads(raw)
    assert path == f"/status/{sha}" and posted["context"] == "reconciler/dev" and posted["state"] == "failure"
