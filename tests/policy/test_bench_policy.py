"""bench/policy in its quick mode: the JSON it writes has its shape, reconciler's evaluation and conftest
report the same messages on the same objects and policies, and a warm pass answers from the cache. No
timing is asserted here (the goals live in bench/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from reconciler_testing import REPO_ROOT

BENCH = REPO_ROOT / "bench" / "policy" / "bench_policy.py"


def test_quick_mode_compares_with_conftest_on_the_same_inputs(tmp_path: Path) -> None:
    out = tmp_path / "policy.json"
    argv = [sys.executable, str(BENCH), "--quick", "--objects", "120", "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert {"config", "findings", "conftest_seconds", "reconciler_cold_seconds", "meets_goals"} <= res.keys()
    assert res["config"]["objects"] == 120 and res["config"]["environment"] == "prod"
    assert "policies/network.rego" in res["config"]["policies"]
    assert res["findings"]["engines_agree"] is True
    assert res["findings"]["warn"] >= 3  # the reference server's direct access, in every copied namespace
    for key in ("conftest_seconds", "reconciler_cold_seconds", "reconciler_warm_seconds"):
        assert isinstance(res[key], float) and res[key] > 0
    assert res["reconciler_warm_seconds"] < res["reconciler_cold_seconds"]
    assert res["opa_server"]["seconds"] > 0
    assert "reconciler cold (opa eval)" in proc.stdout
