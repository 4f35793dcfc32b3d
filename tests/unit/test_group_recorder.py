"""Outcome records of many health gates are written together (group commit), and one bad record fails
only its own gate."""

from __future__ import annotations

import threading
import time

import pytest

from reconciler.errors import SourceError
from reconciler.promote.auto import GroupRecorder
from reconciler.promote.records import Outcome, OutcomeRecord


def _rec(env: str) -> OutcomeRecord:
    return OutcomeRecord(environment=env, outcome=Outcome.HEALTHY, revision="a" * 40, at=1.0)


class Writer:
    """Stands in for record_outcomes: slow (a fetch and a push), records each batch, fails on 'bad'."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[tuple[str, OutcomeRecord]]) -> list[bool]:
        with self.lock:
            self.batches.append([r.environment for _sha, r in items])
        time.sleep(0.2)
        if any(r.environment == "bad" for _sha, r in items):
            raise SourceError("push refs/notes/reconciler: rejected")
        return [True] * len(items)


def test_gates_queued_while_a_batch_is_written_go_in_the_next_one() -> None:
    writer = Writer()
    recorder = GroupRecorder(writer)
    results: dict[str, list[bool]] = {}

    def gate(env: str) -> None:
        results[env] = recorder.record([("a" * 40, _rec(env)), ("b" * 40, _rec(env))])

    first = threading.Thread(target=gate, args=("e0",))
    first.start()
    time.sleep(0.05)  # e0's batch is being written
    rest = [threading.Thread(target=gate, args=(f"e{i}",)) for i in range(1, 8)]
    for t in rest:
        t.start()
    for t in [first, *rest]:
        t.join(10)
    assert results == {f"e{i}": [True, True] for i in range(8)}
    assert writer.batches[0] == ["e0", "e0"]
    assert len(writer.batches) == 2 and sorted(writer.batches[1]) == sorted(
        f"e{i}" for i in range(1, 8) for _ in range(2)
    )


def test_a_failing_batch_is_written_again_caller_by_caller() -> None:
    writer = Writer()
    recorder = GroupRecorder(writer)
    outcome: dict[str, object] = {}

    def gate(env: str) -> None:
        try:
            outcome[env] = recorder.record([("a" * 40, _rec(env))])
        except SourceError as exc:
            outcome[env] = exc

    first = threading.Thread(target=gate, args=("e0",))
    first.start()
    time.sleep(0.05)
    others = [threading.Thread(target=gate, args=(env,)) for env in ("good", "bad", "fine")]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(10)
    assert outcome["e0"] == [True] and outcome["good"] == [True] and outcome["fine"] == [True]
    assert isinstance(outcome["bad"], SourceError)


def test_alone_it_writes_at_once_and_raises_its_own_error() -> None:
    recorder = GroupRecorder(Writer())
    assert recorder.record([("a" * 40, _rec("dev"))]) == [True]
    with pytest.raises(SourceError):
        recorder.record([("a" * 40, _rec("bad"))])
