"""bench/registry in its quick mode: the JSON it writes has its shape, every push made exactly one commit
and the scans after the first committed nothing. No timing is asserted here (the numbers live in bench/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reconciler_testing import REPO_ROOT

pytestmark = pytest.mark.integration

BENCH = REPO_ROOT / "bench" / "registry" / "bench_registry.py"


def test_quick_mode_commits_each_push_once_and_scans_idempotently(tmp_path: Path) -> None:
    out = tmp_path / "registry.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["push"]["pushes"] == data["push"]["commits"] == 3
    for key in ("push_to_commit", "push_only", "push_to_delivery", "delivery_to_commit"):
        assert set(data["push"][key]) == {"p50", "p95", "max"}
    for label in ("fast", "default_rate"):
        scan = data["scan"][label]
        assert scan["first_scan"]["tags"] == 100 and scan["first_scan"]["commits"] == 1
        assert scan["later_commits"] == 0
    assert data["anchors"]["argocd_image_updater_interval_s"] == 120.0
    assert "push -> commit" in proc.stdout
