"""The daemon's commit statuses (reconciler/promote/statuses.py): what a health gate's decision posts,
that an unchanged status is not posted again, that a host error is retried at the next outcome, and when
the daemon posts none at all — against the loopback Gitea stand-in of ``_host_standins``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from _host_standins import TOKEN, Forge, free_port, serve

from reconciler.model.health import HealthState, Verdict
from reconciler.promote.auto import Decision
from reconciler.promote.records import Outcome
from reconciler.promote.statuses import CommitStatuses, commit_statuses, gate_status, sha_of
from reconciler.settings import DaemonSettings

SHA = "ab" * 20


@pytest.fixture
async def gitea() -> AsyncIterator[Forge]:
    forge = Forge(kind="gitea")
    runner = await serve(forge)
    yield forge
    await runner.cleanup()


def test_a_gate_decision_becomes_a_status_that_never_calls_the_unjudged_healthy() -> None:
    healthy = Decision(environment="staging", outcome=Outcome.HEALTHY, passed=True,
                       verdict=Verdict(state=HealthState.HEALTHY))  # fmt: skip
    assert gate_status(healthy) == ("success", "health gate passed: Healthy")
    unverified = Verdict(state=HealthState.UNVERIFIED, unverified=2, message="2 objects nobody judged")
    state, text = gate_status(
        Decision(environment="staging", outcome=Outcome.UNVERIFIED, passed=True, verdict=unverified)
    )
    assert state == "success" and "Unverified" in text and "Healthy" not in text
    failed = Decision(
        environment="staging",
        outcome=Outcome.DEGRADED,
        passed=False,
        verdict=Verdict(state=HealthState.DEGRADED, message="Deployment shop/clock: 0/1 ready"),
        reverted=["c" * 40],
    )
    state, text = gate_status(failed)
    assert state == "failure" and text.startswith("reverted (cccccccccccc); health gate failed: degraded")
    assert sha_of("main@sha1:" + SHA) == SHA and sha_of("main") == ""


async def test_statuses_are_posted_once_per_change_and_retried_after_a_host_error(gitea: Forge) -> None:
    config = dataclasses.replace(gitea.config(), retry_seconds=0.2)
    statuses = CommitStatuses(config)
    post = statuses.report
    assert await asyncio.to_thread(post, "staging", SHA, "pending", "applied; waiting for the health gate")
    assert not await asyncio.to_thread(
        post, "staging", SHA, "pending", "applied; waiting for the health gate"
    )
    assert await asyncio.to_thread(post, "staging", SHA, "success", "health gate passed: Healthy")
    bodies = [p["body"] for p in gitea.posts(f"/statuses/{SHA}")]
    assert [(b["context"], b["state"]) for b in bodies] == [
        ("reconciler/staging", "pending"),
        ("reconciler/staging", "success"),
    ]
    gitea.fail_with = [500] * 50  # the host is down: logged, not raised, and posted at the next outcome
    assert not await asyncio.to_thread(post, "prod", SHA, "failure", "pass failed")
    gitea.fail_with = []
    assert await asyncio.to_thread(post, "prod", SHA, "failure", "pass failed")
    assert not await asyncio.to_thread(post, "prod", "", "failure", "no commit")


def test_no_statuses_without_a_host_a_token_or_with_the_setting_off(tmp_path: object) -> None:
    local = DaemonSettings(repo="/srv/envs")
    assert commit_statuses(local, {}) is None, "a local path has no host"
    remote = DaemonSettings(repo=f"http://127.0.0.1:{free_port()}/acme/envs.git")
    assert commit_statuses(remote, {"RECONCILER_GIT_HOST": "gitea"}) is None, "no token"
    made = commit_statuses(remote, {"RECONCILER_GIT_HOST": "gitea", "RECONCILER_GIT_HOST_TOKEN": TOKEN})
    assert made is not None and made.config.kind == "gitea" and made.config.repo == "acme/envs"
    off = DaemonSettings(repo=remote.repo, commit_status=False)
    assert commit_statuses(off, {"RECONCILER_GIT_HOST": "gitea", "RECONCILER_GIT_HOST_TOKEN": TOKEN}) is None
