"""Prometheus for the local cluster: the pinned build (Go module ``github.com/prometheus/prometheus``
v0.316.0, i.e. Prometheus 3.16.0, ``cmd/prometheus``; built by ``tools/controlplane/build.sh prometheus``
into the version-keyed tool cache) on 127.0.0.1, scraping every second the targets listed in a
file-based service discovery file (``<state>/prometheus/targets.json``, Prometheus ``file_sd_configs``;
https://prometheus.io/docs/prometheus/latest/configuration/configuration/#file_sd_config), which
:func:`register_target` edits (Prometheus re-reads it on change).

No gateway data plane runs here, so what it scrapes in tests and the demo is the agentgateway-shaped
fixture of :mod:`reconciler.devcluster.agw_fixture`.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reconciler.devcluster.binaries import BUILD_SCRIPT, BuildError, _version

#: Seconds between scrapes and between rule evaluations (short: rollout steps are seconds long).
SCRAPE_INTERVAL = 1


@dataclass(frozen=True)
class PrometheusFiles:
    """The files of one local Prometheus: its config, the targets file and the TSDB directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "prometheus.yml"

    @property
    def targets(self) -> Path:
        return self.root / "targets.json"

    @property
    def data(self) -> Path:
        return self.root / "data"


def prometheus_binary(bin_dir: Path) -> Path:
    """Where build.sh puts the pinned Prometheus under ``bin_dir``."""
    return bin_dir / f"prometheus-{_version('PROMETHEUS_VERSION')}" / "prometheus"


def ensure_prometheus() -> Path:
    """Build Prometheus when it is missing (``build.sh prometheus``, a no-op when cached; progress on
    stderr) and return its path.

    Raises:
        BuildError: the build failed (the message says why).
    """
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "prometheus"], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    path = prometheus_binary(Path(lines[-1])) if lines else None
    if proc.returncode != 0 or path is None or not path.exists():
        raise BuildError(f"building Prometheus failed (exit {proc.returncode}); see the output above")
    return path


def write_config(files: PrometheusFiles) -> None:
    """Write the config (1 s scrapes of the targets file) and an empty targets file when none exists."""
    files.root.mkdir(parents=True, exist_ok=True)
    files.data.mkdir(parents=True, exist_ok=True)
    if not files.targets.exists():
        files.targets.write_text("[]\n", encoding="utf-8")
    files.config.write_text(
        "# written by reconciler (devcluster/prometheus.py)\n"
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}s\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL}s\n"
        "scrape_configs:\n"
        "- job_name: local\n"
        "  file_sd_configs:\n"
        f"  - files: [{json.dumps(str(files.targets))}]\n"
        "    refresh_interval: 1s\n",
        encoding="utf-8",
    )


def command(binary: Path, files: PrometheusFiles, port: int) -> list[str]:
    """The command line of the local Prometheus, listening on ``127.0.0.1:port``."""
    return [
        str(binary),
        f"--config.file={files.config}",
        f"--storage.tsdb.path={files.data}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]


def register_target(targets: Path, address: str, labels: dict[str, str] | None = None) -> None:
    """Add (or replace) the scrape target ``host:port`` in the targets file, atomically and under a lock,
    so several writers (tests, the demo) do not lose each other's entries.

    Raises:
        ValueError: ``address`` is not on 127.0.0.1.
    """
    if not address.startswith("127.0.0.1:"):
        raise ValueError(f"scrape target {address!r} is not on 127.0.0.1")
    _edit(targets, lambda groups: [g for g in groups if address not in g.get("targets", [])] + [
        {"targets": [address], "labels": dict(labels or {})}
    ])  # fmt: skip


def unregister_target(targets: Path, address: str) -> None:
    """Remove the scrape target ``host:port`` from the targets file (no-op when absent)."""
    _edit(targets, lambda groups: [g for g in groups if address not in g.get("targets", [])])


def _edit(targets: Path, change: object) -> None:
    targets.parent.mkdir(parents=True, exist_ok=True)
    lock = targets.with_suffix(".lock")
    with open(lock, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            groups = json.loads(targets.read_text(encoding="utf-8")) if targets.exists() else []
        except ValueError:
            groups = []
        assert callable(change)
        new = change(groups if isinstance(groups, list) else [])
        tmp = targets.with_suffix(f".tmp.{os.getpid()}")
        tmp.write_text(json.dumps(new, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, targets)
