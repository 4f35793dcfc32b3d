"""Integration: images and multi-arch indexes pushed with crane to a real CNCF Distribution registry; the
registry's own notifications reach the webhook receiver, NATS and image automation, which commits to a Git
remote. A tag push and an index push each make exactly one commit pinning the pushed digest; untagged
manifest pushes and deletes make none; a version pushed while the receiver was down is promoted by the tag
scan, exactly once, also when the registry delivers its notification late."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _registry_support import REPO, Chain, until
from reconciler_testing import NatsServer

from reconciler.promote.scan import TagScanner

pytestmark = pytest.mark.integration


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "js")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def chain(tmp_path: Path, nats: NatsServer) -> AsyncIterator[Chain]:
    c = Chain(tmp_path, nats.url, scan="{interval: 0}")
    await c.start()
    try:
        yield c
    finally:
        await c.close()


async def test_tag_push_index_push_untagged_and_delete(chain: Chain) -> None:
    assert chain.crane is not None
    base = len(chain.commits())

    # 1. a tag push: one commit pinning the pushed digest, with the registry event in the trailer
    digest = await asyncio.to_thread(chain.crane.push_image, f"{chain.image}:1.1.0")
    await until(lambda: chain.pinned() == ("1.1.0", digest), 30, "1.1.0 committed with its digest")
    assert len(chain.commits()) == base + 1
    message = chain.message("main")
    assert "Image-Event: distribution/registry " in message
    assert f"{chain.image}:1.1.0@{digest}" in message

    # 2. a multi-arch index: its platform manifests are pushed untagged first (no commit), then the
    # index with its tag: exactly one commit, pinning the index's digest (not a platform's)
    amd = await asyncio.to_thread(chain.crane.build, platform="linux/amd64")
    arm = await asyncio.to_thread(chain.crane.build, platform="linux/arm64")
    index = await asyncio.to_thread(chain.crane.index, f"{chain.image}:1.2.0", [amd, arm])
    await until(lambda: chain.pinned() == ("1.2.0", index), 30, "1.2.0 committed with the index digest")
    assert len(chain.commits()) == base + 2
    for child in (amd, arm):
        assert chain.delivered("push", digest=child.rsplit("@", 1)[1]), "the registry sent the untagged push"
    assert chain.delivered("push", tag="1.2.0", digest=index)

    # 3. an untagged manifest (pushed by digest only): delivered, published nothing, no commit
    untagged = await asyncio.to_thread(chain.crane.push_untagged, f"{chain.image}", platform="linux/arm64")
    await until(lambda: chain.delivered("push", digest=untagged), 30, "the untagged push was delivered")
    assert await until(chain.idle, 15, "the consumer is idle")
    assert len(chain.commits()) == base + 2
    assert chain.pinned() == ("1.2.0", index)

    # 4. deleting the deployed index: delivered and ignored; Git keeps what it had (a registry delete is
    # never a rollback), and the tag list no longer has 1.2.0
    await asyncio.to_thread(chain.crane.delete, f"{chain.image}@{index}")
    await until(lambda: chain.delivered("delete", digest=index), 30, "the delete was delivered")
    assert await until(chain.idle, 15, "the consumer is idle")
    assert len(chain.commits()) == base + 2
    assert chain.pinned() == ("1.2.0", index)
    assert "1.2.0" not in await asyncio.to_thread(chain.crane.tags, chain.image)

    # 5. a scan now changes nothing either: the newest tag left (1.1.0) is older than Git's 1.2.0
    assert chain.automation is not None
    scanner = TagScanner(chain.automation)
    (report,) = await asyncio.to_thread(scanner.scan_all)
    assert report.error == "" and report.commits == []
    assert len(chain.commits()) == base + 2


async def test_version_missed_while_receiver_down_is_promoted_by_the_scan_exactly_once(chain: Chain) -> None:
    assert chain.crane is not None and chain.automation is not None
    base = len(chain.commits())
    digest = await asyncio.to_thread(chain.crane.push_image, f"{chain.image}:1.1.0")
    await until(lambda: chain.pinned() == ("1.1.0", digest), 30, "1.1.0 committed by the webhook")

    await chain.receiver_down()
    missed = await asyncio.to_thread(chain.crane.push_image, f"{chain.image}:1.3.0")
    await asyncio.sleep(0.5)
    assert chain.pinned() == ("1.1.0", digest), "nothing can arrive while the receiver is down"

    scanner = TagScanner(chain.automation)
    (report,) = await asyncio.to_thread(scanner.scan_all)
    assert report.error == "", report.error
    assert report.tags == 2 and report.candidates == {"1.3.0": missed, "1.1.0": digest}
    assert len(report.commits) == 1
    assert chain.pinned() == ("1.3.0", missed)
    assert f"Image-Event: scan {chain.image}/tags/list" in chain.message("main")
    assert len(chain.commits()) == base + 2

    # the registry keeps retrying its notification: once the receiver is back it arrives, and changes
    # nothing (the version is in Git already); a second scan changes nothing either
    await chain.receiver_up()
    await until(lambda: chain.delivered("push", tag="1.3.0"), 60, "the late notification arrived")
    await until(lambda: chain.handled("1.3.0"), 30, "image automation handled it")
    assert await until(chain.idle, 15, "the consumer is idle")
    late = next(r for r in chain.results if r.tag == "1.3.0")
    assert late.commits == [] and [u.outcome.value for u in late.updates] == ["unchanged"]
    (again,) = await asyncio.to_thread(scanner.scan_all)
    assert again.error == "" and again.commits == []
    assert len(chain.commits()) == base + 2
    assert REPO in chain.image


async def test_interval_scan_loop_promotes_a_missed_version(tmp_path: Path, nats: NatsServer) -> None:
    from reconciler.promote.scan import ScanReport, run_scanner

    chain = Chain(tmp_path, nats.url, scan="{interval: 1}")
    await chain.start()
    stop = asyncio.Event()
    reports: list[ScanReport] = []
    pushes: list[bool] = []
    task: asyncio.Task[None] | None = None
    try:
        assert chain.crane is not None and chain.automation is not None
        await chain.receiver_down()  # every notification of this test is lost until the end
        digest = await asyncio.to_thread(chain.crane.push_image, f"{chain.image}:1.5.0")
        scanner = TagScanner(chain.automation)
        task = asyncio.create_task(
            run_scanner(
                scanner, stop, tick=0.2, on_report=reports.append, on_push=lambda: pushes.append(True)
            )
        )
        await until(lambda: chain.pinned() == ("1.5.0", digest), 30, "the interval scan committed 1.5.0")
        await until(lambda: len(reports) >= 2, 30, "a second scan ran after the interval")
        assert pushes == [True] and [len(r.commits) for r in reports[:2]] == [1, 0]
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 30)
        await chain.close()
