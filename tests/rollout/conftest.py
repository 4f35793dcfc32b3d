"""Fixtures for the rollout tests: the pinned Prometheus (tools/controlplane/build.sh prometheus, cached)
and the agentgateway-shaped metrics fixture (reconciler/devcluster/agw_fixture.py — a fixture, not a
gateway), both on 127.0.0.1, started once per session."""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.devcluster.agents import wait_listening
from reconciler.devcluster.process import free_port, start, stop_group
from reconciler.devcluster.prometheus import (
    PrometheusFiles,
    command,
    ensure_prometheus,
    register_target,
    write_config,
)


@dataclass
class Served:
    url: str
    port: int
    targets: Path


def _ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout} s")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The pinned Prometheus scraping every second whatever is in its targets file."""
    binary = ensure_prometheus()
    root = tmp_path_factory.mktemp("prometheus")
    files = PrometheusFiles(root)
    write_config(files)
    port = free_port()
    log = root / "prometheus.log"
    pid = start("prometheus", command(binary, files, port), log, cwd=root)
    try:
        wait_listening(port, 30, "prometheus", log, pid)
        _ready(f"http://127.0.0.1:{port}/-/ready", 30)
        yield Served(f"http://127.0.0.1:{port}", port, files.targets)
    finally:
        stop_group(pid)


@pytest.fixture(scope="session")
def agw_metrics(
    prometheus: Served, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The agentgateway-shaped metrics fixture, reading route weights from the session cluster, scraped by
    ``prometheus``."""
    root = tmp_path_factory.mktemp("agw-fixture")
    port = free_port()
    log = root / "agw-fixture.log"
    cmd = [
        sys.executable,
        "-m",
        "reconciler.devcluster.agw_fixture",
        "--port",
        str(port),
        "--kubeconfig",
        str(kubeconfig),
    ]
    pid = start("agw-fixture", cmd, log, cwd=root)
    try:
        wait_listening(port, 30, "agw-fixture", log, pid)
        register_target(prometheus.targets, f"127.0.0.1:{port}", {"fixture": "agentgateway"})
        # Prometheus takes a few seconds to discover a new file_sd target: wait until it scraped it
        query = urllib.parse.quote(f'up{{instance="127.0.0.1:{port}"}} == 1')
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?query={query}", timeout=5) as resp:
                if json.loads(resp.read())["data"]["result"]:
                    break
            time.sleep(0.5)
        else:
            raise AssertionError(f"Prometheus never scraped the fixture at 127.0.0.1:{port}")
        yield Served(f"http://127.0.0.1:{port}", port, prometheus.targets)
    finally:
        stop_group(pid)
