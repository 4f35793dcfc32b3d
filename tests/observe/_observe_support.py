"""Shared pieces of the observability tests: a small environment repository and a headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from reconciler_testing import EnvRepo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: clock-mcp
spec:
  replicas: 1
  selector:
    matchLabels: {app: clock-mcp}
  template:
    metadata:
      labels: {app: clock-mcp}
    spec:
      containers:
      - name: server
        image: ghcr.io/acme/clock-mcp:0.1.0
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: clock-mcp
spec:
  selector: {app: clock-mcp}
  ports:
  - name: mcp
    port: 3000
"""


def seed(
    repo: EnvRepo,
    namespace: str,
    *,
    tag: str = "0.1.0",
    message: str = "dev: clock MCP server",
    via: str | None = None,
) -> str:
    """Write a dev environment (a Deployment and a Service in ``namespace``; ``via``: its
    ``promotion.via``) and push; returns the sha."""
    repo.write(
        "envs/dev.yaml",
        f"overlay: overlays/dev\nnamespace: {namespace}\n"
        "sync: {interval: 3600, allowMassPrune: true}\nhealth: {noControllerAfter: 5}\n"
        + (f"promotion: {{via: {via}}}\n" if via else ""),
    )
    repo.write(
        "overlays/dev/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n"
        f"images:\n- name: ghcr.io/acme/clock-mcp\n  newTag: {tag}\n",
    )
    repo.write("overlays/dev/deployment.yaml", DEPLOY)
    repo.write("overlays/dev/service.yaml", SERVICE)
    return repo.commit(message)


def require_chromium() -> None:
    """Fail (never skip) with the fix when Debian's chromium or the playwright package is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the status-page test drives Debian's Chromium "
            "(install it with: apt-get install -y chromium)",
            pytrace=False,
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.fail("the playwright package is missing (pip install playwright; never 'playwright install')")


def save_screenshot(png: bytes, tmp_path: Path, name: str) -> Path:
    """Write ``png`` under ``tmp_path`` and, when ``RECONCILER_SCREENSHOT_DIR`` is set, copy it there."""
    path = tmp_path / name
    path.write_bytes(png)
    extra = os.environ.get("RECONCILER_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


async def open_confirmation(page: Any, button: Any) -> None:
    """Click a "Roll back" ``button`` of the status page and wait for its confirmation dialog. The page
    reloads itself every few seconds (never while the dialog is open): a click that a reload swallowed is
    made again."""
    from playwright.async_api import expect

    dialog = page.locator("#rollback-dialog")
    for _ in range(3):
        await button.click()
        try:
            await expect(dialog).to_be_visible(timeout=3_000)
            return
        except AssertionError:
            continue
    await expect(dialog).to_be_visible()
