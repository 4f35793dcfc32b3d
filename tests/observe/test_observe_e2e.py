"""The status page end to end: a real daemon on the local control plane with NATS and a bare Git remote,
its HTTP server on 127.0.0.1, and Debian's Chromium driven by Playwright, down to a click on "Roll back"
that reverts a promotion and the pass that applies the revert. Also checks /metrics, /readyz, the
Kubernetes Events on the managed objects, and the NATS result, drift and promotion events."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import nats
import pytest
from _observe_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    open_confirmation,
    require_chromium,
    save_screenshot,
    seed,
)
from prometheus_client.parser import text_string_to_metric_families
from reconciler_testing import EnvRepo, daemon_settings, until

from reconciler.cli_observe import server_status
from reconciler.cluster.client import KubeClient
from reconciler.model import ObjectRef, PassResult
from reconciler.observe import EventRecorder, Metrics, Observer
from reconciler.runtime import Daemon
from reconciler.runtime.http import start_http

pytestmark = pytest.mark.integration
ACTIONS_TOKEN = "e2e-actions-token-0123456789abcdef"


def _events(kube: KubeClient, namespace: str) -> list[dict[str, Any]]:
    out = kube.request("GET", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")
    return list(out.get("items", []))


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


async def _http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    status = int(head.split()[1])
    if "transfer-encoding: chunked" in head.lower():
        chunks, rest = [], body
        while rest:
            size_s, _, rest = rest.partition("\r\n")
            size = int(size_s, 16)
            if size == 0:
                break
            chunks.append(rest[:size])
            rest = rest[size + 2 :]
        body = "".join(chunks)
    return status, body


async def test_status_page_in_chromium(
    env_repo: EnvRepo,
    kubeconfig: Path,
    kube: KubeClient,
    namespace: str,
    cache_dir: Path,
    nats_url: str,
    tmp_path: Path,
) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    first = seed(env_repo, namespace, via="push")  # a rollback from the page is pushed, not proposed
    settings = daemon_settings(
        env_repo.remote, kubeconfig, cache_dir, nats_url=nats_url, actions_token=ACTIONS_TOKEN
    )
    results: list[PassResult] = []
    daemon = Daemon(settings, on_result=results.append)
    metrics = Metrics()
    observer = Observer(metrics, EventRecorder(KubeClient(kubeconfig), close_client=True))
    observer.attach(daemon)

    nc = await nats.connect(nats_url)
    published: list[tuple[str, dict[str, Any]]] = []

    async def on_msg(msg: Any) -> None:
        published.append((msg.subject, json.loads(msg.data)))

    await nc.subscribe("reconciler.result.dev", cb=on_msg)
    await nc.subscribe("reconciler.drift.dev", cb=on_msg)
    await nc.subscribe("reconciler.promotion.dev", cb=on_msg)
    await nc.flush()  # the server has the subscriptions before anything is published

    await daemon.start()
    runner = await start_http(daemon, port=0, metrics=metrics, refresh=1, diff_ttl=1.0)
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    dep = ObjectRef(group="apps", version="v1", kind="Deployment", namespace=namespace, name="clock-mcp")
    try:
        await until(lambda: results, 60, "first pass")
        assert results[0].ok, results[0].error
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
                await page.goto(base + "/")
                row = page.locator('tr[data-env="dev"]')
                await expect(row.locator('[data-testid="revision"]')).to_have_text(f"main@{first[:7]}")
                await expect(row.locator('[data-testid="sync"]')).to_have_text("Synced", timeout=20_000)
                await expect(row.locator('[data-testid="health"] .chip')).to_have_count(1)
                await expect(page.locator('[data-testid="readiness"] .chip.ok')).to_have_count(4)

                await row.get_by_role("link", name="dev").click()
                await page.wait_for_url(base + "/env/dev")
                obj = page.locator(f'tr[data-object="Deployment/{namespace}/clock-mcp"]')
                await expect(obj).to_contain_text("created")
                await expect(obj.locator(".chip")).to_have_count(1)  # its health
                await expect(page.locator('[data-testid="no-pending"]')).to_be_visible(timeout=20_000)
                await expect(page.locator(f'#timeline li[data-sha="{first}"]')).to_contain_text("applied")

                # drift by another field manager: corrected, then listed under recent drift
                await asyncio.to_thread(
                    kube.apply,
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": "clock-mcp", "namespace": namespace},
                        "spec": {
                            "template": {
                                "spec": {"containers": [{"name": "server", "image": "evil/image:1"}]}
                            }
                        },
                    },
                    dep,
                    field_manager="kubectl-edit",
                    force=True,
                )
                # (the watch may see the edit more than once before the correction lands: take the newest)
                drift_row = page.locator(f'tr[data-drift-object="Deployment/{namespace}/clock-mcp"]').first
                await expect(drift_row).to_contain_text("kubectl-edit", timeout=20_000)
                await expect(drift_row).to_contain_text("corrected")
                await expect(drift_row).to_contain_text("spec.template.spec.containers[name=server].image")

                # a pushed promotion nobody announced: the page shows it pending, with the dry-run diff
                second = await asyncio.to_thread(
                    seed,
                    env_repo,
                    namespace,
                    tag="0.2.0",
                    message="promote(dev): clock 0.2.0\n\nPromotion-From: ci\nPromotion-To: dev\n",
                    via="push",
                )
                diff = page.locator(f'.diff[data-diff-object="Deployment/{namespace}/clock-mcp"]')
                await expect(diff).to_contain_text("image: ghcr.io/acme/clock-mcp:0.2.0", timeout=30_000)
                await expect(diff.locator("span.add")).to_contain_text("ghcr.io/acme/clock-mcp:0.2.0")
                await expect(diff.locator("span.del")).to_contain_text("ghcr.io/acme/clock-mcp:0.1.0")
                await expect(page.locator('[data-testid="env-name"] [data-testid="sync"]')).to_have_text(
                    "OutOfSync"
                )
                await expect(page.locator(f'#timeline li[data-sha="{second}"]')).to_contain_text("pending")
                png = await page.screenshot(full_page=True)
                shot = save_screenshot(png, tmp_path, "status-page-env-dev.png")
                assert shot.stat().st_size > 10_000

                # apply it: synced at the new revision, nothing pending
                applied = await daemon.trigger("dev", "test")
                assert applied.ok and applied.revision.endswith(second), applied.error
                await expect(page.locator('[data-testid="revision"]')).to_have_text(
                    f"main@sha1:{second}", timeout=20_000
                )
                await expect(page.locator('[data-testid="no-pending"]')).to_be_visible(timeout=20_000)
                await expect(page.locator('[data-testid="env-name"] [data-testid="sync"]')).to_have_text(
                    "Synced"
                )

                # roll the promotion back from the page: a revert commit that records who asked for it,
                # and the pass it triggers applies it
                await open_confirmation(page, page.locator('tr[data-rollback-app=""] button'))
                await expect(page.locator("#rollback-question")).to_contain_text(
                    f"Revert promotion {second[:7]}"
                )
                await page.fill("#rollback-token", ACTIONS_TOKEN)
                await page.fill("#rollback-reason", "clock 0.2.0 is slow")
                await page.click("#rollback-confirm")
                result = page.locator("#action-result")
                await expect(result).to_have_attribute("data-outcome", "ok", timeout=30_000)
                reverted = await result.locator("[data-commit]").get_attribute("data-commit")
                assert reverted and reverted != second
                await expect(page.locator('[data-testid="revision"]')).to_have_text(
                    f"main@sha1:{reverted}", timeout=30_000
                )
                await expect(page.locator(f'#timeline li[data-sha="{reverted}"]')).to_contain_text(
                    "requested by token"
                )
                await expect(page.locator(f'#timeline li[data-sha="{second}"]')).to_contain_text(
                    f"reverted by {reverted[:7]}"
                )
                assert ACTIONS_TOKEN not in await page.content()
                await expect(page.locator('[data-testid="env-name"] [data-testid="sync"]')).to_have_text(
                    "Synced", timeout=20_000
                )

                await page.goto(base + "/")
                png = await page.screenshot(full_page=True)
                save_screenshot(png, tmp_path, "status-page-overview.png")
            finally:
                await ctx.close()

        # /metrics and /readyz of the same server
        status, body = await _http_get(port, "/metrics")
        assert status == 200
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body)
            for s in f.samples
        }
        ok = (("environment", "dev"), ("result", "success"))
        assert samples[("reconciler_reconcile_total", ok)] >= 2
        assert samples[("reconciler_reconcile_duration_seconds_count", ok)] >= 2
        corrections = [d for d in daemon.drift_events if d.get("corrected")]
        assert corrections and len(corrections) == len(daemon.drift_events)
        assert samples[("reconciler_drift_corrected_total", (("environment", "dev"),))] == len(corrections)
        info = [dict(k[1]) for k in samples if k[0] == "reconciler_last_applied_revision_info"]
        assert info == [
            {"environment": "dev", "revision": f"main@sha1:{reverted}", "branch": "main", "sha": reverted}
        ]
        lag = (("consumer", "reconciler-daemon-triggers"), ("stream", "RECONCILER"))
        assert samples[("reconciler_nats_consumer_pending_messages", lag)] == 0
        assert sum(v for (n, labels), v in samples.items() if n == "reconciler_objects") == 2
        status, body = await _http_get(port, "/readyz")
        assert status == 200, body
        assert all(c["ok"] for c in json.loads(body)["checks"].values())

        # reconciler status --server reads the same daemon
        rows = await asyncio.to_thread(server_status, base)
        assert [(r.name, r.sync.value, r.revision) for r in rows] == [
            ("dev", "Synced", f"main@sha1:{reverted}")
        ]
        # the revert on the remote: what the CLI's rollback writes, and who asked
        revert = await asyncio.to_thread(_git, env_repo.remote, "log", "-1", "--format=%B", reverted)
        assert f"This reverts commit {second}." in revert
        for trailer in (f"Rollback-Of: {second}", "Reason: clock 0.2.0 is slow", "Requested-By: token"):
            assert trailer in revert
        live_image = (await asyncio.to_thread(kube.get, dep) or {})["spec"]["template"]["spec"]["containers"]
        assert live_image[0]["image"] == "ghcr.io/acme/clock-mcp:0.1.0"

        # Kubernetes Events on the managed objects, matched to them by uid
        live = await asyncio.to_thread(kube.get, dep)
        assert live is not None
        assert observer.recorder is not None
        observer.recorder.close()  # writes what is still queued
        # (failed may count Pruned events of an earlier test's "dev" inventory in a namespace being deleted)
        assert observer.recorder.dropped == 0
        events = await asyncio.to_thread(_events, kube, namespace)
        on_dep = [
            e
            for e in events
            if e["regarding"]["name"] == "clock-mcp"
            and e["regarding"]["kind"] == "Deployment"
            and e.get("reportingController") == "reconciler.dev/reconciler"  # not the controllers' own
        ]
        reasons = [e["reason"] for e in on_dep]
        assert {"Created", "DriftCorrected", "Configured"} <= set(reasons), reasons
        assert all(e["regarding"].get("uid") == live["metadata"]["uid"] for e in on_dep)
        assert all(e["type"] == "Normal" and e["reportingInstance"] for e in on_dep)
        corrected = next(e for e in on_dep if e["reason"] == "DriftCorrected")
        assert "spec.template.spec.containers[name=server].image" in corrected["note"]
        assert "evil/image" not in corrected["note"]  # paths, never values
        created = next(e for e in on_dep if e["reason"] == "Created")
        assert f"main@sha1:{first}" in created["note"]

        # NATS: a result per pass and the drift report (paths, never values)
        await until(
            lambda: len([s for s, _ in published if s == "reconciler.result.dev"]) >= 2, 10, "results"
        )
        rollbacks = [d for s, d in published if s == "reconciler.promotion.dev" and d["kind"] == "rollback"]
        assert [(r["revert"], r["promotions"]) for r in rollbacks] == [([reverted], [second])]
        assert "requested by token" in rollbacks[0]["message"]
        drift = [d for s, d in published if s == "reconciler.drift.dev"]
        assert len(drift) == len(corrections)
        assert all(d["corrected"] is True for d in drift)
        assert drift[0]["paths"] == ["spec.template.spec.containers[name=server].image"]
        assert "evil/image" not in json.dumps(drift)
    finally:
        await runner.cleanup()
        await daemon.stop()
        observer.close()
        await nc.close()
