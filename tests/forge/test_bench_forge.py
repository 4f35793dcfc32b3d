"""bench/forge in its quick mode on the session's cluster and NATS and the module's forge: the JSON it
writes has its shape and every merge was applied (its value on the API server). No timing is asserted
here (the numbers live in bench/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _forge_support import LocalForge
from reconciler_testing import REPO_ROOT

pytestmark = pytest.mark.integration

BENCH = REPO_ROOT / "bench" / "forge" / "bench_forge.py"


def test_quick_mode_applies_every_merge(
    kubeconfig: Path, nats_url: str, local_forge: LocalForge, tmp_path: Path
) -> None:
    out = tmp_path / "forge.json"
    argv = [
        sys.executable,
        str(BENCH),
        "--quick",
        "--kubeconfig",
        str(kubeconfig),
        "--nats",
        nats_url,
        "--forge-url",
        local_forge.url,
        "--forge-token-file",
        str(local_forge.files.token),
        "--deadline",
        "150",
        "--json",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=200, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["config"]["merges"] == 3 and res["config"]["forge"] == "gitea 1.27.3"
    assert res["all_applied"] and len(res["runs"]) == 3
    for run in res["runs"]:
        assert run["applied_value_on_api_server"], run
        assert len(run["merge_commit"]) == 40
        assert run["merge_to_applied_s"] > 0 and run["merge_to_delivery_s"] > 0
    for key in ("merge_to_applied_seconds", "merge_to_delivery_seconds", "delivery_to_applied_seconds"):
        assert set(res[key]) == {"p50", "p95", "max"}
    assert res["ratios"]["merge_to_applied_p95 / merge_to_delivery_p95"] > 0
    assert [a["seconds"] for a in res["anchors"]["named"]] == [60.0, 180.0]
    assert local_forge.token not in proc.stdout + proc.stderr
