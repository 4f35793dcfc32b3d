"""Suspend, resume, sync and promote: the daemon's actions (``POST /api/env/<name>/suspend|resume|sync|
promote``), the public API in reconciler/runtime/control.py, the ``reconciler suspend|resume|sync``
commands and the status page's buttons driven in Chromium. A real :class:`~reconciler.runtime.Daemon` (its
API server unreachable: passes fail, Git works) on the bare remote of tests/observe/test_observe_actions.py;
suspensions in a file of the daemon's state, and in JetStream key-value on a nats-server of the test's own
(seen by a second "replica", kept across a NATS restart)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _observe_support import CHROMIUM, CHROMIUM_ARGS, require_chromium, save_screenshot
from reconciler_testing import NatsServer, until
from test_observe_actions import (  # the scenario and the running daemon of the rollback tests
    TOKEN,
    Scenario,
    Served,
    _healthy,
    built,
    git,
    running,
    scenario,
)
from typer.testing import CliRunner

from reconciler.bus import STREAM_EVENTS, Bus, control_subject, reconcile_request_subject
from reconciler.cli import app
from reconciler.promote.history import timeline
from reconciler.reconcile import load_environments
from reconciler.runtime.control import (
    ControlStore,
    ControlUnavailable,
    is_suspended,
    request_sync,
    resume_environment,
    suspend_environment,
)
from reconciler.source.gitops import GitWriter

__all__ = ["built", "scenario"]  # fixtures


def _history(remote: Path, tmp_path: Path, env: str) -> list[Any]:
    w = GitWriter(str(remote), "main", tmp_path / "history", backoff=0.01)
    try:
        w.sync()
        return timeline(w, load_environments(w.workdir)[env])
    finally:
        w.close()


def _json(output: str) -> Any:
    """The JSON a command wrote (the daemon of the test logs to the same standard output)."""
    return json.loads(output[output.index("{\n") :])


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


async def _no_pass(s: Served, env: str) -> str:
    """Trigger ``env``; the answer of a suspended environment (no pass ran): its error."""
    state = s.daemon.envs[env]
    await until(lambda: not state.running and not state.waiters, 60, "the pass in progress")
    before = s.daemon.envs[env].passes
    result = await asyncio.wait_for(s.daemon.trigger(env, "poll"), 60)
    assert s.daemon.envs[env].passes == before and not result.ok  # no pass ran, nothing applied
    return result.error


async def test_suspend_resume_and_sync_through_the_api(scenario: Scenario, tmp_path: Path) -> None:
    async with running(scenario, tmp_path, actions_token=TOKEN) as s:
        await until(lambda: len(s.results) >= 3, 60, "the start-up passes")
        count = s.count()
        status, body = await s.post("/api/env/staging/suspend", {"reason": "incident 42"})
        assert status == 200, body
        assert (body["action"], body["suspended"], body["requested_by"], body["via"]) == (
            "suspend",
            True,
            "token",
            "file",
        )
        assert (tmp_path / "cache" / "control" / "staging.json").is_file()
        assert (await _no_pass(s, "staging")).startswith("suspended by token at ")
        # sync is refused while suspended; the other environments are not concerned
        status, body = await s.post("/api/env/staging/sync", {})
        assert status == 409 and "resume it first" in body["error"]
        html, _ = await s.page("/env/staging")
        assert 'data-testid="suspended"' in html and "incident 42" in html and 'id="act-resume"' in html
        # the timeline lists it (an action noted on the head, never marked applied or pending)
        chip = html.index('class="chip k-suspend"')
        entry = html[html.rindex("<li", 0, chip) :]
        entry = entry[: entry.index("</li>")]
        assert entry.startswith('<li class=""') and "requested by token" in entry and "incident 42" in entry
        index, _ = await s.page("/")
        assert index.count('data-testid="suspended"') == 1
        summary = await (await s.http.get(s.base + "/api/env/staging")).json()
        assert summary["summary"]["suspended"] and summary["summary"]["suspended_by"] == "token"
        # refusals as for rollbacks: no token, a foreign origin
        assert (await s.post("/api/env/staging/resume", {}, token=None))[0] == 401
        headers = {"Origin": "https://evil.example"}
        assert (await s.post("/api/env/staging/resume", {}, headers=headers))[0] == 403
        assert s.count() == count  # suspensions are not commits

    # a restart of the daemon (same state directory) keeps it suspended
    async with running(scenario, tmp_path, actions_token=TOKEN) as s:
        assert (await _no_pass(s, "staging")).endswith(": incident 42")
        status, body = await s.post("/api/env/staging/resume", {"reason": "fixed"})
        assert status == 200 and body["via"] == "file" and not body["suspended"], body
        await until(lambda: any("resume" in r.trigger for r in s.results), 60, "the pass after resuming")
        status, body = await s.post("/api/env/staging/sync", {"reason": "check"})
        assert status == 200 and body["via"] == "local", body
        await until(lambda: any("sync" in r.trigger for r in s.results), 60, "the pass asked for")

    entries = [
        e for e in _history(scenario.remote, tmp_path, "staging") if e.kind in ("suspend", "resume", "sync")
    ]
    assert [(e.kind, e.requested_by, e.reason) for e in entries] == [
        ("sync", "token", "check"),
        ("resume", "token", "fixed"),
        ("suspend", "token", "incident 42"),
    ]
    assert all(len(e.sha) == 40 for e in entries)


async def test_the_commands_act_through_the_daemon_and_on_its_state_file(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    monkeypatch.delenv("RECONCILER_ACTIONS_TOKEN", raising=False)
    async with running(scenario, tmp_path, actions_token=TOKEN) as s:
        out = await asyncio.to_thread(
            _cli, "suspend", "dev", "--reason", "freeze", "--server", s.base, "--token-file", str(token_file)
        )
        assert out.exit_code == 0, out.output
        assert "suspended by token at" in out.output and "freeze" in out.output
        assert (await _no_pass(s, "dev")).endswith(": freeze")
        out = await asyncio.to_thread(
            _cli, "sync", "dev", "--server", s.base, "--token-file", str(token_file), "-o", "json"
        )
        assert out.exit_code == 1 and "resume it first" in out.output
        out = await asyncio.to_thread(
            _cli, "resume", "dev", "--server", s.base, "--token-file", str(token_file), "-o", "json"
        )
        assert out.exit_code == 0, out.output
        assert _json(out.output)["suspended"] is False, out.output
        # without --server: the file in the daemon's state directory, read before the next pass
        out = await asyncio.to_thread(_cli, "suspend", "prod", "--cache-dir", str(tmp_path / "cache"))
        assert out.exit_code == 0, out.output
        assert (await _no_pass(s, "prod")).startswith("suspended by ")
        out = await asyncio.to_thread(_cli, "sync", "prod")
        assert out.exit_code == 2 and "--server" in out.output


async def test_suspensions_in_jetstream_are_seen_by_every_replica(tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "js")
    nats.start()
    buses = [Bus(nats.url, name="a"), Bus(nats.url, name="b")]
    try:
        for b in buses:
            await b.connect()
        one, two = ControlStore(tmp_path / "a", buses[0]), ControlStore(tmp_path / "b", buses[1])
        assert await is_suspended(two, "dev") is None
        await suspend_environment(one, "dev", by="alice", reason="load test")
        seen = await is_suspended(two, "dev")  # another replica, another state directory
        assert seen is not None and (seen.by, seen.reason) == ("alice", "load test")
        assert (tmp_path / "b" / "dev.json").is_file()  # its last known value

        # a sync request: the subject the daemons' trigger consumers take
        got: list[bytes] = []

        async def heard(msg: Any) -> None:
            got.append(msg.data)

        assert buses[1]._nc is not None
        sub = await buses[1]._nc.subscribe(reconcile_request_subject("dev"), cb=heard)
        await buses[1]._nc.flush()  # the server has the subscription before anything is published
        await request_sync(buses[0], "dev", by="alice")
        await until(lambda: got, 10, "the reconcile request")
        assert json.loads(got[0])["by"] == "alice"
        await sub.unsubscribe()
        # the request's record is kept as its own event too (not dropped as a repeat of the request)
        last = await buses[1].js.get_last_msg(STREAM_EVENTS, control_subject("dev"))
        assert json.loads(last.data or b"{}")["action"] == "sync"

        # NATS down: the last known value is read, a change is refused (the other replicas could not see it)
        nats.stop()
        await until(lambda: not buses[1].connected, 10, "the disconnection")
        assert await is_suspended(two, "dev") is not None
        with pytest.raises(ControlUnavailable, match="not reachable"):
            await resume_environment(two, "dev", by="bob")
    finally:
        for b in buses:
            await b.close()
        nats.stop()

    # NATS restarted on its store: the suspension is still there, for a daemon starting now
    restarted = NatsServer(tmp_path / "js")
    restarted.start()
    bus = Bus(restarted.url)
    try:
        await bus.connect()
        fresh = ControlStore(tmp_path / "c", bus)
        assert (await is_suspended(fresh, "dev")) is not None
        await resume_environment(fresh, "dev", by="bob")
        assert await is_suspended(fresh, "dev") is None
        # the command line on NATS
        out = await asyncio.to_thread(
            _cli,
            "suspend",
            "dev",
            "--nats",
            restarted.url,
            "--cache-dir",
            str(tmp_path / "cli"),
            "-o",
            "json",
        )
        assert out.exit_code == 0 and _json(out.output)["via"] == "nats", out.output
        assert (await is_suspended(fresh, "dev")) is not None
    finally:
        await bus.close()
        restarted.stop()


async def test_a_daemon_on_nats_obeys_a_suspension_another_replica_wrote(
    scenario: Scenario, tmp_path: Path
) -> None:
    nats = NatsServer(tmp_path / "js")
    nats.start()
    other = Bus(nats.url, name="another-replica")
    try:
        await other.connect()
        async with running(scenario, tmp_path, actions_token=TOKEN, nats_url=nats.url) as s:
            await until(lambda: s.daemon.bus is not None and s.daemon.bus.connected, 30, "NATS")
            await suspend_environment(ControlStore(tmp_path / "other", other), "staging", by="alice")
            assert (await _no_pass(s, "staging")).startswith("suspended by alice at ")
            html, _ = await s.page("/env/staging")
            assert (
                'data-testid="suspension"' in html and 'Suspended by <span class="mono">alice</span>' in html
            )
            out = await asyncio.to_thread(_cli, "status", "staging", "--server", s.base)
            assert "Suspended (by alice)" in out.output, out.output
            # resumed through this daemon: the other replica sees it, and the pass request goes over NATS
            status, body = await s.post("/api/env/staging/resume", {})
            assert status == 200 and body["via"] == "nats", body
            assert await is_suspended(ControlStore(tmp_path / "other", other), "staging") is None
            await until(
                lambda: any(
                    "resume" in r.trigger or "request" in r.trigger
                    for r in s.results
                    if r.environment == "staging"
                ),
                60,
                "the pass after resuming",
            )
            status, body = await s.post("/api/env/staging/sync", {})
            assert status == 200 and body["via"] == "nats", body
    finally:
        await other.close()
        nats.stop()


# -- the buttons in Chromium -------------------------------------------------------------------------------

NEWER = "overlays/dev/kustomization.yaml"


def _newer_dev(remote: Path, tmp_path: Path) -> str:
    """Move dev's clock-mcp to 0.3.0 and record the commit healthy in dev: something to promote."""
    work = tmp_path / "dev-work"
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True)
    path = work / NEWER
    path.write_text(
        path.read_text().replace(
            "newTag: 0.2.0\n  digest: sha256:" + "b" * 64, "newTag: 0.3.0\n  digest: sha256:" + "c" * 64, 1
        )
    )
    git(
        work, "-c", "user.name=dev", "-c", "user.email=dev@example.test", "commit", "-qam", "dev: clock 0.3.0"
    )
    git(work, "push", "-q", "origin", "HEAD:main")
    w = GitWriter(str(remote), "main", tmp_path / "dev-writer", backoff=0.01)
    _healthy(w, "dev")
    w.close()
    return git(work, "rev-parse", "HEAD")


async def test_sync_suspend_and_promote_buttons_in_chromium(scenario: Scenario, tmp_path: Path) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    _newer_dev(scenario.remote, tmp_path)
    async with running(scenario, tmp_path, actions_token=TOKEN, refresh=2) as s:
        await until(lambda: len(s.results) >= 3, 60, "the start-up passes")
        count = s.count()
        async with async_playwright() as pw:
            ctx = await pw.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )
            try:
                page = await ctx.new_page()
                await page.goto(s.base + "/env/staging")
                result = page.locator("#control-result")
                dialog = page.locator("#control-dialog")

                async def click(button: str) -> None:
                    for _ in range(3):  # a click a reload swallowed is made again
                        await page.click(button)
                        try:
                            await expect(dialog).to_be_visible(timeout=3_000)
                            return
                        except AssertionError:
                            continue
                    await expect(dialog).to_be_visible()

                # sync now (the token typed once, kept in this tab)
                await click("#act-sync")
                await expect(page.locator("#control-question")).to_contain_text("Run a pass of staging now?")
                await page.fill("#control-token", TOKEN)
                await page.click("#control-confirm")
                await expect(result).to_have_attribute("data-outcome", "ok", timeout=20_000)
                await expect(result).to_have_attribute("data-action", "sync")
                await until(lambda: any("sync" in r.trigger for r in s.results), 60, "the pass asked for")

                # promote from dev: a commit on main (staging takes pushes), with who asked
                await click("#act-promote")
                await expect(page.locator("#control-question")).to_contain_text("every image dev runs")
                await expect(page.locator("#control-token-row")).to_be_hidden()
                await page.click("#control-confirm")
                await expect(result).to_have_attribute("data-action", "promote", timeout=30_000)
                await expect(result).to_have_attribute("data-outcome", "ok")
                commit = await result.locator("[data-commit]").get_attribute("data-commit")
                assert commit == s.head() and s.count() == count + 1
                t = s.trailers(commit)
                assert t["Requested-By"] == ["token"] and t["Promotion-To"] == ["staging"]
                assert t["Promotion-From"] == ["dev"]
                assert "newTag: 0.3.0" in s.file(commit, "overlays/staging/kustomization.yaml")

                # suspend: the page shows who, when and why, and offers Resume
                await click("#act-suspend")
                await page.fill("#control-reason", "change freeze")
                await page.click("#control-confirm")
                await expect(page.locator('[data-testid="suspension"]')).to_contain_text(
                    "change freeze", timeout=20_000
                )
                await expect(page.locator('[data-testid="suspension"]')).to_contain_text("Suspended by token")
                await expect(page.locator("#act-resume")).to_be_visible()
                await expect(page.locator("#act-sync")).to_be_disabled()
                save_screenshot(await page.screenshot(full_page=True), tmp_path, "status-page-suspended.png")
                assert TOKEN not in await page.content()
            finally:
                await ctx.close()
        assert (await _no_pass(s, "staging")).endswith(": change freeze")
