"""Integration: a real nats-server (own, JetStream file store), the durable image-automation consumer and a
Git bare remote. Duplicates make no commits; a NATS restart between receipt and commit loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _imageauto_support import CaseRepo, load_envs
from reconciler_testing import NatsServer

from reconciler.bus import STREAM_EVENTS, STREAM_REGISTRY, Bus, image_pushed_subject
from reconciler.promote.images import DURABLE, AutomationResult, ImageAutomation, run_consumer
from reconciler.source.bootstrap import init_repo_with_remote
from reconciler.source.gitops import GitWriter
from webhooks.events import ImagePushed

pytestmark = pytest.mark.integration

IMAGE = "ghcr.io/acme/clock-mcp"
ENV = (
    "overlay: overlays/dev\n"
    "promotion: {via: push}\n"
    "imagePolicies:\n"
    "- name: clock\n"
    f"  image: {IMAGE}\n"
    "  policy: {semver: {range: '>=1.0.0'}}\n"
)
KUSTOMIZATION = (
    "resources:\n- deployment.yaml\n"
    "images:\n# the clock MCP server: moved by image automation\n"
    f"- name: {IMAGE}\n  newTag: 1.0.0   # automation\n"
)


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "js")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def repo(tmp_path: Path) -> CaseRepo:
    src = tmp_path / "src"
    (src / "envs").mkdir(parents=True)
    (src / "overlays" / "dev").mkdir(parents=True)
    (src / "envs" / "dev.yaml").write_text(ENV)
    (src / "overlays" / "dev" / "kustomization.yaml").write_text(KUSTOMIZATION)
    (src / "overlays" / "dev" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: clock}\nspec:\n  template:\n    spec:\n"
        f"      containers:\n      - {{name: clock, image: '{IMAGE}:0.9.0'}}\n"
    )
    remote, work = init_repo_with_remote(src, tmp_path / "repo")
    return CaseRepo(remote, work)


def event(tag: str, delivery: str) -> ImagePushed:
    return ImagePushed(
        registry="ghcr.io",
        repository="acme/clock-mcp",
        tag=tag,
        digest=None,
        source="test/ghcr",
        delivery_id=delivery,
    )


async def publish(bus: Bus, e: ImagePushed) -> None:
    await bus.publish(
        image_pushed_subject(e.image), e.model_dump_json().encode(), msg_id=f"ghcr/{e.delivery_id}"
    )


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


async def consumer_idle(bus: Bus) -> bool:
    try:
        info = await bus.js.consumer_info(STREAM_REGISTRY, DURABLE)
    except Exception:
        return False
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)


async def consumer_exists(bus: Bus) -> bool:
    try:
        await bus.js.consumer_info(STREAM_REGISTRY, DURABLE)
    except Exception:
        return False
    return True


def versions_committed(repo: CaseRepo) -> list[str]:
    """The tag each automation commit on main moved to, oldest first."""
    out = []
    for sha in repo.commits()[1:]:
        text = repo.show(sha, "overlays/dev/kustomization.yaml")
        out.append(text.split("newTag:")[1].split()[0])
    return out


class Running:
    """run_consumer in a task with its own stop event."""

    def __init__(self, bus: Bus, auto: ImageAutomation, **kw: Any) -> None:
        self.stop = asyncio.Event()
        self.results: list[AutomationResult] = []
        self.task = asyncio.create_task(
            run_consumer(bus, auto, self.stop, on_result=self.results.append, nak_delay=0.5, **kw)
        )

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


@pytest.fixture
async def bus(nats: NatsServer) -> AsyncIterator[Bus]:
    b = Bus(nats.url, name="imageauto-test")
    await b.connect()
    yield b
    # Bus.consume leaves its pull subscription behind when cancelled, so a drain waits its full 30 s
    # timeout; bound it (see the report: Bus.consume should unsubscribe in a finally)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(b.close(), 3)


async def test_one_commit_per_distinct_version_with_30_percent_duplicates(
    bus: Bus, repo: CaseRepo, tmp_path: Path
) -> None:
    auto = ImageAutomation(GitWriter(str(repo.remote), "main", tmp_path / "cache"), load_envs)
    running = Running(bus, auto)
    try:
        await until(lambda: consumer_exists(bus), 15, "the durable consumer exists")
        rnd = random.Random(7)
        versions = [f"1.0.{i}" for i in range(1, 21)]
        # 70 unique deliveries in version order (each version announced 3-4 times, new ids each time) and
        # 30 exact repeats (same delivery id), each right after the delivery it repeats: 100 in all
        unique = [event(versions[i * len(versions) // 70], f"d{i}") for i in range(70)]
        repeated = set(rnd.sample(range(70), 30))
        sent: list[ImagePushed] = []
        for i, e in enumerate(unique):
            sent += [e, e] if i in repeated else [e]
        assert len(sent) == 100 and len(sent) - len({e.delivery_id for e in sent}) == 30
        for e in sent:
            await publish(bus, e)
        last = versions[-1]
        await until(lambda: versions_committed(repo)[-1:] == [last], 60, f"{last} is committed")
        await until(lambda: consumer_idle(bus), 30, "every message is acknowledged")
    finally:
        await running.close()
    assert versions_committed(repo) == versions  # exactly one commit per distinct version, in order
    assert repo.no_empty_commits()
    # the daemon is told about the pushes on reconciler.git.push.<repo>
    info = await bus.js.stream_info(STREAM_EVENTS, subjects_filter="reconciler.git.push.>")
    assert info.state.messages >= 1


class GatedAutomation(ImageAutomation):
    """Blocks inside the first batch (after the message was received, before any commit) until opened."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def handle_batch(self, events: Sequence[ImagePushed]) -> list[AutomationResult]:
        self.entered.set()
        if not self.gate.wait(60):
            raise RuntimeError("gate never opened")
        return super().handle_batch(events)


async def test_nats_restart_between_receipt_and_commit_loses_nothing(
    nats: NatsServer, bus: Bus, repo: CaseRepo, tmp_path: Path
) -> None:
    auto = GatedAutomation(GitWriter(str(repo.remote), "main", tmp_path / "cache"), load_envs)
    running = Running(bus, auto, ack_wait=5.0)
    try:
        await until(lambda: consumer_exists(bus), 15, "the durable consumer exists")
        await publish(bus, event("1.1.0", "a"))
        await until(auto.entered.is_set, 15, "the consumer received the event")
        assert repo.commits()[1:] == []  # received, not committed yet
        nats.stop()
        nats.start()  # same store directory: the stream, the consumer and its pending message survive
        await until(lambda: bus.connected, 15, "the client reconnected")
        auto.gate.set()
        await until(lambda: versions_committed(repo) == ["1.1.0"], 30, "1.1.0 is committed")
        await publish(bus, event("1.2.0", "b"))  # the consumer keeps working after the restart
        await until(lambda: versions_committed(repo) == ["1.1.0", "1.2.0"], 30, "1.2.0 is committed")
        await until(lambda: consumer_idle(bus), 30, "every message is acknowledged")
    finally:
        await running.close()
    assert versions_committed(repo) == ["1.1.0", "1.2.0"]  # and nothing twice (a redelivery is a no-op)


async def test_published_while_down_is_processed_after_nats_and_consumer_restart(
    nats: NatsServer, bus: Bus, repo: CaseRepo, tmp_path: Path
) -> None:
    auto = ImageAutomation(GitWriter(str(repo.remote), "main", tmp_path / "cache"), load_envs)
    first = Running(bus, auto)
    await until(lambda: consumer_exists(bus), 15, "the durable consumer exists")
    await first.close()  # the daemon is down; its durable consumer stays
    await asyncio.sleep(1.5)  # let its last pull request (1 s) expire, so nothing is in flight to it
    for i, tag in enumerate(["1.3.0", "1.4.0", "1.4.0"]):
        await publish(bus, event(tag, f"down-{i}"))
    nats.stop()
    nats.start()
    await until(lambda: bus.connected, 15, "the client reconnected")
    second = Running(
        bus, ImageAutomation(GitWriter(str(repo.remote), "main", tmp_path / "cache2"), load_envs)
    )
    try:
        await until(lambda: versions_committed(repo) == ["1.3.0", "1.4.0"], 30, "both versions committed")
        await until(lambda: consumer_idle(bus), 30, "every message is acknowledged")
    finally:
        await second.close()
    assert versions_committed(repo) == ["1.3.0", "1.4.0"]


async def test_a_new_consumer_starts_with_the_events_since_its_start_time(
    bus: Bus, repo: CaseRepo, tmp_path: Path
) -> None:
    """An installation's first consumer starts at its branch's head commit time: an event accepted after
    it (before any daemon consumed) is not lost, an older one is not replayed."""
    await publish(bus, event("1.2.0", "before-the-head-commit"))
    await asyncio.sleep(0.1)
    start = datetime.now(UTC)
    await publish(bus, event("1.3.0", "early"))  # nobody consumes yet: no daemon so far
    auto = ImageAutomation(GitWriter(str(repo.remote), "main", tmp_path / "cache"), load_envs)
    running = Running(bus, auto, start_time=start)
    try:
        await until(lambda: versions_committed(repo) == ["1.3.0"], 30, "1.3.0 is committed")
        await until(lambda: consumer_idle(bus), 30, "the event is acknowledged")
    finally:
        await running.close()
    assert versions_committed(repo) == ["1.3.0"]


async def test_two_installations_each_get_every_event(bus: Bus, repo: CaseRepo, tmp_path: Path) -> None:
    """Two installations (their own durable consumers) on one NATS: each commits every version."""
    src = tmp_path / "src2"
    shutil.copytree(repo.work, src, ignore=shutil.ignore_patterns(".git"))
    remote2, work2 = init_repo_with_remote(src, tmp_path / "repo2")
    other = CaseRepo(remote2, work2)
    one = Running(
        bus,
        ImageAutomation(GitWriter(str(repo.remote), "main", tmp_path / "c1"), load_envs),
        durable="installation-one",
    )
    two = Running(
        bus,
        ImageAutomation(GitWriter(str(remote2), "main", tmp_path / "c2"), load_envs),
        durable="installation-two",
    )
    try:
        for name in ("installation-one", "installation-two"):
            await until(lambda n=name: consumer_named(bus, n), 15, f"{name} exists")
        versions = ["2.1.0", "2.2.0", "2.3.0", "2.4.0"]
        for i, v in enumerate(versions):
            await publish(bus, event(v, f"shared-{i}"))
        for r in (repo, other):
            await until(lambda r=r: versions_committed(r)[-1:] == ["2.4.0"], 60, "2.4.0 in both")
    finally:
        await one.close()
        await two.close()
    assert versions_committed(repo) == versions_committed(other) == versions


async def consumer_named(bus: Bus, durable: str) -> bool:
    try:
        await bus.js.consumer_info(STREAM_REGISTRY, durable)
    except Exception:
        return False
    return True
