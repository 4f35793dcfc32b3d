"""bench/rollout in its quick mode on the session's cluster, Prometheus and metrics fixture: the JSON it
writes has its shape, every bad canary was aborted and reverted, the good one succeeded. No timing is
asserted here (the speed goals live in bench/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Served
from reconciler_testing import REPO_ROOT

pytestmark = pytest.mark.integration

BENCH = REPO_ROOT / "bench" / "rollout" / "bench_rollout.py"


def test_quick_mode_aborts_reverts_and_succeeds(
    kubeconfig: Path, prometheus: Served, agw_metrics: Served, tmp_path: Path
) -> None:
    out = tmp_path / "rollout.json"
    argv = [
        sys.executable,
        str(BENCH),
        "--quick",
        "--kubeconfig",
        str(kubeconfig),
        "--prometheus",
        prometheus.url,
        "--fixture",
        agw_metrics.url,
        "--deadline",
        "80",
        "--json",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert out.exists(), proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert {"config", "abort", "step_timing", "meets_goals"} <= res.keys()
    assert res["config"]["runs"] == 2 and res["config"]["steps"] == [25, 50, 75, 100]

    abort = res["abort"]
    for key in ("to_weight_zero_seconds", "to_revert_on_remote_seconds"):
        assert set(abort[key]) == {"p50", "p95", "max"}
        assert all(isinstance(v, float) and v >= 0 for v in abort[key].values())
    assert abort["anchor"]["name"].startswith("flagger/argo-rollouts") and abort["anchor"]["seconds"] == 0
    assert abort["all_aborted"] and abort["all_reverted"]
    assert len(abort["runs"]) == 2
    for run in abort["runs"]:
        assert run["aborted"] and run["reverted"], run
        assert "analysis failed: error-rate: " in run["message"]
        assert run["revert_commit"] and run["revert_commit"] != run["commit"]

    steps = res["step_timing"]
    assert steps["succeeded"] and steps["phase"] == "Succeeded"
    assert steps["configured_seconds"] == 4 * 3.0
    assert len(steps["step_seconds"]) == 4 and steps["measured_seconds"] > 0
    assert isinstance(steps["ratio"], float)
