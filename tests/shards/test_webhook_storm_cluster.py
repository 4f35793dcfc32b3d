"""A webhook storm into a three-node NATS cluster while the node leading the REGISTRY stream is killed:
image push webhooks (Docker Hub format, real HTTP) → webhooks/ → JetStream (streams with three copies)
→ image automation → commits on a Git remote. The sender retries what was refused (503), as registries
do; nothing accepted is lost, nothing is stored or committed twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git
import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.bus import STREAM_REGISTRY, Bus, image_pushed_subject
from reconciler.devcluster.natscluster import NatsCluster
from reconciler.promote.images import ImageAutomation, run_consumer
from reconciler.reconcile import load_environments
from reconciler.source.bootstrap import init_repo_with_remote
from reconciler.source.gitops import GitWriter
from webhooks.config import ReceiverConfig, WebhookSettings
from webhooks.server import build_app

pytestmark = pytest.mark.integration

TOKEN = "storm-path-token"
VERSIONS = [f"1.0.{i}" for i in range(1, 13)]
DELIVERIES_PER_VERSION = 3  # distinct pushes (their pushed_at differs)
KILL_AFTER = 14  # posts before the stream leader is killed


def _repo(tmp_path: Path, image: str) -> Path:
    src = tmp_path / "src"
    (src / "envs").mkdir(parents=True)
    (src / "overlays" / "dev").mkdir(parents=True)
    (src / "envs" / "dev.yaml").write_text(
        "overlay: overlays/dev\npromotion: {via: push}\nimagePolicies:\n- name: clock\n"
        f"  image: {image}\n  policy: {{semver: {{range: '>=1.0.0'}}}}\n"
    )
    (src / "overlays" / "dev" / "kustomization.yaml").write_text(
        f"resources:\n- deployment.yaml\nimages:\n- name: {image}\n  newTag: 1.0.0   # automation\n"
    )
    (src / "overlays" / "dev" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: clock}\nspec:\n  template:\n    spec:\n"
        f"      containers:\n      - {{name: clock, image: '{image}:0.9.0'}}\n"
    )
    remote, _work = init_repo_with_remote(src, tmp_path / "repo")
    return remote


def _tags_committed(remote: Path) -> list[str]:
    repo = git.Repo(remote)
    try:
        shas = list(reversed(repo.git.rev_list("--first-parent", "main").split()))[1:]
        out = []
        for sha in shas:
            text = repo.git.show(f"{sha}:overlays/dev/kustomization.yaml")
            out.append(text.split("newTag:")[1].split()[0])
            parent_tree = repo.git.rev_parse(f"{sha}^^{{tree}}")
            assert repo.git.rev_parse(f"{sha}^{{tree}}") != parent_tree, f"empty commit {sha}"
        return out
    finally:
        repo.close()


def _body(repo_name: str, tag: str, n: int) -> bytes:
    namespace, name = repo_name.split("/")
    return json.dumps(
        {
            "push_data": {"pushed_at": 1750000000 + n, "pusher": "ci", "tag": tag},
            "repository": {"name": name, "namespace": namespace, "repo_name": repo_name},
        }
    ).encode()


async def _until(pred: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


async def test_webhook_storm_survives_a_nats_node_kill(nats_cluster: NatsCluster, tmp_path: Path) -> None:
    name = f"acme/clock-{uuid.uuid4().hex[:8]}"
    image = f"docker.io/{name}"
    remote = _repo(tmp_path, image)
    durable = f"storm-{uuid.uuid4().hex[:8]}"
    hooks_bus = Bus(nats_cluster.url, name="storm-webhooks", replicas=3)
    auto_bus = Bus(nats_cluster.url, name="storm-automation", replicas=3)
    await hooks_bus.connect()
    await auto_bus.connect()
    stop = asyncio.Event()
    auto = ImageAutomation(GitWriter(str(remote), "main", tmp_path / "cache"), load_environments)
    consumer = asyncio.create_task(
        run_consumer(auto_bus, auto, stop, durable=durable, nak_delay=0.5, ack_wait=5.0, notify=False)
    )
    settings = WebhookSettings(
        receivers=[ReceiverConfig(name="hub", provider="dockerhub", secret=TOKEN)], publish_timeout=2.0
    )
    refused = 0
    accepted: set[bytes] = set()
    killed = -1
    try:
        await _until(lambda: _consumer_exists(auto_bus, durable), 20, "the durable consumer exists")
        async with TestClient(TestServer(build_app(settings, hooks_bus))) as client:
            posts: list[bytes] = []
            for i, tag in enumerate(VERSIONS):
                for k in range(DELIVERIES_PER_VERSION):
                    body = _body(name, tag, i * 10 + k)
                    posts += [body, body] if k == 0 else [body]  # one exact redelivery per version
            for n, body in enumerate(posts):
                if n == KILL_AFTER:
                    info = await hooks_bus.js.stream_info(STREAM_REGISTRY)
                    killed = int(str(info.cluster.leader if info.cluster else "n0")[1:])
                    nats_cluster.kill_node(killed)
                deadline = time.monotonic() + 60
                while True:  # the registry retries until the receiver accepts
                    resp = await client.post(f"/hook/hub/{TOKEN}", data=body)
                    if resp.status == 202:
                        accepted.add(body)
                        break
                    assert resp.status == 503, await resp.text()
                    refused += 1
                    assert time.monotonic() < deadline, "the receiver kept refusing for 60 s"
                    await asyncio.sleep(0.3)
        await _until(
            lambda: _tags_committed(remote)[-1:] == [VERSIONS[-1]], 90, "the last version is committed"
        )
        await _until(lambda: _consumer_idle(auto_bus, durable), 60, "every event is acknowledged")
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 30)
        nats_cluster.up()
        for b in (hooks_bus, auto_bus):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(b.close(), 5)
    assert killed >= 0
    # every accepted delivery is stored once (redeliveries and retries dropped by Nats-Msg-Id)
    check = Bus(nats_cluster.url, name="storm-check", replicas=3)
    await check.connect()
    try:
        subject = image_pushed_subject(image)
        info = await check.js.stream_info(STREAM_REGISTRY, subjects_filter=subject)
        assert (
            (info.state.subjects or {}).get(subject)
            == len(accepted)
            == len(VERSIONS) * DELIVERIES_PER_VERSION
        )
    finally:
        await check.close()
    # one commit per version, in order: none lost, none twice (empty commits are refused by
    # _tags_committed). The sender posts version after version, each once accepted, so JetStream delivers
    # them in order; what the failover redelivers was handled already and commits nothing.
    committed = _tags_committed(remote)
    assert committed == VERSIONS
    print(f"storm: {len(accepted)} deliveries accepted, {refused} refusals retried, commits {committed}")


async def _consumer_exists(bus: Bus, durable: str) -> bool:
    try:
        await bus.js.consumer_info(STREAM_REGISTRY, durable)
    except Exception:
        return False
    return True


async def _consumer_idle(bus: Bus, durable: str) -> bool:
    try:
        info = await bus.js.consumer_info(STREAM_REGISTRY, durable)
    except Exception:
        return False
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)
