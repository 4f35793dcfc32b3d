"""A trigger message is acknowledged when the passes it asked for have ended, and reported in progress
meanwhile, so JetStream does not deliver it again (and run the passes twice) while they wait their turn."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.model import PassResult
from reconciler.runtime import daemon as daemon_mod


class Msg:
    def __init__(self) -> None:
        self.log: list[str] = []

    async def in_progress(self) -> None:
        self.log.append("in-progress")

    async def ack(self) -> None:
        self.log.append("ack")


async def test_in_progress_until_the_passes_end_then_one_ack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_mod, "TRIGGER_PROGRESS_SECONDS", 0.05)
    loop = asyncio.get_running_loop()
    slow: asyncio.Future[PassResult] = loop.create_future()
    failed: asyncio.Future[PassResult] = loop.create_future()
    failed.set_exception(RuntimeError("unknown environment"))
    msg = Msg()
    task = asyncio.create_task(daemon_mod.Daemon._ack_when_done(msg, [slow, failed]))
    await asyncio.sleep(0.3)
    assert "ack" not in msg.log and msg.log.count("in-progress") >= 3
    slow.set_result(PassResult(environment="dev", ok=True, started_at=0.0, duration=0.0))
    await asyncio.wait_for(task, 5)
    assert msg.log[-1] == "ack" and msg.log.count("ack") == 1


async def test_passes_already_ended_are_acknowledged_at_once() -> None:
    msg = Msg()
    await asyncio.wait_for(daemon_mod.Daemon._ack_when_done(msg, []), 5)
    assert msg.log == ["ack"]
